"""xAPI statements (Experience API 1.0.3) for what happened in a session, for learning platforms:
who attended the live session and for how long, what they answered in polls and quizzes, what
they asked, what replay viewers watched, answered and asked, and who completed an assignment.

Built from the recording's engagement-report fold (`report.py`) and what replay viewers stored
(`interactive.py`), never from a second record: `statements()` is a pure function of the
rendered report, the fold's per-learner answers and the replay data. Every statement is
deterministic: its id is a uuid5 of the session and what it describes, and its timestamp comes
from the recording, so building twice gives the same statements and re-sending one to a Learning
Record Store never stores it twice (an LRS keeps the first of two equivalent statements with one
id, xAPI 1.0.3 §2.2). What may still change is not stated yet: attendance once the session ended,
a live poll's answers once the poll closed; a replay viewer's coverage is stated as it stands,
with an id of that coverage, so watching more makes a new statement rather than changing one.

Each statement is validated with ralph's xAPI models (`ralph.models.xapi`), the maintained
pydantic models of the xAPI specification, before it leaves this module.
"""

from __future__ import annotations

import bisect
import hashlib
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError
from ralph.models.xapi.base.statements import BaseXapiStatement

from .report import ReportFold

VERSION = "1.0.3"
NAMESPACE = uuid.UUID("0f6f1b0e-6c1d-5a55-9b1e-c1a55ca57000")  # Classcast's uuid5 namespace

# Verbs (ADL vocabulary) and activity types, with the profiles they come from.
ATTENDED = "http://adlnet.gov/expapi/verbs/attended"
ANSWERED = "http://adlnet.gov/expapi/verbs/answered"
ASKED = "http://adlnet.gov/expapi/verbs/asked"
PROGRESSED = "http://adlnet.gov/expapi/verbs/progressed"
COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
VIRTUAL_CLASSROOM = "https://w3id.org/xapi/virtual-classroom/activity-types/virtual-classroom"
VIRTUAL_CLASSROOM_PROFILE = "https://w3id.org/xapi/virtual-classroom"
VIDEO = "https://w3id.org/xapi/video/activity-type/video"
VIDEO_PROFILE = "https://w3id.org/xapi/video"
INTERACTION = "http://adlnet.gov/expapi/activities/cmi.interaction"
QUESTION = "http://id.tincanapi.com/activitytype/question"
LESSON = "http://adlnet.gov/expapi/activities/lesson"
# Extensions (video profile, cmi5 session id).
EXT_PROGRESS = "https://w3id.org/xapi/video/extensions/progress"
EXT_TIME = "https://w3id.org/xapi/video/extensions/time"
EXT_LENGTH = "https://w3id.org/xapi/video/extensions/length"
EXT_PLAYED = "https://w3id.org/xapi/video/extensions/played-segments"
EXT_SESSION = "https://w3id.org/xapi/cmi5/context/extensions/sessionid"


@dataclass(frozen=True)
class Completion:
    """One assignee who completed an assignment of the session's replay (from the assignments'
    records, whatever keeps them). `assignee`: their id on this server (a replay viewer's id, or
    the assignment's own id for them); `completed_at`: epoch seconds; `share`: of the recording
    watched, 0..1; `score`: the quiz score, 0..1, or None without a quiz."""

    session_id: str
    assignee: str
    name: str
    completed_at: float
    share: float
    email: str | None = None
    score: float | None = None


@dataclass(frozen=True)
class Source:
    """What a session's statements are built from (see `statements`)."""

    session_id: str
    title: str
    base_url: str  # the server's public base URL: activity ids and accounts' homePage
    report: dict[str, Any]  # `ReportFold.report(...)`, with the replay viewers' part
    fold: ReportFold  # for each learner's own answers to polls
    wall_base_ms: int  # epoch ms of session time 0
    replay: dict[str, Any]  # `ReplayStore.report_data` (with its timestamps)
    emails: dict[str, str] | None = None  # participant or viewer id -> e-mail, where known
    completions: tuple[Completion, ...] = ()


def statement_id(session_id: str, *what: object) -> str:
    """The id of the statement about `what` in the session: the same every time it is built."""
    return str(uuid.uuid5(NAMESPACE, "\x1f".join([session_id, *map(str, what)])))


def iso_time(epoch_ms: float) -> str:
    """An xAPI timestamp: UTC, millisecond precision."""
    dt = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def iso_duration(ms: int) -> str:
    """An ISO 8601 duration with centisecond precision (xAPI 4.6), e.g. PT1H2M3.45S."""
    cs = (ms + 5) // 10  # half up
    h, rest = divmod(cs, 360_000)
    m, rest = divmod(rest, 6000)
    s, c = divmod(rest, 100)
    out = "PT" + (f"{h}H" if h else "") + (f"{m}M" if m else "")
    if s or c or out == "PT":
        out += f"{s}.{c:02d}S" if c else f"{s}S"
    return out


def _seconds(ms: int) -> float:
    return round(ms / 1000, 3)


def _segments(covered: Iterable[list[int] | tuple[int, int]]) -> str:
    """The video profile's played-segments: "from[.]to" in seconds, joined by "[,]"."""
    return "[,]".join(f"{_seconds(a)}[.]{_seconds(b)}" for a, b in covered)


class _Builder:
    def __init__(self, src: Source) -> None:
        self.src = src
        self.sid = src.session_id
        self.base = src.base_url.rstrip("/")
        self.emails = src.emails or {}
        self.session_activity = {
            "objectType": "Activity",
            "id": f"{self.base}/s/{self.sid}",
            "definition": {"type": VIRTUAL_CLASSROOM, "name": {"und": src.title or self.sid}},
        }
        self.video_activity = {
            "objectType": "Activity",
            "id": f"{self.base}/s/{self.sid}/replay",
            "definition": {"type": VIDEO, "name": {"und": f"Replay: {src.title or self.sid}"}},
        }
        self.registration = statement_id(self.sid, "registration")

    def actor(self, pid: str, name: str | None, email: str | None = None) -> dict[str, Any]:
        """By e-mail where known, else an account on this server."""
        out: dict[str, Any] = {"objectType": "Agent"}
        if name:
            out["name"] = name
        email = email or self.emails.get(pid)
        if email:
            out["mbox"] = f"mailto:{email}"
        else:
            out["account"] = {"homePage": self.base, "name": pid}
        return out

    def context(self, live: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        profile = VIRTUAL_CLASSROOM_PROFILE if live else VIDEO_PROFILE
        activities: dict[str, Any] = {"category": [{"objectType": "Activity", "id": profile}]}
        if not live:
            activities["parent"] = [self.session_activity]
        return {
            "registration": self.registration,
            "platform": "Classcast",
            "language": "und",
            "contextActivities": activities,
            "extensions": {EXT_SESSION: self.sid, **(extra or {})},
        }

    def statement(
        self,
        sid: str,
        actor: dict[str, Any],
        verb: str,
        obj: dict[str, Any],
        when_ms: float,
        context: dict[str, Any],
        result: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        out = {
            "id": sid,
            "actor": actor,
            "verb": {"id": verb, "display": {"en-US": verb.rsplit("/", 1)[1]}},
            "object": obj,
            "timestamp": iso_time(when_ms),
            "context": context,
            "version": VERSION,
        }
        if result:
            out["result"] = result
        return out

    def poll_object(self, poll_id: str, question: str, correct: list[int] | None) -> dict[str, Any]:
        definition: dict[str, Any] = {
            "type": INTERACTION,
            "name": {"und": question},
            "interactionType": "choice",
        }
        if correct is not None:
            definition["correctResponsesPattern"] = [_response(correct)]
        return {
            "objectType": "Activity",
            "id": f"{self.base}/s/{self.sid}/polls/{poll_id}",
            "definition": definition,
        }

    def answer_result(self, choices: list[int], correct: list[int] | None) -> dict[str, Any]:
        result: dict[str, Any] = {"response": _response(choices)}
        if correct is not None:
            right = sorted(choices) == sorted(correct)
            result["success"] = right
            result["score"] = {"scaled": 1 if right else 0, "raw": int(right), "min": 0, "max": 1}
        return result


def _response(choices: list[int]) -> str:
    """A choice interaction's response: the options' indexes joined by "[,]"."""
    return "[,]".join(str(c) for c in sorted(choices))


def statements(src: Source) -> list[dict[str, Any]]:
    """The session's statements, validated, ordered by timestamp then id."""
    b = _Builder(src)
    report, fold = src.report, src.fold
    names = {p["id"]: p["name"] for p in report["participants"]}
    out: list[dict[str, Any]] = []
    wall = src.wall_base_ms
    final = report["session"]["final"]
    # Attended: each learner, once the session ended, with the time present.
    for p in report["participants"]:
        if p["role"] != "learner" or not p["joins"] or not final:
            continue
        out.append(
            b.statement(
                statement_id(b.sid, "attended", p["id"]),
                b.actor(p["id"], p["name"]),
                ATTENDED,
                b.session_activity,
                wall + p["joins"][0]["joined"],
                b.context(True),
                {
                    "duration": iso_duration(p["present_ms"]),
                    "completion": True,
                    **(
                        {"extensions": {EXT_PROGRESS: p["present_share"]}}
                        if p["present_share"] is not None
                        else {}
                    ),
                },
            )
        )
    # Answered: a learner's last choices in a (non-anonymous) poll, once it closed.
    for pid, person in fold.people.items():
        for poll_id, (choices, t) in person.answers.items():
            poll = fold.polls.get(poll_id)
            if poll is None or poll["anonymous"] or (poll_id in fold.open_polls and not final):
                continue
            out.append(
                b.statement(
                    statement_id(b.sid, "answered", pid, poll_id),
                    b.actor(pid, names.get(pid, person.name)),
                    ANSWERED,
                    b.poll_object(poll_id, poll["question"], poll["correct"]),
                    wall + t,
                    b.context(True),
                    b.answer_result(choices, poll["correct"]),
                )
            )
    # Asked: a learner's question (anonymous ones are nobody's: trainers never see who asked).
    for qid, q in fold.questions.items():
        if q["name"] is None or not q["author"]:
            continue
        out.append(
            b.statement(
                statement_id(b.sid, "asked", qid),
                b.actor(q["author"], names.get(q["author"], q["name"])),
                ASKED,
                {
                    "objectType": "Activity",
                    "id": f"{b.base}/s/{b.sid}/questions/{qid}",
                    "definition": {"type": QUESTION, "name": {"und": q["text"]}},
                },
                wall + q["t"],
                b.context(True),
                {"response": q["text"]},
            )
        )
    out += _replay(b, report, src.replay)
    for c in src.completions:
        if c.session_id == b.sid:
            out.append(_completion(b, c))
    for s in out:
        validate(s)
    out.sort(key=lambda s: (s["timestamp"], s["id"]))
    return out


def _replay(b: _Builder, report: dict[str, Any], data: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    replay = report["replay"]
    duration = replay["duration_ms"]
    progress, progress_at = data.get("progress", {}), data.get("progress_at", {})
    for v in replay["viewers"]:
        actor = b.actor(v["id"], v["name"])
        covered = v["watched"]
        if covered:
            # When the coverage last grew: a report that only replays what was seen changes
            # nothing, so the statement (and its timestamp) stays the same.
            reports = zip(progress.get(v["id"], ()), progress_at.get(v["id"], ()), strict=False)
            grew_at = last_growth(reports, duration, v["registered"])
            out.append(
                b.statement(
                    statement_id(b.sid, "progressed", v["id"], _segments(covered)),
                    actor,
                    PROGRESSED,
                    b.video_activity,
                    grew_at * 1000,
                    b.context(False, {EXT_LENGTH: _seconds(duration), EXT_PLAYED: _segments(covered)}),
                    {
                        "duration": iso_duration(v["watched_ms"]),
                        "extensions": {
                            EXT_PROGRESS: v["watched_share"] if v["watched_share"] is not None else 0,
                            EXT_TIME: _seconds(covered[-1][1]),
                        },
                    },
                )
            )
        for poll_id, choices in data.get("quiz", {}).get(v["id"], {}).items():
            poll = b.src.fold.polls.get(poll_id)
            if poll is None:
                continue
            at = data.get("quiz_at", {}).get(v["id"], {}).get(poll_id, v["registered"])
            correct = poll["correct"]
            out.append(
                b.statement(
                    statement_id(b.sid, "replay-answered", v["id"], poll_id, at),
                    actor,
                    ANSWERED,
                    b.poll_object(poll_id, poll["question"], correct),
                    at * 1000,
                    b.context(False),
                    b.answer_result(choices, correct),
                )
            )
    viewers = {v["id"]: v["name"] for v in replay["viewers"]}
    for q in data.get("questions", []):
        if q["viewer"] not in viewers or "id" not in q:
            continue
        out.append(
            b.statement(
                statement_id(b.sid, "replay-asked", q["id"]),
                b.actor(q["viewer"], viewers[q["viewer"]]),
                ASKED,
                {
                    "objectType": "Activity",
                    "id": f"{b.base}/s/{b.sid}/replay/questions/{q['id']}",
                    "definition": {"type": QUESTION, "name": {"und": q["text"]}},
                },
                q["created"] * 1000,
                b.context(False, {EXT_TIME: _seconds(q["t"])}),
                {"response": q["text"]},
            )
        )
    return out


def last_growth(reports: Iterable[tuple[tuple[int, int], float]], limit: int, default: float) -> float:
    """When a viewer's coverage last grew: the time of the last report, in the order they came,
    that covered something not covered before (clipped to [0, limit]; touching intervals join, as
    in `report.merge`). One pass over a sorted set of disjoint intervals, so 10 000 reports cost
    milliseconds, not a merge each."""
    starts: list[int] = []
    ends: list[int] = []
    grew = default
    for (a, b), at in reports:
        a, b = max(0, a), min(b, limit)
        if b <= a:
            continue
        i = bisect.bisect_left(ends, a)  # the first interval ending at or after a
        j = bisect.bisect_right(starts, b)  # past the last one starting at or before b
        before = sum(ends[k] - starts[k] for k in range(i, j))
        lo, hi = (min(a, starts[i]), max(b, ends[j - 1])) if i < j else (a, b)
        if hi - lo > before:
            grew = at
        starts[i:j], ends[i:j] = [lo], [hi]
    return grew


def _completion(b: _Builder, c: Completion) -> dict[str, Any]:
    result: dict[str, Any] = {
        "completion": True,
        "extensions": {EXT_PROGRESS: round(c.share, 4)},
    }
    if c.score is not None:
        result["score"] = {"scaled": round(c.score, 4)}
    return b.statement(
        statement_id(b.sid, "completed", c.assignee),
        b.actor(c.assignee, c.name, c.email),
        COMPLETED,
        {
            "objectType": "Activity",
            "id": f"{b.base}/s/{b.sid}/replay/assignment",
            "definition": {"type": LESSON, "name": {"und": f"Assignment: {b.src.title or b.sid}"}},
        },
        c.completed_at * 1000,
        b.context(False),
        result,
    )


class InvalidStatementError(ValueError):
    """A statement ralph's xAPI models reject: a bug here, never sent anywhere."""


VALIDATED_MAX = 200_000  # digests of statements already validated, kept (16 bytes each)
_validated: OrderedDict[bytes, None] = OrderedDict()
_validated_lock = threading.Lock()


def validate(statement: dict[str, Any]) -> None:
    """Check one statement against ralph's xAPI 1.0.3 statement model. The model is thorough
    (IRIs parsed, language tags looked up) and slow, about half a millisecond a statement, and
    the same statements are built again at every request and push: one already found valid (the
    same bytes) is not checked again."""
    key = hashlib.blake2b(orjson.dumps(statement, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()
    with _validated_lock:
        if key in _validated:
            _validated.move_to_end(key)
            return
    try:
        BaseXapiStatement.model_validate(statement)
    except ValidationError as exc:
        raise InvalidStatementError(f"statement {statement.get('id')}: {exc}") from None
    with _validated_lock:
        _validated[key] = None
        while len(_validated) > VALIDATED_MAX:
            _validated.popitem(last=False)
