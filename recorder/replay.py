"""Reading a recording: its manifest, the events in a time window, and the state at any time.

An index (seq, t and file offset of every event, kept in compact arrays) is built by one scan of
the log and extended incrementally while a session is still live. State at time T starts from the
nearest snapshot at or before T and folds only the events after it.

Paused stretches are gaps: their content events are left out of the replay (structure such as
page changes and presence stays), so the replay never shows what was said off the record.
"""

from __future__ import annotations

import bisect
import copy
import os
import threading
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from classroom.core import Event, SessionState, apply, history, project

from . import codec, media
from . import index as index_file
from .index import STRUCTURAL, Index
from .logfile import iter_records
from .paths import events_path, index_path, snapshots_path
from .recorder import fits, read_snapshot, snapshot_metas
from .report import ReportFold
from .timeline import Timeline

CHECKPOINT_EVENTS = 2000
# Recordings whose bounded-state timeline stays in memory (each takes about what the session's
# live state took); the least recently used one's is dropped, and rebuilt if it is asked again.
TIMELINES = 4
_timelines: OrderedDict[int, weakref.ref[Recording]] = OrderedDict()
_timelines_lock = threading.Lock()


def _hold_timeline(rec: Recording) -> None:
    with _timelines_lock:
        _timelines[id(rec)] = weakref.ref(rec)
        _timelines.move_to_end(id(rec))
        while len(_timelines) > TIMELINES:
            _, ref = _timelines.popitem(last=False)
            old = ref()
            if old is not None:
                old._timeline = None


class RecordingError(Exception):
    """A recording that cannot be read, with what could be recovered."""

    def __init__(self, session_id: str, message: str, recovered_events: int = 0) -> None:
        super().__init__(f"recording {session_id}: {message}")
        self.session_id = session_id
        self.message = message
        self.recovered_events = recovered_events


class Recording:
    """One session's recording. Methods do blocking file I/O: call them off the event loop."""

    _timeline: Timeline | None = None  # the bounded state at any time (`timeline.py`), built on use

    def __init__(self, root: Path, session_id: str) -> None:
        self.id = session_id
        self.path = events_path(root, session_id)
        self.snapshots_path = snapshots_path(root, session_id)
        self.index_path = index_path(root, session_id)
        self.index = Index()
        self.damage: str | None = None  # a corrupted stretch that stopped the scan, if any
        self.live = False  # set by the library while the recorder writes this log
        self._snapshots: list[tuple[int, int, int]] = []  # (seq, t, offset in snapshots file)
        self._snap_end = 0
        self._checkpoints: list[SessionState] | None = None  # for recordings with pauses
        self._checkpoint_seq = -1
        self._stamp: tuple[int, int, int] | None = None  # the log file as last seen

    # -- index ----------------------------------------------------------------------------------

    def refresh(self, live: bool = False) -> Index:
        """Extend the index with whatever the log gained since the last call. `live`: the log
        is being written now, so a partial last record is a write in progress.

        Damage found here is where this reader stopped, not a verdict for ever: once the file
        changes (a writer reopened the session, cut the bad tail and went on), the index is kept
        if the log still begins with what it covers, else rebuilt, and reading goes on."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise RecordingError(self.id, "no recording") from None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if self._stamp is not None and stamp != self._stamp and (self.damage or st.st_size < self.index.end):
            self._recheck()
        self._stamp = stamp
        if self.index.end == 0 and not self.index.header:
            saved = index_file.load(self.index_path, self.path)  # written by the recorder as it goes
            if saved is not None:
                self.index = saved
        if st.st_size != self.index.end and self.damage is None:
            with open(self.path, "rb") as f:
                f.seek(self.index.end)
                data = f.read()
            self.damage = index_file.extend(self.index, data, self.index.end, live=live or self.live)
        self._refresh_snapshots()
        if not self.index.header:
            raise RecordingError(self.id, "the log has no readable header", 0)
        if self.index.header.get("recording") == "off":
            raise RecordingError(self.id, "no recording")  # only a crash guard, never a replay
        return self.index

    def _recheck(self) -> None:
        """The log changed after this reader found damage (or it shrank): keep the index if the
        log still starts with the bytes it covers, else start again."""
        self.damage = None
        with open(self.path, "rb") as f:
            head = f.read(self.index.end)
        if len(head) == self.index.end and zlib.crc32(head) == self.index.crc:
            return
        self.index = Index()
        self._snapshots, self._snap_end = [], 0
        self._checkpoints, self._checkpoint_seq = None, -1
        self._timeline = None  # folded from the old bytes

    def _refresh_snapshots(self) -> None:
        """Index the snapshots not yet seen (their metas only; states are read when used) that
        fit the log as indexed: one past its end (the log was cut at damage) is never used. One
        not yet covered by the index is looked at again next time."""
        try:
            size = os.path.getsize(self.snapshots_path)
        except FileNotFoundError:
            size = 0
        if size < self._snap_end:  # cut by the writer (damage, or snapshots past a cut log)
            self._snapshots, self._snap_end = [], 0
        if size == self._snap_end:
            return
        metas, end = snapshot_metas(self.snapshots_path, self._snap_end)
        for meta, offset in metas:
            if not fits(meta, self.index):
                end = offset
                break
            self._snapshots.append((meta["seq"], meta["t"], offset))
        self._snap_end = end

    # -- reading --------------------------------------------------------------------------------

    @property
    def anonymized(self) -> bool:
        return bool(self.index.header.get("anonymize"))

    def _read_events(self, lo: int, hi: int) -> list[tuple[Event, int]]:
        """Events at index positions lo..hi-1, with their wall-clock times."""
        if lo >= hi:
            return []
        ix = self.index
        start = ix.offsets[lo]
        stop = ix.offsets[hi] if hi < len(ix.offsets) else ix.end
        with open(self.path, "rb") as f:
            f.seek(start)
            data = f.read(stop - start)
        out = []
        for _, _, payload in iter_records(data):
            rec = codec.unpackb(payload)
            out.append((codec.event_from_record(rec), rec["w"]))
        return out

    def paused_at(self, t: int) -> bool:
        return any(start <= t and (end is None or t < end) for start, end in self.index.pauses)

    def visible(self, event: Event) -> bool:
        """Is this event part of the replay (not said while recording was paused)?"""
        if not self.index.pause_seqs or event.type in STRUCTURAL:
            return True
        return not any(lo < event.seq and (hi is None or event.seq < hi) for lo, hi in self.index.pause_seqs)

    def report_fold(self) -> ReportFold:
        """The engagement report's fold, up to the end of the log read so far. It is part of the
        index (`index.py`): the recorder saves it as it writes, so a reader loads it with the
        index and folds only the events written after that."""
        return self.refresh().report

    def window(self, t_from: int, t_to: int, audience: str = "learner") -> list[dict[str, Any]]:
        """Events with t_from <= t <= t_to, in order, as the audience sees them in the replay."""
        ix = self.refresh()
        lo = bisect.bisect_left(ix.ts, t_from)
        hi = bisect.bisect_right(ix.ts, t_to)
        return self._replayed(self._read_events(lo, hi), audience)

    def _replayed(self, events: list[tuple[Event, int]], audience: str) -> list[dict[str, Any]]:
        """The replay's form of these events: pauses left out, projected, names anonymised."""
        out = []
        for event, _ in events:
            if not self.visible(event):
                continue
            wire = project(event, audience)
            if wire is not None:
                out.append(self.index.aliases.event(wire) if self.anonymized else wire)
        return out

    def iter_windows(self, audience: str, chunk: int = 5000) -> Iterator[list[dict[str, Any]]]:
        """Every replay event as the audience sees it, in chunks (for exports with progress)."""
        ix = self.refresh()
        for lo in range(0, len(ix.seqs), chunk):
            yield self._replayed(self._read_events(lo, min(lo + chunk, len(ix.seqs))), audience)

    def state_at(self, t: int, audience: str = "learner", *, bounded: bool = False) -> dict[str, Any]:
        """The replay's folded state at time t, as the audience sees it. `bounded`: what a live
        join would get (recent chat, current page, ...; `classroom/core/history.py`), fast
        however long the recording; else everything (exports)."""
        if bounded:
            return self._bounded_at(t, audience)
        ix = self.refresh()
        view = self.full_state(t).view(audience, None)  # type: ignore[arg-type]
        view["t"] = t
        view["paused"] = self.paused_at(t)
        return ix.aliases.view(view) if self.anonymized else view

    def full_state(self, t: int) -> SessionState:
        """The whole folded state at time t (from the nearest disk snapshot: slow on long ones)."""
        ix = self.refresh()
        hi = bisect.bisect_right(ix.ts, t)  # events [0, hi) have happened by t
        state, start = self._base_state(hi)
        for event, _ in self._read_events(start, hi):
            if self.visible(event):
                apply(state, event)
        return state

    def _timeline_now(self) -> Timeline:
        """The timeline, extended to the end of the log read so far."""
        ix = self.refresh()
        tl = self._timeline
        if tl is None or tl.pos > len(ix.seqs):
            tl = self._timeline = Timeline({**ix.header, "id": ix.header.get("id", self.id)})
        _hold_timeline(self)
        chunk = 20_000
        while tl.pos < len(ix.seqs):
            events = self._read_events(tl.pos, min(tl.pos + chunk, len(ix.seqs)))
            tl.extend((event, self.visible(event)) for event, _ in events)
        return tl

    def _seq_at(self, t: int) -> tuple[int, int]:
        """Index position of the first event after t, and the seq of the last one by t."""
        ix = self.index
        hi = bisect.bisect_right(ix.ts, t)
        return hi, ix.seqs[hi - 1] if hi else 0

    def _working_state(self, tl: Timeline, hi: int) -> tuple[SessionState, dict[str, int]]:
        cp = tl.checkpoint_before(hi)
        events = [(event, self.visible(event)) for event, _ in self._read_events(cp.pos, hi)]
        touched = {e.data.get("page", "") for e, visible in events if visible and e.type.startswith("wb.")}
        work = tl.base(cp, touched)
        tl.fold_into(work, events)
        return work, cp.omitted

    def _bounded_at(self, t: int, audience: str) -> dict[str, Any]:
        tl = self._timeline_now()
        hi, seq = self._seq_at(t)
        work, omitted = self._working_state(tl, hi)
        view = work.view(audience, None, bounded=True)  # type: ignore[arg-type]
        messages, _ = tl.chat_before(seq, seq + 1, history.SNAPSHOT_CHAT)
        view["chat"] = tl.chat_view(messages, audience, None)
        view["more"]["chat"] = tl.chat_count(seq) - len(messages)
        for name, n in omitted.items():
            view["more"][name] += n
        view["t"] = t
        view["paused"] = self.paused_at(t)
        return self.index.aliases.view(view) if self.anonymized else view

    def chat_page(self, t: int, before: int | None, limit: int, audience: str) -> dict[str, Any]:
        """Chat messages shown at t that are older than seq `before`: the last `limit`, in order."""
        tl = self._timeline_now()
        _, seq = self._seq_at(t)
        messages, more = tl.chat_before(seq, seq + 1 if before is None else before, limit)
        out = tl.chat_view(messages, audience, None)
        if self.anonymized:
            out = self.index.aliases.view({"participants": [], "chat": out, "questions": []})["chat"]
        return {"t": t, "messages": out, "more": more}

    def board_page(self, t: int, page: str, audience: str) -> dict[str, Any] | None:
        """One whiteboard page as it was at t, or None when it did not exist yet."""
        tl = self._timeline_now()
        hi, _ = self._seq_at(t)
        work, _ = self._working_state(tl, hi)
        if page not in work.board["pages"]:
            return None
        reply = history.page_get(work, audience, None, history.PageGet(page_id=page))  # type: ignore[arg-type]
        return {"t": t, **reply}

    def items_page(self, t: int, kind: str, before: int | None, limit: int, audience: str) -> dict[str, Any]:
        """Polls or questions shown at t older than seq `before` (from the full state at t)."""
        state = self.full_state(t)
        cmd = history.Before(before=state.seq + 1 if before is None else before, limit=limit)
        if kind == "polls":
            reply = history.poll_history(state, audience, None, cmd)  # type: ignore[arg-type]
        else:
            reply = history.qa_history(state, audience, None, cmd)  # type: ignore[arg-type]
            if self.anonymized:
                reply["questions"] = self.index.aliases.view(
                    {"participants": [], "chat": [], "questions": reply["questions"]}
                )["questions"]
        return {"t": t, **reply}

    def _base_state(self, hi: int) -> tuple[SessionState, int]:
        """A state to fold from, and the index position of the first event after it."""
        ix = self.index
        header = ix.header
        if ix.pauses:
            return self._checkpoint(hi)
        # Newest snapshot whose seq is below the first event not yet happened.
        limit_seq = ix.seqs[hi - 1] if hi else 0
        pos = bisect.bisect_right([s[0] for s in self._snapshots], limit_seq) - 1
        while pos >= 0:
            seq, _, offset = self._snapshots[pos]
            state = read_snapshot(self.snapshots_path, offset)
            if state is not None:
                return state, bisect.bisect_right(ix.seqs, seq)
            pos -= 1  # a damaged snapshot: an older one and a longer fold will do
        return SessionState(header["id"], header["title"], recording=header["recording"]), 0

    def _checkpoint(self, hi: int) -> tuple[SessionState, int]:
        """For recordings with pauses: in-memory states of the replay fold every N events."""
        ix = self.index
        if self._checkpoints is None or self._checkpoint_seq != len(ix.seqs):
            header = ix.header
            state = SessionState(header["id"], header["title"], recording=header["recording"])
            checkpoints = [copy.deepcopy(state)]
            for i, (event, _) in enumerate(self._read_events(0, len(ix.seqs)), start=1):
                if self.visible(event):
                    apply(state, event)
                if i % CHECKPOINT_EVENTS == 0:
                    checkpoints.append(copy.deepcopy(state))
            self._checkpoints, self._checkpoint_seq = checkpoints, len(ix.seqs)
        k = min(hi // CHECKPOINT_EVENTS, len(self._checkpoints) - 1)
        return copy.deepcopy(self._checkpoints[k]), k * CHECKPOINT_EVENTS

    def manifest(self) -> dict[str, Any]:
        ix = self.refresh()
        duration = ix.ended_t if ix.ended_t is not None else (ix.ts[-1] if ix.ts else 0)
        files = media.list_media(self.path.parent)
        size = (
            os.path.getsize(self.path)
            + (os.path.getsize(self.snapshots_path) if self.snapshots_path.exists() else 0)
            + sum(m["size_bytes"] for m in files)
        )
        out = {
            "id": self.id,
            "title": ix.header.get("title", ""),
            "status": "ended" if ix.ended else "live",
            "recording": ix.header.get("recording", "on"),
            "anonymized": self.anonymized,
            "created_at": ix.header.get("created"),
            "started_at": ix.started_wall_ms / 1000 if ix.started_wall_ms else None,
            "ended_at": ix.ended_wall_ms / 1000 if ix.ended_wall_ms else None,
            "duration_ms": duration,
            "chapters": [dict(c) for c in ix.chapters],
            "polls": [dict(p) for p in ix.polls],
            "questions": [dict(q) for q in ix.questions],
            "pauses": [list(p) for p in ix.pauses],
            "counts": {
                "events": ix.counts.get("events", 0),
                "chat": ix.counts.get("chat", 0),
                "polls": ix.counts.get("polls", 0),
                "questions": ix.counts.get("questions", 0),
                "drawings": ix.counts.get("drawings", 0),
                "reactions": ix.counts.get("reactions", 0),
                "participants": sum(1 for p in ix.people.values() if p["role"] == "learner"),
                "trainers": sum(1 for p in ix.people.values() if p["role"] == "trainer"),
            },
            "trainers": [p["name"] for p in ix.people.values() if p["role"] == "trainer"],
            "size_bytes": size,
            "media": files,
        }
        if self.damage:
            out["damage"] = {"error": self.damage, "recovered_events": len(ix.seqs)}
        return out
