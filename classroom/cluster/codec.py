"""How events, states and messages are encoded in Redis: stream entries as JSON (orjson),
states and inbox messages as msgpack (sets included)."""

from __future__ import annotations

import time
from typing import Any

import msgpack
import orjson

from ..core import Event, SessionState


def pack_event(event: Event) -> bytes:
    return orjson.dumps([event.seq, event.t, event.type, event.actor, event.data, int(time.time() * 1000)])


def unpack_entry(fields: dict[bytes, bytes]) -> tuple[Event, int]:
    seq, t, type_, actor, data, wall = orjson.loads(fields[b"e"])
    return Event(seq, t, type_, actor, data), wall


_SET = 1


def _default(obj: Any) -> Any:
    if isinstance(obj, set):
        return msgpack.ExtType(_SET, msgpack.packb(sorted(obj), use_bin_type=True))
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _ext(code: int, data: bytes) -> Any:
    return set(msgpack.unpackb(data, raw=False)) if code == _SET else msgpack.ExtType(code, data)


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, default=_default)


def unpackb(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, ext_hook=_ext, strict_map_key=False)


def pack_state(state: SessionState) -> bytes:
    return packb({name: getattr(state, name) for name in state.__dataclass_fields__})


def unpack_state(data: bytes) -> SessionState:
    return SessionState(**unpackb(data))


def as_text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
