"""How events and folded states are stored: msgpack, with sets kept as sets; what a good record of
an `events.log` is."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from classroom.core import Event
from classroom.packing import dump_state, load_state, packb, unpackb

from .logfile import iter_records

__all__ = [
    "LogCheck",
    "LogRecord",
    "decode_record",
    "dump_state",
    "event_from_record",
    "event_record",
    "iter_log",
    "load_state",
    "packb",
    "unpackb",
]

LogRecord = tuple[int, int, dict[str, Any]]


def event_record(event: Event, wall_ms: int) -> dict[str, Any]:
    return {"e": [event.seq, event.t, event.type, event.actor, event.data], "w": wall_ms}


def event_from_record(record: dict[str, Any]) -> Event:
    seq, t, type_, actor, data = record["e"]
    return Event(seq, t, type_, actor, data)


def decode_record(payload: bytes) -> dict[str, Any] | None:
    """An `events.log` record if the payload is a well-formed header or event, else None (a
    record can pass its checksum and still be no record: zeros, or bytes from a bug)."""
    try:
        rec = unpackb(payload)
    except Exception:  # msgpack raises several types for bad input; all mean "not a record"
        return None
    if not isinstance(rec, dict):
        return None
    if "h" in rec:
        h = rec["h"]
        ok = isinstance(h, dict) and isinstance(h.get("id"), str) and isinstance(h.get("title"), str)
        return rec if ok and isinstance(h.get("recording"), str) else None
    e, w = rec.get("e"), rec.get("w")
    if not (isinstance(e, list) and len(e) == 5 and isinstance(w, int)):
        return None
    seq, t, type_, actor, data = e
    if not (
        isinstance(seq, int) and isinstance(t, int) and isinstance(type_, str) and isinstance(data, dict)
    ):
        return None
    return rec if actor is None or isinstance(actor, str) else None


class LogCheck:
    """Checks each record of an `events.log` in order: one header first, then events whose seqs
    follow one another (gapless, unique). Keeps the decoded record for the caller.

    `after`: the seq of the event just before where checking starts (None: the log's start)."""

    def __init__(self, after: int | None = None) -> None:
        self.seq = after
        self.record: dict[str, Any] = {}

    def __call__(self, payload: bytes) -> bool:
        rec = decode_record(payload)
        if rec is None:
            return False
        if "h" in rec:
            if self.seq is not None:
                return False  # a header belongs only at the start
            self.seq = 0
        elif self.seq is None or rec["e"][0] != self.seq + 1:
            return False
        else:
            self.seq += 1
        self.record = rec
        return True


def iter_log(data: bytes | memoryview, start: int = 0, after: int | None = None) -> Iterator[LogRecord]:
    """(offset, end, record) of every good record of an `events.log` from `start`, decoded once;
    stops at the first that is damaged, malformed or out of order (`LogCheck`)."""
    check = LogCheck(after)
    for off, end, _ in iter_records(data, start, check):
        yield off, end, check.record
