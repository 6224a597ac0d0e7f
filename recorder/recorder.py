"""Writes every session's events to its log with group commit, and snapshots its folded state.

One writer thread does all disk work. The event loop only encodes events (cheap, and safe from
later mutation) and hands them over; a flush writes every pending session's records, fsyncs each
file once, and then wakes everyone waiting for those events to be durable. Many commands share one
flush, so the fsync cost is spread over them.

The writer thread also keeps its own fold of each session from the records it writes, so
snapshots are taken there, never on the event loop and never of state the loop is changing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import struct
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from classroom import metrics
from classroom.core import Event, SessionState, apply
from classroom.ports import Recovered, StorageError

from . import codec
from . import index as index_file
from .index import Index
from .logfile import Appender, damaged_copy, frame, iter_records
from .paths import events_path, index_path, recording_dir, snapshots_path

log = logging.getLogger(__name__)

SNAPSHOT_EVENTS = 1000
SNAPSHOT_MS = 60_000
# A snapshot holds the whole state, which grows through a session; taking one only once the log
# has grown by this fraction of the last snapshot keeps all snapshots within ~8x the log's size
# (instead of growing with the square of the session's length).
SNAPSHOT_LOG_FRACTION = 1 / 8
# While a session's writes fail (a full disk), its events wait in memory and are retried. Past
# this many bytes it takes no new commands (`storage_full`, see classroom/live.py), so the wait
# cannot grow without bound; presence (joins, leaves) still goes through.
BACKLOG_BYTES = 4 * 1024 * 1024
RETRY_SECONDS = 0.5
COMPLAIN_SECONDS = 30.0  # while writes keep failing, how often the log says so again


@dataclass
class _Writer:
    session_id: str
    events: Appender
    snapshots: Appender
    state: SessionState
    index: Index
    since_snapshot: int = 0
    log_since_snapshot: int = 0
    last_snapshot_bytes: int = 0
    last_snapshot_t: int = 0
    last_t: int = 0
    last_wall_ms: int = 0
    failing_since: float | None = None  # monotonic time writes started failing
    complained: float = 0.0


@dataclass
class _Pending:
    blobs: list[bytes] = field(default_factory=list)
    first_seq: int = 0
    last_seq: int = 0
    size: int = 0  # bytes

    def extend(self, newer: _Pending) -> None:
        self.blobs.extend(newer.blobs)
        self.first_seq = self.first_seq or newer.first_seq
        self.last_seq = newer.last_seq
        self.size += newer.size


def _records(blobs: list[bytes]) -> Iterator[bytes]:
    """Each framed record of `blobs`; a blob is one record, or several joined for a retry."""
    for blob in blobs:
        if int.from_bytes(blob[:4], "little") + 8 == len(blob):
            yield blob
        else:
            for off, end, _ in iter_records(blob):
                yield blob[off:end]


def snapshot_record(meta: dict[str, Any], state: SessionState) -> bytes:
    """One record per snapshot: its meta, and the state as an opaque blob, so scanning the file
    for metas never decodes a state, and a torn snapshot is a single torn record."""
    return frame(codec.packb({**meta, "state": codec.packb(codec.dump_state(state))}))


def snapshot_metas(path: Path, start: int = 0) -> tuple[list[tuple[dict[str, Any], int]], int]:
    """(meta, record offset) of every complete snapshot record from `start`, and where they end.

    Walks record headers and decodes only the small meta at the front of each record, so a long
    session's snapshots are indexed without reading them; a state's checksum is verified when
    it is loaded (read_snapshot). Stops at the first record that is cut short, empty or has no
    readable meta: nothing after damage is trusted."""
    out = []
    size = path.stat().st_size
    pos = start
    with open(path, "rb") as f:
        while pos + 8 <= size:
            f.seek(pos)
            length, _crc = struct.unpack("<II", f.read(8))
            if length == 0 or pos + 8 + length > size:
                break  # a torn last record, or damage
            unpacker = msgpack.Unpacker(raw=False)
            unpacker.feed(f.read(min(length, 512)))
            meta: dict[str, Any] = {}
            try:
                for _ in range(unpacker.read_map_header()):
                    key = unpacker.unpack()
                    if key == "state":
                        break
                    meta[key] = unpacker.unpack()
            except Exception:  # msgpack raises several types for bad input: not a snapshot
                break
            if not all(isinstance(meta.get(k), int) for k in ("seq", "t", "w", "off")):
                break
            out.append((meta, pos))
            pos += 8 + length
    return out, pos


def read_snapshot(path: Path, offset: int) -> SessionState | None:
    """The state of the snapshot record at `offset`, or None if the record is damaged."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            length, crc = struct.unpack("<II", f.read(8))
            payload = f.read(length)
        if len(payload) != length or zlib.crc32(payload) != crc:
            return None
        record = codec.unpackb(payload)
        state = codec.load_state(codec.unpackb(record["state"]))
    except Exception:  # unreadable in any way: an older snapshot and a longer fold will do
        return None
    return state if state.seq == record.get("seq") else None


def fits(meta: dict[str, Any], index: Index) -> bool:
    """Does a snapshot belong to the log as indexed: its event is in the log, at the offset and
    time the snapshot says? A snapshot past the end of a log that was cut (damage) describes
    events that are gone, and must never be used."""
    seq = meta["seq"]
    n = len(index.seqs)
    if not 1 <= seq <= n:
        return False
    after = index.offsets[seq] if seq < n else index.end
    return after == meta["off"] and index.ts[seq - 1] == meta["t"]


def usable_snapshots(path: Path, index: Index) -> tuple[list[tuple[dict[str, Any], int]], int | None]:
    """The snapshots that fit the indexed log (in order), and the offset of the first that does
    not (snapshots are taken in log order, so none after it fits either), if any."""
    if not path.exists():
        return [], None
    metas, end = snapshot_metas(path)
    for i, (meta, offset) in enumerate(metas):
        if not fits(meta, index):
            return metas[:i], offset
    return metas, (end if end < path.stat().st_size else None)


def repair_header(path: Path, header: dict[str, Any]) -> str | None:
    """Rewrite a damaged header record in place, keeping every event after it.

    The header is the one record the writer can rebuild: it only repeats the session's metadata.
    The first event (seq 1) is looked for just after the header's place, so a damaged length
    field is survived too; the new header is padded to fill exactly the old one's room, so every
    offset after it stays. Returns what was done, or None when there is nothing to repair or
    it cannot be (then the usual cut applies, with a copy kept)."""
    with open(path, "rb") as f:
        data = f.read(64 * 1024)
    if not data or next(codec.iter_log(data), None) is not None:
        return None  # empty, or the header is fine
    size = path.stat().st_size
    room = None
    for start in range(9, min(len(data), 8 * 1024)):
        if start == size or next(codec.iter_log(data, start, after=0), None) is not None:
            room = start
            break
    if room is None and size <= 8 * 1024 and size > 8:
        room = size  # a log of a header alone
    if room is None:
        return None
    try:  # the damage may have spared the creation time
        created = codec.unpackb(data[8:room])["h"]["created"]
        if isinstance(created, float):
            header = {**header, "created": created}
    except Exception:
        pass
    for fields in (header, {k: v for k, v in header.items() if k != "created"}):
        base = len(codec.packb({"h": fields}))
        need = room - 8 - base
        pad = None
        if need == 0:
            pad = b""
        elif 6 <= need <= 6 + 255:
            pad = bytes(need - 6)  # "pad" (4 bytes) + bin 8 (2 bytes) + the bytes
        elif 7 + 256 <= need <= 7 + 65535:
            pad = bytes(need - 7)
        if pad is None:
            continue
        record = frame(codec.packb({"h": fields, **({"pad": pad} if pad else {})}))
        assert len(record) == room
        copy = damaged_copy(path)
        with open(path, "r+b") as f:
            f.write(record)
            f.flush()
            os.fsync(f.fileno())
        return f"rewrote a damaged header (the damaged log is kept in {copy.name})"
    return None


def scan_index(root: Path, session_id: str) -> Index:
    """The log's index: the saved one if it fits the log, extended over what follows, up to the
    first damage."""
    path = events_path(root, session_id)
    index = index_file.load(index_path(root, session_id), path) or Index()
    with open(path, "rb") as f:
        f.seek(index.end)
        index_file.extend(index, f.read(), index.end, live=False)
    return index


def read_latest(root: Path, session_id: str, index: Index | None = None) -> Recovered:
    """Rebuild a session's full state from its newest usable snapshot and the events after it,
    up to the first damage in the log (`index`: the log's, if the caller has it)."""
    path = events_path(root, session_id)
    if not path.exists():
        return Recovered(None)
    if index is None:
        index = scan_index(root, session_id)
    recovered = Recovered(None)
    start, after = 0, None
    snap = snapshots_path(root, session_id)
    metas, _ = usable_snapshots(snap, index)
    for meta, offset in reversed(metas):  # the newest snapshot that reads back whole
        state = read_snapshot(snap, offset)
        if state is not None:
            recovered.state = state
            recovered.last_t, recovered.last_wall_ms = meta["t"], meta["w"]
            start, after = meta["off"], meta["seq"]
            break
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read(index.end - start)
    for _, _, record in codec.iter_log(data, 0, after):
        if "h" in record:
            h = record["h"]
            recovered.state = SessionState(h["id"], h["title"], recording=h["recording"])
            continue
        event = codec.event_from_record(record)
        recovered.events += 1
        recovered.last_t, recovered.last_wall_ms = event.t, record["w"]
        assert recovered.state is not None
        apply(recovered.state, event)
    return recovered


class Recorder:
    """The session registry's `EventLog` (`classroom/ports.py`)."""

    def __init__(
        self, root: Path, snapshot_events: int = SNAPSHOT_EVENTS, snapshot_ms: int = SNAPSHOT_MS
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.snapshot_events = snapshot_events
        self.snapshot_ms = snapshot_ms
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder")
        self._writers: dict[str, _Writer] = {}  # touched only by the writer thread
        self._pending: dict[str, _Pending] = {}
        self.durable_seq: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._flushed: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._failures: dict[str, Exception] = {}  # sessions whose last write failed
        self._retry_at: dict[str, float] = {}  # when each failed session is tried again
        self._in_flight: set[str] = set()  # sessions whose events a flush is writing now
        self.flushes = 0
        self.backlog_limit = BACKLOG_BYTES
        self.backlog: dict[str, int] = {}  # bytes queued but not yet durable, per session
        self._appended: dict[str, int] = {}  # the last seq queued, per session
        self._releasing: set[str] = set()  # closed while their events could not be saved yet
        self._stopping = asyncio.Event()
        self._closed = False

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # -- opening and closing a session's log ----------------------------------------------------

    async def open(self, session_id: str, title: str, recording: str, anonymize: bool = False) -> Recovered:
        """Open (creating or repairing) a session's log and return what it holds."""
        if session_id in self._writers:
            # Closed earlier while its last events could not be saved (a full disk), so its log
            # is still open and they are still queued: carry on from the writer's own fold plus
            # the queued events, rather than from a log that lacks them.
            self._releasing.discard(session_id)
            while session_id in self._in_flight:  # a failed flush puts its events back after
                await asyncio.sleep(0.005)
            queued = list(self._pending[session_id].blobs) if session_id in self._pending else []
            return await self._run(self._resume, session_id, queued, title, recording, anonymize)
        recovered = await self._run(self._open, session_id, title, recording, anonymize)
        self.durable_seq[session_id] = recovered.state.seq if recovered.state else 0
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_loop())
        return recovered

    def _resume(
        self, session_id: str, queued: list[bytes], title: str, recording: str, anonymize: bool
    ) -> Recovered:
        """The state of a session whose log is still open: what was written, then what waits."""
        writer = self._writers.get(session_id)
        if writer is None:  # saved and closed just now, after all
            return self._open(session_id, title, recording, anonymize)
        state = codec.load_state(codec.unpackb(codec.packb(codec.dump_state(writer.state))))
        recovered = Recovered(state, writer.last_t, writer.last_wall_ms)
        for blob in _records(queued):
            record = codec.unpackb(blob[8:])
            if record["e"][0] <= state.seq:
                continue  # written by a flush that ran after they were looked at
            apply(state, codec.event_from_record(record))
            recovered.events += 1
            recovered.last_t, recovered.last_wall_ms = record["e"][1], record["w"]
        return recovered

    def _open(self, session_id: str, title: str, recording: str, anonymize: bool) -> Recovered:
        path = events_path(self.root, session_id)
        header = {"id": session_id, "title": title, "recording": recording, "anonymize": anonymize}
        rewritten = repair_header(path, {**header, "created": time.time()}) if path.exists() else None
        if rewritten:
            log.warning("recording %s: %s", session_id, rewritten)
        # Every record is checked on open (checksum, form, seq order): the log is cut at the
        # first bad one, so new events always follow the last good one with the next seq. The
        # saved index vouches for the bytes it covers (their CRC matches), so only what follows
        # it is decoded.
        saved = index_file.load(index_path(self.root, session_id), path) if path.exists() else None
        trusted = saved.end if saved is not None else 0
        check = codec.LogCheck(saved.last_seq if saved is not None else None)
        events = Appender(path, check=check, start=trusted)
        snapshots = Appender(snapshots_path(self.root, session_id), verify="last")
        repaired = events.repaired
        if repaired:
            kept = f"; the damaged log is kept in {events.damaged_copy.name}" if events.damaged_copy else ""
            log.warning(
                "recording %s: cut its log at the first bad record (%s)%s", session_id, repaired, kept
            )
        if snapshots.repaired:
            log.warning("recording %s: cut its snapshots (%s)", session_id, snapshots.repaired)
        if events.size == 0:
            events.write(frame(codec.packb({"h": {**header, "created": time.time()}})))
            events.sync()
        index = saved or Index()
        with open(path, "rb") as f:
            f.seek(index.end)
            index_file.extend(index, f.read(), index.end, live=False)
        assert index.end == events.size, "the index covers the whole (checked) log"
        _, cut_at = usable_snapshots(snapshots.path, index)
        if cut_at is not None:
            # Snapshots of events the log no longer has (it was cut) must never be used: the
            # seqs they cover are given to new events.
            log.warning("recording %s: dropped snapshots past the end of its log", session_id)
            snapshots.truncate(cut_at)
            index_file.save(index, index_path(self.root, session_id))
        recovered = read_latest(self.root, session_id, index)
        recovered.repaired = repaired or rewritten
        assert recovered.state is not None
        # The writer thread folds its own copy, never the one the event loop changes.
        mirror = codec.load_state(codec.unpackb(codec.packb(codec.dump_state(recovered.state))))
        self._writers[session_id] = _Writer(
            session_id,
            events,
            snapshots,
            mirror,
            index,
            last_snapshot_t=recovered.last_t,
            last_t=recovered.last_t,
            last_wall_ms=recovered.last_wall_ms,
        )
        return recovered

    async def close_session(self, session_id: str, discard: bool = False) -> None:
        """Flush and close a session's log; `discard` deletes it (a session recorded off).

        If its last events cannot be saved now (a full disk), the log stays open and they are
        retried as before; it is closed once they are saved."""
        try:
            await self.durable(session_id, self._appended.get(session_id, 0))
        except StorageError:
            if not discard:
                log.warning("recording %s: its log is closed once its last events are saved", session_id)
                self._releasing.add(session_id)
                return
            self._pending.pop(session_id, None)  # deleted anyway: nothing is lost
        self._forget(session_id)
        await self._run(self._close, session_id, discard)

    def _forget(self, session_id: str) -> None:
        self._retry_at.pop(session_id, None)
        self._failures.pop(session_id, None)
        self.backlog.pop(session_id, None)
        self._appended.pop(session_id, None)
        self._releasing.discard(session_id)

    def is_open(self, session_id: str) -> bool:
        """Is this process writing the session's log (so a partial last record may be a write
        in progress rather than damage)?"""
        return session_id in self._writers

    def _close(self, session_id: str, discard: bool) -> None:
        writer = self._writers.pop(session_id, None)
        if writer is not None:
            if not discard:
                index_file.save(writer.index, index_path(self.root, session_id))
            writer.events.close()
            writer.snapshots.close()
        if discard:
            shutil.rmtree(recording_dir(self.root, session_id), ignore_errors=True)

    # -- appending ------------------------------------------------------------------------------

    def accepting(self, session_id: str) -> bool:
        """May the session take new commands? Not while the events it could not save yet (the
        disk is full or failing) exceed the backlog bound: memory stays bounded, and a refused
        command changes nothing."""
        # Only while its writes fail: a burst on a healthy disk is flushed within milliseconds.
        return session_id not in self._retry_at or self.backlog.get(session_id, 0) < self.backlog_limit

    def append(self, session_id: str, events: list[Event]) -> None:
        """Queue events for the next flush. Encoding happens now, so later changes to the
        objects cannot leak into the log."""
        if not events:
            return
        if self._closed:
            log.error(
                "recording %s: events %d-%d came after the recorder closed; not saved",
                session_id,
                events[0].seq,
                events[-1].seq,
            )
            return
        wall = int(time.time() * 1000)
        pending = self._pending.get(session_id)
        if pending is None:
            pending = self._pending[session_id] = _Pending(first_seq=events[0].seq)
        size = 0
        for event in events:
            blob = frame(codec.packb(codec.event_record(event, wall)))
            pending.blobs.append(blob)
            size += len(blob)
        pending.size += size
        pending.last_seq = events[-1].seq
        self.backlog[session_id] = self.backlog.get(session_id, 0) + size
        self._appended[session_id] = events[-1].seq
        self._wake.set()

    async def durable(self, session_id: str, seq: int) -> None:
        """Return once every event of the session up to `seq` is on disk (fsynced); raise
        StorageError while its writes fail, or once the recorder has closed without them."""
        while self.durable_seq.get(session_id, 0) < seq:
            if self._closed:
                raise StorageError(session_id)
            failure = self._failures.get(session_id)
            if failure is not None:
                raise StorageError(session_id) from failure
            if self._flushed is None:
                self._flushed = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._flushed)

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Sleep until woken by new events, or until a failed session's retry is due.
            due = [at for sid, at in self._retry_at.items() if sid in self._pending]
            timeout = max(0.0, min(due) - loop.time()) if due else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            if self._stopping.is_set():
                return  # close() takes over, and flushes what is left
            await self._flush_pending()

    async def _flush_pending(self, force: bool = False) -> dict[str, Exception]:
        """One flush of everything queued, except sessions whose writes failed and whose retry
        (every RETRY_SECONDS, per session) is not due yet, unless `force`: one failing session
        does not hold up the others. Returns the sessions whose writes failed. Nothing is
        dropped: a failed session's events go back in front of anything newer, to be retried."""
        now = asyncio.get_running_loop().time()
        batch = {sid: p for sid, p in self._pending.items() if force or self._retry_at.get(sid, now) <= now}
        if not batch:
            return {}
        self._pending = {sid: p for sid, p in self._pending.items() if sid not in batch}
        self._in_flight.update(batch)
        began = time.monotonic()
        try:
            failed = await self._run(self._flush, {sid: p.blobs for sid, p in batch.items()})
            metrics.RECORDER_FLUSH_SECONDS.observe(time.monotonic() - began)
        except Exception as exc:  # a bug, not the disk: keep the loop (and every ack) alive
            log.exception("recorder flush failed")
            failed = dict.fromkeys(batch, exc)
        finally:
            self._in_flight.difference_update(batch)
        self.flushes += 1
        retry_at = asyncio.get_running_loop().time() + RETRY_SECONDS
        for sid, p in batch.items():
            if sid in failed:  # disk full, permissions: acks must not claim durability
                self._failures[sid] = failed[sid]
                self._retry_at[sid] = retry_at
                newer = self._pending.get(sid)
                if newer is not None:
                    p.extend(newer)
                self._pending[sid] = p  # in front of anything newer
            else:
                self._failures.pop(sid, None)
                self._retry_at.pop(sid, None)
                self.durable_seq[sid] = max(self.durable_seq.get(sid, 0), p.last_seq)
                if sid in self.backlog:
                    self.backlog[sid] = max(0, self.backlog[sid] - p.size)
        # Wake every waiter, including those who arrived during the flush; whoever is still
        # not durable waits again, and their events are already queued for the next flush.
        waiters, self._flushed = self._flushed, None
        if waiters is not None and not waiters.done():
            waiters.set_result(None)
        for sid in [s for s in self._releasing if s not in self._pending]:
            self._forget(sid)
            await self._run(self._close, sid, False)
        return failed

    def _flush(self, batch: dict[str, list[bytes]]) -> dict[str, Exception]:
        """Write and fsync each session's records; return the sessions that failed, and why."""
        failed: dict[str, Exception] = {}
        for session_id, blobs in batch.items():
            writer = self._writers.get(session_id)
            if writer is None:
                log.error(
                    "recording %s: %d bytes of events for a closed log; not saved",
                    session_id,
                    len(b"".join(blobs)),
                )
                continue
            chunk = b"".join(blobs)
            try:
                offset = writer.events.append_durable(chunk)
                writer.index.crc = zlib.crc32(chunk, writer.index.crc)
            except OSError as exc:
                # Keep the joined bytes for the retry (joining the same megabytes again every
                # retry would only churn the heap while the disk stays full).
                blobs[:] = [chunk]
                now = time.monotonic()
                if writer.failing_since is None or now - writer.complained >= COMPLAIN_SECONDS:
                    # One line when the failure starts, then one every so often: not one per retry.
                    log.error(
                        "recording %s: cannot write its log (%s); retrying every %.1f s, %d bytes waiting",
                        session_id,
                        exc,
                        RETRY_SECONDS,
                        len(chunk),
                    )
                    writer.complained = now
                writer.failing_since = writer.failing_since or now
                failed[session_id] = exc
                continue
            if writer.failing_since is not None:
                log.warning(
                    "recording %s: its log is written again after %.1f s; %d waiting bytes saved",
                    session_id,
                    time.monotonic() - writer.failing_since,
                    len(chunk),
                )
                writer.failing_since = None
            for blob in _records(blobs):
                record = codec.unpackb(blob[8:])
                event = codec.event_from_record(record)
                writer.index.add(event.seq, event.t, event.type, event.data, record["w"], offset, event.actor)
                offset += len(blob)
                writer.index.end = offset
                writer.log_since_snapshot += len(blob)
                apply(writer.state, event)
                writer.since_snapshot += 1
                writer.last_t, writer.last_wall_ms = event.t, record["w"]
                # Checked per event, so a large flush still snapshots every N events.
                due = writer.since_snapshot >= self.snapshot_events or (
                    writer.last_t - writer.last_snapshot_t >= self.snapshot_ms
                )
                if due and writer.log_since_snapshot >= writer.last_snapshot_bytes * SNAPSHOT_LOG_FRACTION:
                    try:
                        self._snapshot(writer, offset)
                    except OSError as exc:  # the events are safe; a snapshot can wait
                        log.error("recording %s: snapshot failed (%s)", session_id, exc)
        return failed

    def _snapshot(self, writer: _Writer, events_offset: int) -> None:
        """Write the folded state as it is after the event that ends at `events_offset`."""
        state = writer.state
        meta = {"seq": state.seq, "t": state.t, "w": writer.last_wall_ms, "off": events_offset}
        blob = snapshot_record(meta, state)
        writer.snapshots.append_durable(blob)
        index_file.save(writer.index, index_path(self.root, writer.session_id))
        writer.last_snapshot_bytes = len(blob)
        writer.log_since_snapshot = 0
        writer.since_snapshot = 0
        writer.last_snapshot_t = state.t

    async def close(self) -> dict[str, int]:
        """Save what is queued and close every log. Writes that were failing (a full disk) are
        tried once more; what still cannot be saved is reported, one error line per session,
        and returned: {session id: events not saved} (empty when everything is on disk)."""
        if self._closed:
            return {}
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            await self._task  # it stops after the flush it may be in
        # Events queued while that flush ran (people leaving as the server stops) get a round.
        for _ in range(3):
            if not self._pending:
                break
            if await self._flush_pending(force=True):
                break
        unsaved = {sid: p.last_seq - p.first_seq + 1 for sid, p in self._pending.items() if p.blobs}
        for sid, p in self._pending.items():
            reason = self._failures.get(sid)
            log.error(
                "recording %s: events %d-%d (%d) were never saved: %s",
                sid,
                p.first_seq,
                p.last_seq,
                p.last_seq - p.first_seq + 1,
                reason or "the recorder closed first",
            )
        self._closed = True
        waiters, self._flushed = self._flushed, None
        if waiters is not None and not waiters.done():
            waiters.set_result(None)
        await self._run(lambda: [self._close(sid, False) for sid in list(self._writers)])
        self._pool.shutdown(wait=True)
        return unsaved
