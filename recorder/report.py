"""The engagement report: who attended and for how long, who took part and how, what replay
viewers watched. Folded from the recording, nothing kept beside it.

`ReportFold` folds the session's events one at a time (no I/O, no clock): a recording keeps one and
extends it with whatever the log gained since the last report, so a report on a live session costs
the events since the previous one. `report()` renders the fold at a session time `now_t` (the end
of an ended session, the live clock of a running one) together with what replay viewers added
(`recorder/interactive.py`): that part is a fold too, over the stored progress reports, quiz answers
and questions, done when the report is asked for.

Rules (documented in docs/protocol.md, "Engagement report"):
- The session runs from `session.started` (or t = 0) to `session.ended` (or `now_t`); time present
  is each participant's online stretches clipped to it. Attendance counts learners only.
- Content said while recording was paused is off the record: the caller passes it as invisible and
  it counts nowhere; presence counts, as in the replay.
- Votes in an anonymous poll count in the poll's participation only, never per person (trainers
  never see who voted there); quiz scores are over non-anonymous polls with a correct option.
- A replay viewer's progress report says which media-time interval was played ([from, to) in ms of
  the recording); they are merged into covered intervals, so seeking back, skipping and playback
  speed change nothing but what was covered.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .exports import _csv

MINUTE = 60_000
TOP_QUESTIONS = 10
# Kinds of activity, each with the event type that counts one.
ACTIVITY = {
    "chat.message": "chat",
    "qa.asked": "questions",
    "qa.upvoted": "upvotes",
    "poll.voted": "votes",
    "reaction": "reactions",
    "hand.raised": "hands",
}
KINDS = ("chat", "questions", "upvotes", "votes", "reactions", "hands")
PERSONAL = ("chat", "questions", "upvotes", "reactions", "hands")  # counted per person


class _Person:
    __slots__ = ("counts", "id", "joins", "name", "role", "upvotes_received", "votes")

    def __init__(self, pid: str, name: str, role: str) -> None:
        self.id = pid
        self.name = name
        self.role = role
        self.joins: list[list[int | None]] = []  # [joined t, left t or None]
        self.counts = dict.fromkeys(PERSONAL, 0)
        self.votes: dict[str, list[int]] = {}  # non-anonymous poll -> last choices
        self.upvotes_received = 0


class ReportFold:
    """The report's fold over the session's events, in order. `pos` counts the events folded."""

    def __init__(self) -> None:
        self.pos = 0
        self.started_t: int | None = None
        self.ended_t: int | None = None
        self.last_t = 0
        self.people: dict[str, _Person] = {}
        self.online: set[str] = set()  # learners online now
        self.attendance: list[tuple[int, int]] = [(0, 0)]  # (t, learners online from t on)
        self.polls: dict[str, dict[str, Any]] = {}
        self.questions: dict[str, dict[str, Any]] = {}
        self.activity: dict[int, dict[str, int]] = {}  # minute -> kind -> count

    def add(
        self, seq: int, t: int, type_: str, actor: str | None, data: dict[str, Any], visible: bool
    ) -> None:
        """Fold one event (`visible`: not said while recording was paused)."""
        self.pos += 1
        self.last_t = max(self.last_t, t)
        if type_ == "participant.joined":
            self._joined(t, data)
        elif type_ == "participant.left":
            self._left(t, data["id"])
        elif type_ == "session.started":
            if self.started_t is None:
                self.started_t = t
        elif type_ == "session.ended":
            self.ended_t = t
            for pid in list(self.online) + [p for p, x in self.people.items() if x.role != "learner"]:
                self._left(t, pid)
        elif not visible:
            return
        elif type_ == "poll.opened":
            self.polls[data["id"]] = {
                "id": data["id"],
                "question": data["question"],
                "t": t,
                "quiz": data.get("correct") is not None,
                "correct": data.get("correct"),
                "anonymous": bool(data.get("anonymous")),
                "closed_t": None,
                "voters": 0,
                "eligible": set(self.online),
            }
        elif type_ == "poll.closed":
            poll = self.polls.get(data["poll_id"])
            if poll is not None and poll["closed_t"] is None:
                poll["closed_t"] = t
        elif type_ == "qa.asked":
            self.questions[data["id"]] = {
                "id": data["id"],
                "text": data["text"],
                "author": actor,
                "name": None if data.get("anonymous") else data.get("name"),
                "votes": 0,
                "status": "open",
                "t": t,
                "seq": seq,
            }
        elif type_ in ("qa.answered", "qa.dismissed", "qa.reopened"):
            q = self.questions.get(data["id"])
            if q is not None:
                q["status"] = {"qa.answered": "answered", "qa.dismissed": "dismissed"}.get(type_, "open")
        kind = ACTIVITY.get(type_)
        if kind is None and type_ != "qa.unvoted":
            return
        person = self.people.get(actor or "")
        if type_ == "poll.voted":
            poll = self.polls.get(data["poll_id"])
            if poll is not None:
                poll["voters"] = data.get("voters", poll["voters"])
                if poll["anonymous"]:
                    person = None  # counted for the poll and the timeline, never for a person
        elif type_ in ("qa.upvoted", "qa.unvoted"):
            q = self.questions.get(data["id"])
            if q is not None:
                q["votes"] = data["votes"]
                author = self.people.get(q["author"] or "")
                if author is not None:
                    author.upvotes_received += 1 if type_ == "qa.upvoted" else -1
            if type_ == "qa.unvoted":
                if person is not None:
                    person.counts["upvotes"] -= 1
                return
        assert kind is not None
        minute = self.activity.setdefault(t // MINUTE, dict.fromkeys(KINDS, 0))
        minute[kind] += 1
        if person is None:
            return
        if type_ == "poll.voted":
            person.votes[data["poll_id"]] = list(data["choices"])
        else:
            person.counts[kind] += 1

    def _joined(self, t: int, data: dict[str, Any]) -> None:
        pid = data["id"]
        person = self.people.get(pid)
        if person is None:
            person = self.people[pid] = _Person(pid, data["name"], data["role"])
        person.name = data["name"]
        if not person.joins or person.joins[-1][1] is not None:
            person.joins.append([t, None])
        if person.role == "learner" and pid not in self.online:
            self.online.add(pid)
            self._attendance(t)
            for poll in self.polls.values():
                if poll["closed_t"] is None:
                    poll["eligible"].add(pid)

    def _left(self, t: int, pid: str) -> None:
        person = self.people.get(pid)
        if person is not None and person.joins and person.joins[-1][1] is None:
            person.joins[-1][1] = t
        if pid in self.online:
            self.online.discard(pid)
            self._attendance(t)

    def _attendance(self, t: int) -> None:
        if self.attendance[-1][0] == t:
            self.attendance[-1] = (t, len(self.online))
        else:
            self.attendance.append((t, len(self.online)))

    # -- rendering ------------------------------------------------------------------------------

    def span(self, now_t: int) -> tuple[int, int]:
        """The session's [start, end] in session time."""
        start = self.started_t if self.started_t is not None else 0
        end = self.ended_t if self.ended_t is not None else max(now_t, self.last_t)
        return start, max(start, end)

    def report(
        self,
        now_t: int,
        names: dict[str, str] | None = None,
        replay: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The report at session time `now_t`. `names`: aliases that replace learners' names (an
        anonymised recording). `replay`: what replay viewers added (see `replay_viewers`)."""
        names = names or {}
        start, end = self.span(now_t)
        duration = end - start
        quiz_polls = {p["id"]: p["correct"] for p in self.polls.values() if p["quiz"] and not p["anonymous"]}
        participants = []
        for person in self.people.values():
            present = sum(_overlap(a, b if b is not None else end, start, end) for a, b in person.joins)
            correct = sum(1 for pid, c in person.votes.items() if pid in quiz_polls and c == quiz_polls[pid])
            answered = sum(1 for pid in person.votes if pid in quiz_polls)
            participants.append(
                {
                    "id": person.id,
                    "name": names.get(person.id, person.name),
                    "role": person.role,
                    "joins": [{"joined": a, "left": b} for a, b in person.joins],
                    "present_ms": present,
                    "present_share": _share(present, duration),
                    **person.counts,
                    "upvotes_received": person.upvotes_received,
                    "poll_votes": len(person.votes),
                    "quiz_correct": correct,
                    "quiz_answered": answered,
                    "quiz_total": len(quiz_polls),
                    "quiz_score": _share(correct, len(quiz_polls)),
                }
            )
        learners = [p for p in participants if p["role"] == "learner"]
        curve = self._curve(start, end)
        polls = []
        for poll in self.polls.values():
            eligible = len(poll["eligible"])
            polls.append(
                {
                    "id": poll["id"],
                    "question": poll["question"],
                    "t": poll["t"],
                    "quiz": poll["quiz"],
                    "anonymous": poll["anonymous"],
                    "voters": poll["voters"],
                    "eligible": eligible,
                    "participation": _share(poll["voters"], eligible),
                }
            )
        top = sorted(
            (q for q in self.questions.values() if q["votes"] > 0), key=lambda q: (-q["votes"], q["seq"])
        )[:TOP_QUESTIONS]
        totals = {kind: sum(m[kind] for m in self.activity.values()) for kind in KINDS}
        out = {
            "session": {
                "start_t": start,
                "end_t": end,
                "duration_ms": duration,
                "final": self.ended_t is not None,
            },
            "totals": {
                "learners": len(learners),
                "peak_attendance": max((n for _, n in curve), default=0),
                "average_attendance": round(sum(p["present_ms"] for p in learners) / duration, 2)
                if duration
                else 0,
                **totals,
            },
            "participants": participants,
            "polls": polls,
            "timeline": self._timeline(start, end, curve),
            "top_questions": [
                {
                    "id": q["id"],
                    "text": q["text"],
                    "name": names.get(q["author"] or "", q["name"]) if q["name"] is not None else None,
                    "votes": q["votes"],
                    "status": q["status"],
                    "t": q["t"],
                }
                for q in top
            ],
        }
        out["replay"] = replay_viewers(replay or {}, quiz_polls)
        return out

    def _curve(self, start: int, end: int) -> list[tuple[int, int]]:
        """The learners online, as (t, count from t on), within [start, end]."""
        out: list[tuple[int, int]] = []
        for t, n in self.attendance:
            if t <= start:
                out = [(start, n)]
            elif t <= end:
                out.append((t, n))
        return out

    def _timeline(self, start: int, end: int, curve: list[tuple[int, int]]) -> list[dict[str, Any]]:
        """Per minute of session time from the start: the peak attendance and the activity."""
        first, last = start // MINUTE, max(start, end - 1) // MINUTE
        peaks = dict.fromkeys(range(first, last + 1), 0)
        for i, (t, n) in enumerate(curve):
            until = curve[i + 1][0] if i + 1 < len(curve) else end
            if until == t and i + 1 < len(curve):
                continue  # replaced at the same moment
            for m in range(t // MINUTE, max(t, until - 1) // MINUTE + 1):
                if m in peaks:
                    peaks[m] = max(peaks[m], n)
        zero = dict.fromkeys(KINDS, 0)
        return [{"minute": m, "attendance": peaks[m], **self.activity.get(m, zero)} for m in peaks]


def _overlap(a: int, b: int, lo: int, hi: int) -> int:
    return max(0, min(b, hi) - max(a, lo))


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def merge(intervals: Iterable[tuple[int, int]], limit: int | None = None) -> list[list[int]]:
    """Intervals [from, to) merged into the sorted, disjoint intervals they cover (touching ones
    join), clipped to [0, limit] when a limit is given."""
    out: list[list[int]] = []
    for a, b in sorted((max(0, a), b if limit is None else min(b, limit)) for a, b in intervals):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def replay_viewers(data: dict[str, Any], quiz_polls: dict[str, list[int] | None]) -> dict[str, Any]:
    """Replay viewers' part of the report. `data`: `duration_ms` (of the recording), `viewers`
    ([{id, name, created}]), `progress` ({viewer: [(from, to), ...]}), `quiz` ({viewer: {poll:
    choices}}), `questions` ([{viewer, t, text}]) as `ReplayStore.report_data` reads them."""
    duration = data.get("duration_ms", 0)
    progress = data.get("progress", {})
    answers = data.get("quiz", {})
    asked: dict[str, list[dict[str, Any]]] = {}
    for q in data.get("questions", []):
        asked.setdefault(q["viewer"], []).append({"t": q["t"], "text": q["text"]})
    viewers = []
    for v in data.get("viewers", []):
        covered = merge(progress.get(v["id"], ()), duration)
        watched = sum(b - a for a, b in covered)
        mine = answers.get(v["id"], {})
        correct = sum(1 for p, c in mine.items() if p in quiz_polls and c == quiz_polls[p])
        viewers.append(
            {
                "id": v["id"],
                "name": v["name"],
                "registered": v["created"],
                "watched": covered,
                "watched_ms": watched,
                "watched_share": _share(watched, duration),
                "quiz_correct": correct,
                "quiz_answered": sum(1 for p in mine if p in quiz_polls),
                "quiz_total": len(quiz_polls),
                "quiz_score": _share(correct, len(quiz_polls)),
                "questions": sorted(asked.get(v["id"], []), key=lambda q: q["t"]),
            }
        )
    return {"duration_ms": duration, "viewers": viewers}


CSV_COLUMNS = [
    "kind",
    "id",
    "name",
    "role",
    "first_joined_ms",
    "last_left_ms",
    "joins",
    "present_ms",
    "present_share",
    "chat",
    "questions",
    "upvotes",
    "upvotes_received",
    "poll_votes",
    "quiz_correct",
    "quiz_total",
    "reactions",
    "hands",
    "watched_ms",
    "watched_share",
]


def report_csv(report: dict[str, Any]) -> bytes:
    """One row per participant of the live session, then one per replay viewer; every text cell
    neutralised against formulas (`exports.csv_cell`)."""
    rows: list[list[Any]] = [CSV_COLUMNS]
    for p in report["participants"]:
        joins = p["joins"]
        rows.append(
            [
                "live",
                p["id"],
                p["name"],
                p["role"],
                joins[0]["joined"] if joins else "",
                joins[-1]["left"] if joins and joins[-1]["left"] is not None else "",
                len(joins),
                p["present_ms"],
                _cell(p["present_share"]),
                p["chat"],
                p["questions"],
                p["upvotes"],
                p["upvotes_received"],
                p["poll_votes"],
                p["quiz_correct"],
                p["quiz_total"],
                p["reactions"],
                p["hands"],
                "",
                "",
            ]
        )
    for v in report["replay"]["viewers"]:
        rows.append(
            [
                "replay",
                v["id"],
                v["name"],
                "viewer",
                "",
                "",
                "",
                "",
                "",
                "",
                len(v["questions"]),
                "",
                "",
                v["quiz_answered"],
                v["quiz_correct"],
                v["quiz_total"],
                "",
                "",
                v["watched_ms"],
                _cell(v["watched_share"]),
            ]
        )
    return _csv(rows)


def _cell(share: float | None) -> Any:
    return "" if share is None else share
