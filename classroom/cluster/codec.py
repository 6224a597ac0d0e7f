"""How events, states and messages are encoded in Redis: stream entries as JSON (orjson),
states and inbox messages as msgpack (sets included)."""

from __future__ import annotations

import logging
import time

import orjson

from ..core import Event, SessionState, apply
from ..packing import dump_state, load_state, packb, unpackb

__all__ = [
    "as_text",
    "fold_entries",
    "pack_event",
    "pack_state",
    "packb",
    "unpack_entry",
    "unpack_state",
    "unpackb",
]

log = logging.getLogger(__name__)


def pack_event(event: Event) -> bytes:
    return orjson.dumps([event.seq, event.t, event.type, event.actor, event.data, int(time.time() * 1000)])


def unpack_entry(fields: dict[bytes, bytes]) -> tuple[Event, int]:
    seq, t, type_, actor, data, wall = orjson.loads(fields[b"e"])
    return Event(seq, t, type_, actor, data), wall


def fold_entries(
    state: SessionState, entries: list[tuple[bytes, dict[bytes, bytes]]]
) -> list[tuple[Event, int]]:
    """Load a session's state on from its stream: fold the entries (oldest first) into `state`,
    saying when the stream misses events after it. The (event, wall ms) of every entry. Shared by
    the owner taking a session and a replica starting to follow one."""
    out = []
    for _id, fields in entries:
        event, wall = unpack_entry(fields)
        if event.seq > state.seq + 1:
            log.error("session %s: the stream misses events %s-%s", state.id, state.seq + 1, event.seq - 1)
        apply(state, event)
        out.append((event, wall))
    return out


def pack_state(state: SessionState) -> bytes:
    return packb(dump_state(state))


def unpack_state(data: bytes) -> SessionState:
    return load_state(unpackb(data))


def as_text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
