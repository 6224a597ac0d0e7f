"""JSON on the wire: orjson (an order of magnitude faster than the standard library on large
snapshots), and socket.io packets that never look for binary attachments (Classcast sends none;
python-socketio would otherwise walk every payload, a whole snapshot on every join, to find out)."""

from __future__ import annotations

from typing import Any

import orjson
import socketio.packet


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


class _Json:
    """The `json` interface python-socketio's packets call."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(data: str | bytes, **_: Any) -> Any:
        return orjson.loads(data)


class JsonPacket(socketio.packet.Packet):
    uses_binary_events = False
    json = _Json
