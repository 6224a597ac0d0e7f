"""JSON on the wire: orjson (an order of magnitude faster than the standard library on large
snapshots), and socket.io packets that never look for binary attachments (Classcast sends none;
python-socketio would otherwise walk every payload, a whole snapshot on every join, to find out).

A packet from a client that does not decode (bad JSON, a lone surrogate, a number out of range,
nesting deeper than PAYLOAD_DEPTH, an unknown packet type) does not raise: it becomes an event
whose name is a `BadPacket`, which the hub answers with `invalid_payload` (when the packet has an
ack id) and, if it is garbage rather than well-formed JSON over a limit, counts. A raising decoder
would make engine.io log a traceback per packet."""

from __future__ import annotations

from typing import Any

import orjson
import socketio.packet

from classroom.core.limits import PAYLOAD_DEPTH


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


class BadPacket:
    """What an undecodable packet is turned into; `reason` says why, for the ack's message.
    `garbage`: False for well-formed JSON refused only for a limit of ours (nesting), which a
    client with a bug in one payload may send: answered, but not counted against the connection."""

    __slots__ = ("garbage", "reason")

    def __init__(self, reason: str, garbage: bool = True) -> None:
        self.reason = reason
        self.garbage = garbage


class TooDeepError(ValueError):
    """Well-formed JSON nested deeper than PAYLOAD_DEPTH."""

    def __repr__(self) -> str:
        return "<bad packet>"


def too_deep(value: Any, limit: int = PAYLOAD_DEPTH) -> bool:
    """Whether lists/objects nest deeper than `limit` (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))
    return False


class _Json:
    """The `json` interface python-socketio's packets call."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(data: str | bytes, **_: Any) -> Any:
        value = orjson.loads(data)
        # Fewer opening brackets than the limit cannot nest deeper: only count then.
        if isinstance(value, (list, dict)):
            raw = data if isinstance(data, str) else data.decode("utf-8", "replace")
            if raw.count("[") + raw.count("{") > PAYLOAD_DEPTH and too_deep(value):
                raise TooDeepError(f"nested deeper than {PAYLOAD_DEPTH} levels")
        return value


_P = socketio.packet
_FROM_CLIENTS = (_P.CONNECT, _P.DISCONNECT, _P.EVENT, _P.ACK)


class JsonPacket(socketio.packet.Packet):
    uses_binary_events = False
    json = _Json

    def decode(self, encoded_packet: Any) -> int:
        try:
            attachments = super().decode(encoded_packet)
            if attachments or self.packet_type in (socketio.packet.BINARY_EVENT, socketio.packet.BINARY_ACK):
                raise ValueError("binary attachments are not used")
            if self.packet_type not in _FROM_CLIENTS:
                raise ValueError("not a packet type a client sends")
            if self.packet_type == socketio.packet.EVENT and (
                not isinstance(self.data, list) or not self.data or not isinstance(self.data[0], str)
            ):
                raise ValueError("an event is a list starting with its name")
            return 0
        except Exception as exc:  # RecursionError included: nothing a client sends may raise
            reason = str(exc)[:120] if isinstance(exc, ValueError) else type(exc).__name__
            if self.packet_type == socketio.packet.CONNECT:
                self.data = None  # connect without auth: refused with `invalid_token`
            else:
                self.packet_type = socketio.packet.EVENT
                self.namespace = None
                garbage = not isinstance(exc, TooDeepError)
                self.data = [BadPacket(f"the packet does not decode: {reason}", garbage)]
            return 0
