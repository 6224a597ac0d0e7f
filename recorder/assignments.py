"""Replay assignments: a trainer sends the replay (and, if required, its quiz) to learners with a
deadline and a completion threshold, and follows each assignee's status.

Only the assignments themselves are stored here (one small JSON file per session, written
atomically). Each assignee is a replay viewer registered for them (`ReplayStore`), so what they
watched and answered is what every other viewer's is: the player's progress reports and quiz
answers, which the engagement report folds (`recorder/report.py`). A status is derived from that
report when asked for; nothing about progress is kept twice.

Rules (docs/protocol.md, "Replay assignments"):
- completed: the viewer's merged watched intervals cover at least `threshold` of the recording
  and, when the quiz is required, every quiz poll (non-anonymous, with a correct option) has an
  answer. `completed_at` is the wall-clock time of the progress report (or quiz answer) that made
  it so; a completion after the deadline stays completed, marked `late`.
- overdue: the deadline passed and it is not completed.
- in_progress: before the deadline, something watched or answered; not_started: nothing yet.
- "Everyone who missed the live session or left early" (`missed_or_left_early`), from the final
  report's attendance, learners matched by name (case and spacing ignored, one person however
  many devices they joined from): *missed* = never present between the session's start and end
  (or on the trainer's roster and never seen at all); *left early* = present, but their last
  stretch online ended more than `left_early_s` before the session's end.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import icalendar

from classroom.core import CommandError

from .exports import _csv
from .paths import valid_id
from .report import merge

MAX_ASSIGNMENTS = 50  # per session
MAX_ASSIGNEES = 500  # per assignment
EMAIL_LEN = 254
DEADLINE_MAX_S = 366 * 86_400  # how far ahead a deadline may be
LEFT_EARLY_S = 300  # default: leaving more than 5 minutes before the end is leaving early
FILE_BYTES = 16 * 1024 * 1024  # a larger file is not one this server wrote
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

Status = Literal["not_started", "in_progress", "completed", "overdue"]
STATUSES: tuple[Status, ...] = ("not_started", "in_progress", "completed", "overdue")


@dataclass(frozen=True, slots=True)
class Assignee:
    id: str  # the assignee's replay viewer id: their progress reports and quiz answers carry it
    name: str
    email: str | None = None
    reason: str | None = None  # "missed" or "left_early" when derived from the attendance


@dataclass(frozen=True, slots=True)
class Assignment:
    id: str
    session_id: str
    created_at: float  # Unix seconds
    deadline: float  # Unix seconds
    threshold: float  # share of the recording to watch, in (0, 1]
    quiz_required: bool
    audience: str  # "list" (named by the trainer) or "missed" (missed the session or left early)
    assignees: tuple[Assignee, ...]

    def dump(self) -> dict[str, Any]:
        return {**asdict(self), "assignees": [asdict(a) for a in self.assignees]}

    @classmethod
    def load(cls, d: dict[str, Any]) -> Assignment:
        return cls(
            id=str(d["id"]),
            session_id=str(d["session_id"]),
            created_at=float(d["created_at"]),
            deadline=float(d["deadline"]),
            threshold=float(d["threshold"]),
            quiz_required=bool(d["quiz_required"]),
            audience=str(d["audience"]),
            assignees=tuple(
                Assignee(str(a["id"]), str(a["name"]), a.get("email"), a.get("reason"))
                for a in d["assignees"]
            ),
        )


@dataclass(frozen=True, slots=True)
class AssigneeStatus:
    """One assignee's standing, derived from the engagement report (the record xAPI's
    "completed" statements can be made from)."""

    assignment_id: str
    assignee_id: str  # the replay viewer id
    name: str
    email: str | None
    status: Status
    watched_ms: int
    watched_share: float  # of the recording, 0..1 (rounded to 4 places, as in the report)
    quiz_required: bool
    quiz_answered: int
    quiz_correct: int
    quiz_total: int
    quiz_score: float | None  # correct / total, None when the recording has no quiz
    deadline: float  # Unix seconds
    completed_at: float | None  # Unix seconds, when completed
    late: bool  # completed after the deadline


# -- statuses -----------------------------------------------------------------------------------


def assignee_statuses(
    assignment: Assignment, report: dict[str, Any], activity: dict[str, Any], now: float
) -> list[AssigneeStatus]:
    """Every assignee's status at Unix time `now`.

    `report`: the engagement report (`ReportFold.report`, with its `replay` part) built from
    `activity`, what `ReplayStore.report_data` read (its `progress_at` and `quiz_at` give the
    wall-clock times of reports and answers, for `completed_at`)."""
    replay = report["replay"]
    duration = replay["duration_ms"]
    viewers = {v["id"]: v for v in replay["viewers"]}
    quiz_polls = {p["id"] for p in report["polls"] if p["quiz"] and not p["anonymous"]}
    need = assignment.threshold * duration
    out = []
    for a in assignment.assignees:
        v = viewers.get(a.id)
        watched = v["watched_ms"] if v else 0
        answered = v["quiz_answered"] if v else 0
        correct = v["quiz_correct"] if v else 0
        completed_at = None
        quiz_done = not assignment.quiz_required or answered >= len(quiz_polls)
        if duration > 0 and watched >= need and quiz_done:
            times = [_watched_enough_at(activity, a.id, duration, need) or now]
            if assignment.quiz_required:
                answers = activity.get("quiz_at", {}).get(a.id, {})
                times += [t for poll, t in answers.items() if poll in quiz_polls]
            completed_at = max(times)
        if completed_at is not None:
            status: Status = "completed"
        elif now > assignment.deadline:
            status = "overdue"
        elif watched > 0 or answered > 0:
            status = "in_progress"
        else:
            status = "not_started"
        out.append(
            AssigneeStatus(
                assignment_id=assignment.id,
                assignee_id=a.id,
                name=a.name,
                email=a.email,
                status=status,
                watched_ms=watched,
                watched_share=round(watched / duration, 4) if duration else 0.0,
                quiz_required=assignment.quiz_required,
                quiz_answered=answered,
                quiz_correct=correct,
                quiz_total=len(quiz_polls),
                quiz_score=round(correct / len(quiz_polls), 4) if quiz_polls else None,
                deadline=assignment.deadline,
                completed_at=completed_at,
                late=completed_at is not None and completed_at > assignment.deadline,
            )
        )
    return out


def _covered(intervals: list[tuple[int, int]], duration: int) -> int:
    return sum(b - a for a, b in merge(intervals, duration))


def _watched_enough_at(activity: dict[str, Any], viewer: str, duration: int, need: float) -> float | None:
    """The time of the progress report after which the viewer's coverage first reached `need` ms:
    the shortest prefix of their reports (in the order they came) that covers it, found by
    bisection (coverage only grows with the prefix)."""
    intervals = activity.get("progress", {}).get(viewer, [])
    times = activity.get("progress_at", {}).get(viewer, [])
    if not intervals or len(times) != len(intervals) or _covered(intervals, duration) < need:
        return None
    lo, hi = 1, len(intervals)
    while lo < hi:
        mid = (lo + hi) // 2
        if _covered(intervals[:mid], duration) >= need:
            hi = mid
        else:
            lo = mid + 1
    return float(times[lo - 1])


def counts(statuses: list[AssigneeStatus]) -> dict[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    for s in statuses:
        out[s.status] += 1
    return out


# -- who missed the session or left early ----------------------------------------------------------


def name_key(name: str) -> str:
    """Names compare without case or spacing differences."""
    return " ".join(name.split()).casefold()


def missed_or_left_early(
    report: dict[str, Any], roster: list[tuple[str, str | None]], left_early_s: int
) -> list[tuple[str, str | None, str]]:
    """(name, e-mail, reason) of every learner who missed the session or left early (see the
    module's rules): the roster's people first, in its order, then the other learners of the
    attendance in the report's order. `report` must be final (an ended session)."""
    end = report["session"]["end_t"]
    learners: dict[str, list[dict[str, Any]]] = {}
    for p in report["participants"]:
        if p["role"] == "learner":
            learners.setdefault(name_key(p["name"]), []).append(p)

    def reason(people: list[dict[str, Any]]) -> str | None:
        if sum(p["present_ms"] for p in people) == 0:
            return "missed"
        last = max(j["left"] if j["left"] is not None else end for p in people for j in p["joins"])
        return "left_early" if last < end - left_early_s * 1000 else None

    out: list[tuple[str, str | None, str]] = []
    listed = set()
    for name, email in roster:
        key = name_key(name)
        listed.add(key)
        why = reason(learners.get(key, []))
        if why:
            out.append((name, email, why))
    for key, people in learners.items():
        if key not in listed and (why := reason(people)):
            out.append((people[0]["name"], None, why))
    return out


# -- durable store ----------------------------------------------------------------------------------


class AssignmentStore:
    """The assignments of each session in `root/<session>.json`: read when asked for (and kept),
    written whole to a temporary file, synced and renamed over the old one, so a crash leaves
    either the old list or the new, never half of one. A file that cannot be read is reported
    (`assignments_damaged`) and left as it is for a person to look at; nothing overwrites it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, list[Assignment]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _path(self, session_id: str) -> Path:
        if not valid_id(session_id):
            raise CommandError("not_found", "no such session")
        return self.root / f"{session_id}.json"

    def _read(self, session_id: str) -> list[Assignment]:
        path = self._path(session_id)
        try:
            with path.open("rb") as f:
                blob = f.read(FILE_BYTES + 1)
        except FileNotFoundError:
            return []
        try:
            if len(blob) > FILE_BYTES:
                raise ValueError("the file is too large")
            doc = json.loads(blob)
            if (
                not isinstance(doc, dict)
                or doc.get("version") != 1
                or not isinstance(doc.get("assignments"), list)
            ):
                raise ValueError("not an assignments file")
            items = [Assignment.load(d) for d in doc["assignments"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CommandError(
                "assignments_damaged",
                f"the assignments of this session cannot be read ({exc}); "
                f"the file {path.name} in the data directory's assignments folder was left as it is",
            ) from None
        return items

    def _write(self, session_id: str, items: list[Assignment]) -> None:
        path = self._path(session_id)
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        blob = json.dumps(
            {"version": 1, "assignments": [a.dump() for a in items]}, ensure_ascii=False
        ).encode()
        try:
            with tmp.open("wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            fd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise CommandError("storage_full", "the disk is full: the assignment was not saved") from None
            raise

    def _lock(self, session_id: str) -> asyncio.Lock:
        return self._locks.setdefault(session_id, asyncio.Lock())

    async def list(self, session_id: str) -> list[Assignment]:
        async with self._lock(session_id):
            return list(await self._load(session_id))

    async def _load(self, session_id: str) -> list[Assignment]:
        items = self._cache.get(session_id)
        if items is None:
            items = await asyncio.to_thread(self._read, session_id)
            self._cache[session_id] = items
        return items

    async def add(self, assignment: Assignment) -> None:
        """Save one more assignment of its session (at most MAX_ASSIGNMENTS: `limit_reached`)."""
        session_id = assignment.session_id
        async with self._lock(session_id):
            items = await self._load(session_id)
            if len(items) >= MAX_ASSIGNMENTS:
                raise CommandError("limit_reached", f"a session has at most {MAX_ASSIGNMENTS} assignments")
            new = [*items, assignment]
            await asyncio.to_thread(self._write, session_id, new)
            self._cache[session_id] = new

    async def forget(self, session_id: str) -> None:
        """The session was deleted: its assignments go with it."""
        async with self._lock(session_id):
            self._cache.pop(session_id, None)
            await asyncio.to_thread(self._path(session_id).unlink, True)
        self._locks.pop(session_id, None)


# -- exports ----------------------------------------------------------------------------------------


def iso(t: float | None) -> str | None:
    """Unix seconds as ISO 8601 in UTC, to the second."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


CSV_COLUMNS = [
    "assignment_id",
    "deadline",
    "threshold",
    "quiz_required",
    "name",
    "email",
    "reason",
    "status",
    "watched_share",
    "quiz_answered",
    "quiz_total",
    "quiz_score",
    "completed_at",
    "late",
    "link",
]


def assignments_csv(rows: list[tuple[Assignment, AssigneeStatus, str]]) -> bytes:
    """One row per assignee: (assignment, status, personal link). Every text cell neutralised
    against formulas (`exports.csv_cell`)."""
    out: list[list[Any]] = [CSV_COLUMNS]
    by_id: dict[str, dict[str, Assignee]] = {}
    for a, s, link in rows:
        if a.id not in by_id:
            by_id[a.id] = {x.id: x for x in a.assignees}
        assignee = by_id[a.id][s.assignee_id]
        out.append(
            [
                a.id,
                iso(a.deadline),
                a.threshold,
                "yes" if a.quiz_required else "no",
                s.name,
                s.email or "",
                assignee.reason or "",
                s.status,
                s.watched_share,
                s.quiz_answered,
                s.quiz_total,
                "" if s.quiz_score is None else s.quiz_score,
                iso(s.completed_at) or "",
                "yes" if s.late else "no",
                link,
            ]
        )
    return _csv(out)


def deadline_ics(assignment: Assignment, assignee: Assignee, title: str, link: str, now: float) -> bytes:
    """An iCalendar file with one event at the deadline (and a reminder a day before), for the
    assignee's calendar. The UID stays the same for an assignment and assignee, so importing it
    again updates the event rather than adding a second."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Classcast//Replay assignment//EN")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    event = icalendar.Event()
    event.add("uid", f"{assignment.id}.{assignee.id}@classcast")
    event.add("dtstamp", datetime.fromtimestamp(now, UTC))
    deadline = datetime.fromtimestamp(assignment.deadline, UTC).replace(microsecond=0)
    event.add("dtstart", deadline)
    event.add("summary", f"Deadline: watch the replay of {title}")
    needs = f"Watch at least {round(assignment.threshold * 100)}% of the replay"
    if assignment.quiz_required:
        needs += " and answer its quiz"
    event.add("description", f"{needs} by this time.\nYour personal link: {link}")
    event.add("url", link)
    alarm = icalendar.Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", f"Tomorrow: the replay of {title} is due")
    alarm.add("trigger", timedelta(days=-1))
    event.add_component(alarm)
    cal.add_component(event)
    return cal.to_ical()
