"""The index of a recording: where every event is (seq, t, file offset, in compact arrays) and
the summary a manifest needs (chapters, pauses, counts, people).

The recorder's writer thread builds it as it writes and saves it beside the log, so opening even
a long recording reads the saved index and scans only the events written after it.
"""

from __future__ import annotations

import os
import zlib
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from classroom.core.state import FIRST_PAGE

from . import codec
from .logfile import describe, frame, iter_records
from .privacy import Aliases
from .report import ReportFold

# Kept in a replay even while recording was paused: they carry structure, not what anyone said.
STRUCTURAL = frozenset(
    {
        "participant.joined",
        "participant.left",
        "session.started",
        "session.ended",
        "recording.paused",
        "recording.resumed",
        "wb.page.added",
        "wb.page.switched",
        "wb.permission",
        # Moderation and closures say nothing new: a message deleted or a poll closed during a
        # pause is deleted or closed in the replay too.
        "chat.deleted",
        "poll.closed",
        "qa.dismissed",
        "participant.muted",
        "participant.unmuted",
        "hand.lowered",
        # Which media tracks are live and who holds the floor: the state, not a new moment.
        "media.tracks",
        "floor.given",
        "floor.taken",
    }
)

_COUNTED = {
    "chat.message": "chat",
    "poll.opened": "polls",
    "qa.asked": "questions",
    "wb.element.added": "drawings",
    "reaction": "reactions",
}
VERSION = 5  # 2: the saved index is one CRC-framed record; 3: chapters name pages by number,
# polls apart; 4: with the engagement report's fold; 5: the fold keeps each learner's answers (xAPI)


@dataclass
class Index:
    seqs: array = field(default_factory=lambda: array("q"))
    ts: array = field(default_factory=lambda: array("q"))
    offsets: array = field(default_factory=lambda: array("q"))
    end: int = 0  # the log is indexed up to this offset
    crc: int = 0  # crc32 of the log's bytes up to `end`: a saved index is trusted only if it fits
    header: dict[str, Any] = field(default_factory=dict)
    started_wall_ms: int | None = None
    ended_wall_ms: int | None = None
    ended_t: int | None = None
    chapters: list[dict[str, Any]] = field(default_factory=list)
    polls: list[dict[str, Any]] = field(default_factory=list)  # {t, id, question}, poll markers
    questions: list[dict[str, Any]] = field(default_factory=list)  # {t, id, text}, question markers
    pages: list[str] = field(default_factory=lambda: [FIRST_PAGE])  # whiteboard pages in order made
    counts: dict[str, int] = field(default_factory=dict)
    pauses: list[list[int | None]] = field(default_factory=list)  # [start_t, end_t or None]
    pause_seqs: list[list[int | None]] = field(default_factory=list)  # the same spans by seq
    people: dict[str, dict[str, str]] = field(default_factory=dict)
    aliases: Aliases = field(default_factory=Aliases)
    report: ReportFold = field(default_factory=ReportFold)  # the engagement report (`report.py`)

    @property
    def ended(self) -> bool:
        return self.ended_t is not None

    @property
    def last_seq(self) -> int | None:
        """The seq of the last indexed event (0 after the header alone, None before it)."""
        if self.seqs:
            return self.seqs[-1]
        return 0 if self.header else None

    @property
    def paused(self) -> bool:
        return bool(self.pause_seqs) and self.pause_seqs[-1][1] is None

    def add(
        self,
        seq: int,
        t: int,
        type_: str,
        data: dict[str, Any],
        wall: int,
        offset: int,
        actor: str | None = None,
    ) -> None:
        """Index one event whose record starts at `offset`."""
        self.seqs.append(seq)
        self.ts.append(t)
        self.offsets.append(offset)
        self.counts["events"] = self.counts.get("events", 0) + 1
        off_record = self.paused and type_ not in STRUCTURAL and type_ != "recording.resumed"
        self.report.add(seq, t, type_, actor, data, not off_record)
        if off_record:
            return  # off the record: neither counted nor a chapter
        counter = _COUNTED.get(type_)
        if counter:
            self.counts[counter] = self.counts.get(counter, 0) + 1
        if type_ == "participant.joined":
            self.people.setdefault(data["id"], {"name": data["name"], "role": data["role"]})
            self.aliases.learn({"type": type_, "data": data})
        elif type_ == "session.started":
            self.started_wall_ms = wall
        elif type_ == "session.ended":
            self.ended_wall_ms, self.ended_t = wall, t
        elif type_ == "chapter.marked":
            self.chapters.append({"t": t, "kind": "mark", "id": data["id"], "title": data["title"]})
        elif type_ == "poll.opened":
            self.polls.append({"t": t, "id": data["id"], "question": data["question"]})
        elif type_ == "qa.asked":
            self.questions.append({"t": t, "id": data["id"], "text": data["text"]})
        elif type_ == "wb.page.added":
            if data["page"] not in self.pages:
                self.pages.append(data["page"])
        elif type_ == "wb.page.switched":
            page = data["page"]
            self.chapters.append({"t": t, "kind": "page", "page": page, "title": self.page_title(page)})
        elif type_ == "recording.paused":
            self.pauses.append([t, None])
            self.pause_seqs.append([seq, None])
        elif type_ == "recording.resumed" and self.paused:
            self.pauses[-1][1] = t
            self.pause_seqs[-1][1] = seq

    def page_title(self, page: str) -> str:
        """What people call a page: its place among the pages ("Whiteboard page 2"), not its id."""
        if page not in self.pages:
            self.pages.append(page)  # a switch to a page never added: number it where it appears
        return f"Whiteboard page {self.pages.index(page) + 1}"

    # -- saved beside the log ---------------------------------------------------------------------

    def dumps(self) -> bytes:
        return frame(
            msgpack.packb(
                {
                    "v": VERSION,
                    "arrays": [self.seqs.tobytes(), self.ts.tobytes(), self.offsets.tobytes()],
                    "end": self.end,
                    "crc": self.crc,
                    "header": self.header,
                    "started": self.started_wall_ms,
                    "ended": [self.ended_wall_ms, self.ended_t],
                    "chapters": self.chapters,
                    "polls": self.polls,
                    "questions": self.questions,
                    "pages": self.pages,
                    "counts": self.counts,
                    "pauses": self.pauses,
                    "pause_seqs": self.pause_seqs,
                    "people": self.people,
                    "aliases": self.aliases.names,
                    "report": self.report.dump(),
                },
                use_bin_type=True,
            )
        )

    @classmethod
    def loads(cls, blob: bytes) -> Index | None:
        """The index saved in `blob`, or None unless it is whole and consistent."""
        record = next(iter_records(blob), None)
        if record is None or record[1] != len(blob):
            return None
        d = msgpack.unpackb(record[2], raw=False)
        if not isinstance(d, dict) or d.get("v") != VERSION:
            return None
        ix = cls()
        for arr, raw in zip((ix.seqs, ix.ts, ix.offsets), d["arrays"], strict=True):
            arr.frombytes(raw)
        n = len(ix.seqs)
        if len(ix.ts) != n or len(ix.offsets) != n or (n and (ix.seqs[0] != 1 or ix.seqs[-1] != n)):
            return None
        ix.end, ix.crc, ix.header, ix.started_wall_ms = d["end"], d["crc"], d["header"], d["started"]
        ix.ended_wall_ms, ix.ended_t = d["ended"]
        ix.chapters, ix.polls, ix.questions = d["chapters"], d["polls"], d["questions"]
        ix.pages, ix.counts = d["pages"], d["counts"]
        ix.pauses, ix.pause_seqs, ix.people = d["pauses"], d["pause_seqs"], d["people"]
        ix.aliases.names = d["aliases"]
        ix.report = ReportFold.load(d["report"])
        if ix.report.pos != n:
            return None
        return ix


def save(index: Index, path: Path) -> bool:
    """Write atomically: a reader sees the old index or the new one, never half of one. The
    index is a cache: when it cannot be written (a full disk) the old one stays, and a reader
    that finds it stale rescans the log. Returns whether it was saved."""
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_bytes(index.dumps())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        return False
    return True


def load(path: Path, log: Path) -> Index | None:
    """A saved index, if there is one that fits the log as it is now: the log's bytes up to the
    index's end must have the checksum the index recorded (one pass at C speed), so damage or a
    cut-back log after a crash sends the reader back to a full scan, which finds it."""
    try:
        ix = Index.loads(path.read_bytes())
        if ix is None:
            return None
        with open(log, "rb") as f:
            head = f.read(ix.end)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, msgpack.UnpackException):
        return None
    if len(head) != ix.end or zlib.crc32(head) != ix.crc or (ix.offsets and ix.offsets[-1] >= ix.end):
        return None
    return ix


def extend(index: Index, data: bytes, base: int, *, live: bool) -> str | None:
    """Index the records in `data` (the log from offset `base`); return what damage stopped the
    scan, if any. In a live log a partial last record is a write in progress, not damage.
    Records must follow the index's last one in order (`codec.LogCheck`)."""
    end = 0
    for off, record_end, rec in codec.iter_log(data, 0, index.last_seq):
        end = record_end
        if "h" in rec:
            index.header = rec["h"]
            continue
        seq, t, type_, actor, d = rec["e"]
        index.add(seq, t, type_, d, rec["w"], base + off, actor)
    index.crc = zlib.crc32(memoryview(data)[:end], index.crc)
    index.end = base + end
    error = describe(data, end)
    if error is None or (live and error.startswith(("torn record header", "truncated record"))):
        return None
    return error.replace(f"byte {end}", f"byte {base + end}")
