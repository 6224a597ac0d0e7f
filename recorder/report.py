"""The engagement report: who attended and for how long, who took part and how, what replay
viewers watched. Folded from the recording, nothing kept beside it.

`ReportFold` folds the session's events one at a time (no I/O, no clock). It lives in the
recording's index (`recorder/index.py`): the recorder's writer folds each event as it indexes it
and saves the fold with the index, and a reader loads it and folds only what was written after, so
a report costs about what opening the manifest does, however long the session, and a live
session's next report only the events since the last.

`report()` renders the fold at a session time `now_t` (the end of an ended session, the live clock
of a running one) together with what replay viewers added (`recorder/interactive.py`): that part
is a fold too, over the stored progress reports, quiz answers and questions, done when the report
is asked for.

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

import heapq
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
_KIND_AT = {kind: i for i, kind in enumerate(KINDS)}
_STATUS = {"qa.answered": "answered", "qa.dismissed": "dismissed", "qa.reopened": "open"}


class _Person:
    __slots__ = (
        "answers",
        "counts",
        "id",
        "joins",
        "name",
        "poll_votes",
        "quiz_answered",
        "quiz_correct",
        "role",
        "upvotes_received",
    )

    def __init__(self, pid: str, name: str, role: str) -> None:
        self.id = pid
        self.name = name
        self.role = role
        self.joins: list[list[int | None]] = []  # [joined t, left t or None]
        self.counts = dict.fromkeys(PERSONAL, 0)
        self.upvotes_received = 0
        self.poll_votes = 0  # polls voted in (non-anonymous)
        self.quiz_answered = 0  # of those, quizzes
        self.quiz_correct = 0  # quizzes whose last choices are the correct ones
        self.answers: dict[str, list[Any]] = {}  # poll -> [last choices, t] (non-anonymous polls)

    def dump(self) -> list[Any]:
        return [
            self.name,
            self.role,
            self.joins,
            [self.counts[k] for k in PERSONAL],
            self.upvotes_received,
            self.poll_votes,
            self.quiz_answered,
            self.quiz_correct,
            self.answers,
        ]

    @classmethod
    def load(cls, pid: str, d: list[Any]) -> _Person:
        p = cls(pid, d[0], d[1])
        p.joins = d[2]
        p.counts = dict(zip(PERSONAL, d[3], strict=True))
        p.upvotes_received, p.poll_votes, p.quiz_answered, p.quiz_correct = d[4:8]
        p.answers = d[8]
        return p


class ReportFold:
    """The report's fold over the session's events, in order. `pos` counts the events folded.

    Its state stays small whatever the session's length (it is saved with the recording's index,
    `recorder/index.py`): per person counters and stretches online, per poll and question a few
    fields, per minute the activity; quiz scores are kept as counts, updated from each vote's
    `previous` choices, and the learners eligible for a poll are a set only while it is open."""

    def __init__(self) -> None:
        self.pos = 0
        self.started_t: int | None = None
        self.ended_t: int | None = None
        self.last_t = 0
        self.people: dict[str, _Person] = {}
        self.online: set[str] = set()  # learners online now
        self.attendance: list[list[int]] = [[0, 0]]  # [t, learners online from t on]
        self.polls: dict[str, dict[str, Any]] = {}
        self.open_polls: dict[str, set[str]] = {}  # poll -> learners online while it is open
        self.questions: dict[str, dict[str, Any]] = {}
        self.activity: dict[int, list[int]] = {}  # minute -> counts in KINDS order

    def add(
        self, seq: int, t: int, type_: str, actor: str | None, data: dict[str, Any], visible: bool
    ) -> None:
        """Fold one event (`visible`: not said while recording was paused)."""
        self.pos += 1
        if t > self.last_t:
            self.last_t = t
        if type_ == "participant.joined":
            self._joined(t, data)
            return
        if type_ == "participant.left":
            self._left(t, data["id"])
            return
        if type_ == "session.started":
            if self.started_t is None:
                self.started_t = t
            return
        if type_ == "session.ended":
            self.ended_t = t
            for pid in list(self.online) + [p for p, x in self.people.items() if x.role != "learner"]:
                self._left(t, pid)
            for poll_id in list(self.open_polls):
                self._close(poll_id)
            return
        if not visible:
            return
        kind = ACTIVITY.get(type_)
        if kind is None:
            self._other(t, type_, actor, data)
            return
        minute = self.activity.get(t // MINUTE)
        if minute is None:
            minute = self.activity[t // MINUTE] = [0] * len(KINDS)
        minute[_KIND_AT[kind]] += 1
        person = self.people.get(actor) if actor else None
        if type_ == "poll.voted":
            self._voted(person, data, t)
            return
        if type_ == "qa.asked":
            self.questions[data["id"]] = {
                "text": data["text"],
                "author": actor,
                "name": None if data.get("anonymous") else data.get("name"),
                "votes": 0,
                "status": "open",
                "t": t,
                "seq": seq,
            }
        elif type_ == "qa.upvoted":
            self._upvote(data, 1)
        if person is not None:
            person.counts[kind] += 1

    def _other(self, t: int, type_: str, actor: str | None, data: dict[str, Any]) -> None:
        if type_ == "poll.opened":
            self.polls[data["id"]] = {
                "question": data["question"],
                "t": t,
                "correct": data.get("correct"),
                "anonymous": bool(data.get("anonymous")),
                "voters": 0,
                "eligible": len(self.online),
            }
            self.open_polls[data["id"]] = set(self.online)
        elif type_ == "poll.closed":
            self._close(data["poll_id"])
        elif type_ == "qa.unvoted":
            self._upvote(data, -1)
            person = self.people.get(actor) if actor else None
            if person is not None:
                person.counts["upvotes"] -= 1
        elif type_ in _STATUS:
            q = self.questions.get(data["id"])
            if q is not None:
                q["status"] = _STATUS[type_]

    def _close(self, poll_id: str) -> None:
        eligible = self.open_polls.pop(poll_id, None)
        if eligible is not None:
            self.polls[poll_id]["eligible"] = len(eligible)

    def _voted(self, person: _Person | None, data: dict[str, Any], t: int) -> None:
        poll = self.polls.get(data["poll_id"])
        if poll is None:
            return
        poll["voters"] = data.get("voters", poll["voters"])
        if person is None or poll["anonymous"]:
            return  # counted for the poll and the timeline, never for a person
        previous = data.get("previous")
        correct = poll["correct"]
        person.answers[data["poll_id"]] = [data["choices"], t]  # what xAPI says they answered
        if previous is None:
            person.poll_votes += 1
        if correct is not None:
            person.quiz_answered += previous is None
            person.quiz_correct += (data["choices"] == correct) - (previous == correct)

    def _upvote(self, data: dict[str, Any], by: int) -> None:
        q = self.questions.get(data["id"])
        if q is None:
            return
        q["votes"] = data["votes"]
        author = self.people.get(q["author"]) if q["author"] else None
        if author is not None:
            author.upvotes_received += by

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
            for eligible in self.open_polls.values():
                eligible.add(pid)

    def _left(self, t: int, pid: str) -> None:
        person = self.people.get(pid)
        if person is not None and person.joins and person.joins[-1][1] is None:
            person.joins[-1][1] = t
        if pid in self.online:
            self.online.discard(pid)
            self._attendance(t)

    def _attendance(self, t: int) -> None:
        if self.attendance[-1][0] == t:
            self.attendance[-1][1] = len(self.online)
        else:
            self.attendance.append([t, len(self.online)])

    # -- saved with the index -------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        return {
            "pos": self.pos,
            "span": [self.started_t, self.ended_t, self.last_t],
            "people": {pid: p.dump() for pid, p in self.people.items()},
            "online": sorted(self.online),
            "attendance": self.attendance,
            "polls": self.polls,
            "open": {poll: sorted(ids) for poll, ids in self.open_polls.items()},
            "questions": self.questions,
            "activity": list(self.activity.items()),
        }

    @classmethod
    def load(cls, d: dict[str, Any]) -> ReportFold:
        f = cls()
        f.pos = d["pos"]
        f.started_t, f.ended_t, f.last_t = d["span"]
        f.people = {pid: _Person.load(pid, p) for pid, p in d["people"].items()}
        f.online = set(d["online"])
        f.attendance = d["attendance"]
        f.polls = d["polls"]
        f.open_polls = {poll: set(ids) for poll, ids in d["open"].items()}
        f.questions = d["questions"]
        f.activity = {m: counts for m, counts in d["activity"]}
        return f

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
        quiz_polls = {
            pid: p["correct"]
            for pid, p in self.polls.items()
            if p["correct"] is not None and not p["anonymous"]
        }
        participants = []
        for person in self.people.values():
            present = sum(_overlap(a, b if b is not None else end, start, end) for a, b in person.joins)
            quizzes = len(quiz_polls) if person.role == "learner" else 0  # trainers do not vote
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
                    "poll_votes": person.poll_votes,
                    "quiz_correct": person.quiz_correct,
                    "quiz_answered": person.quiz_answered,
                    "quiz_total": quizzes,
                    "quiz_score": _share(person.quiz_correct, quizzes),
                }
            )
        learners = [p for p in participants if p["role"] == "learner"]
        curve = self._curve(start, end)
        polls = []
        for poll_id, poll in self.polls.items():
            eligible = len(self.open_polls[poll_id]) if poll_id in self.open_polls else poll["eligible"]
            polls.append(
                {
                    "id": poll_id,
                    "question": poll["question"],
                    "t": poll["t"],
                    "quiz": poll["correct"] is not None,
                    "anonymous": poll["anonymous"],
                    "voters": poll["voters"],
                    "eligible": eligible,
                    "participation": _share(poll["voters"], eligible),
                }
            )
        top = heapq.nsmallest(
            TOP_QUESTIONS,
            ((qid, q) for qid, q in self.questions.items() if q["votes"] > 0),
            key=lambda item: (-item[1]["votes"], item[1]["seq"]),
        )
        totals = {kind: sum(m[i] for m in self.activity.values()) for i, kind in enumerate(KINDS)}
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
                    "id": qid,
                    "text": q["text"],
                    "name": names.get(q["author"] or "", q["name"]) if q["name"] is not None else None,
                    "votes": q["votes"],
                    "status": q["status"],
                    "t": q["t"],
                }
                for qid, q in top
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
        zero = [0] * len(KINDS)
        return [
            {"minute": m, "attendance": peaks[m], **dict(zip(KINDS, self.activity.get(m, zero), strict=True))}
            for m in peaks
        ]


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
