"""msgpack with sets kept as sets: how a session's state and the records around it are packed, the
same for the recorder's files on disk and a cluster's states and messages in Redis."""

from __future__ import annotations

from typing import Any

import msgpack

from .core import SessionState

_SET = 1  # the ext type code of a set (its members packed as a sorted list)


def _default(obj: Any) -> Any:
    if isinstance(obj, set):
        return msgpack.ExtType(_SET, msgpack.packb(sorted(obj), use_bin_type=True))
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _ext(code: int, data: bytes) -> Any:
    if code == _SET:
        return set(msgpack.unpackb(data, raw=False))
    return msgpack.ExtType(code, data)


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, default=_default)


def unpackb(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, ext_hook=_ext, strict_map_key=False)


def dump_state(state: SessionState) -> dict[str, Any]:
    """The full server state (history included), as plain data."""
    return {name: getattr(state, name) for name in state.__dataclass_fields__}


def load_state(data: dict[str, Any]) -> SessionState:
    return SessionState(**data)
