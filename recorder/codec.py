"""How events and folded states are stored: msgpack, with sets kept as sets."""

from __future__ import annotations

from typing import Any

import msgpack

from classroom.core import Event, SessionState

_SET = 1


def _default(obj: Any) -> Any:
    if isinstance(obj, set):
        return msgpack.ExtType(_SET, msgpack.packb(sorted(obj), use_bin_type=True))
    raise TypeError(f"cannot store {type(obj).__name__}")


def _ext(code: int, data: bytes) -> Any:
    if code == _SET:
        return set(msgpack.unpackb(data, raw=False))
    return msgpack.ExtType(code, data)


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, default=_default)


def unpackb(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, ext_hook=_ext, strict_map_key=False)


def event_record(event: Event, wall_ms: int) -> dict[str, Any]:
    return {"e": [event.seq, event.t, event.type, event.actor, event.data], "w": wall_ms}


def event_from_record(record: dict[str, Any]) -> Event:
    seq, t, type_, actor, data = record["e"]
    return Event(seq, t, type_, actor, data)


def dump_state(state: SessionState) -> dict[str, Any]:
    """The full server state (history included), as plain data."""
    return {name: getattr(state, name) for name in state.__dataclass_fields__}


def load_state(data: dict[str, Any]) -> SessionState:
    return SessionState(**data)
