"""The replay assignments' HTTP routes: trainers create and list them (JSON or CSV), an assignee
reads their own deadline and progress and gets the deadline as an `.ics` file. The rules are in
`recorder/assignments.py`; statuses come from the engagement report (`api.build_report`)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from classroom.api import base_url
from classroom.auth import Signer, new_id
from classroom.core import CommandError
from classroom.core.limits import NAME_LEN
from classroom.core.validation import Name, Text, parse
from classroom.http import read_json
from classroom.keys import SIGNER

from . import assignments as rules
from .api import ASSIGNMENTS, REPLAY_STORE, Access, _recording, _require_manager, _respond, build_report
from .assignments import MAX_ASSIGNEES, MAX_ASSIGNMENTS, Assignee, AssigneeStatus, Assignment
from .xapi import Completion

_CSV_TYPES = ("text/csv",)


class AssigneeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: Name(NAME_LEN)  # type: ignore[valid-type]
    email: Text(rules.EMAIL_LEN, one_line=True) | None = None  # type: ignore[valid-type]

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not rules.EMAIL.fullmatch(v):
            raise ValueError("not an e-mail address")
        return v


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    deadline: str = Field(max_length=64)
    threshold: float = Field(default=0.9, gt=0, le=1)
    quiz_required: bool = False
    audience: Literal["list", "missed"] = "list"
    assignees: list[AssigneeIn] = Field(default_factory=list, max_length=rules.MAX_ASSIGNEES)
    left_early_s: int = Field(default=rules.LEFT_EARLY_S, ge=0, le=86_400)


def _deadline(text: str, now: float) -> float:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            "invalid_payload", "deadline: an ISO 8601 date and time, e.g. 2030-01-31T17:00:00Z"
        ) from None
    if when.tzinfo is None:
        raise CommandError("invalid_payload", "deadline: give a time zone (Z or an offset such as +01:00)")
    t = when.timestamp()
    if t <= now:
        raise CommandError("out_of_range", "deadline: must be in the future")
    if t > now + rules.DEADLINE_MAX_S:
        raise CommandError("out_of_range", f"deadline: at most {rules.DEADLINE_MAX_S // 86_400} days ahead")
    return t


def _link(request: web.Request, a: Assignment, who: Assignee) -> str:
    """The assignee's personal link. Its token is valid until the link TTL after the deadline (a
    late viewer can still catch up) and the same every time it is made, so links are not stored.
    Reads the request only (safe in a worker thread)."""
    signer = request.app[SIGNER]
    token = _assignee_token(signer, a.session_id, who.id, who.name, a.id, int(a.deadline) + signer.link_ttl)
    return f"{base_url(request)}/s/{a.session_id}/replay?token={token}"


@lru_cache(maxsize=2 * MAX_ASSIGNMENTS * MAX_ASSIGNEES)
def _assignee_token(
    signer: Signer, session_id: str, pid: str, name: str, assignment: str, expires: int
) -> str:
    """Signing costs tens of microseconds and a session's list holds up to 25 000 links: each is
    signed once (the token is a pure function of these arguments and the signer's secret)."""
    return signer.assignee(session_id, pid, name, assignment, expires)


def _status_out(s: AssigneeStatus) -> dict[str, Any]:
    return {
        "status": s.status,
        "watched_ms": s.watched_ms,
        "watched_share": s.watched_share,
        "quiz_answered": s.quiz_answered,
        "quiz_correct": s.quiz_correct,
        "quiz_total": s.quiz_total,
        "quiz_score": s.quiz_score,
        "completed_at": rules.iso(s.completed_at),
        "late": s.late,
    }


def _assignment_out(request: web.Request, a: Assignment, statuses: list[AssigneeStatus]) -> dict[str, Any]:
    by_id = {s.assignee_id: s for s in statuses}
    return {
        "id": a.id,
        "created_at": rules.iso(a.created_at),
        "deadline": rules.iso(a.deadline),
        "threshold": a.threshold,
        "quiz_required": a.quiz_required,
        "audience": a.audience,
        "counts": rules.counts(statuses),
        "assignees": [
            {
                "id": who.id,
                "name": who.name,
                "email": who.email,
                "reason": who.reason,
                "link": _link(request, a, who),
                **_status_out(by_id[who.id]),
            }
            for who in a.assignees
        ],
    }


async def _manager(request: web.Request) -> tuple[str, Access]:
    session_id, access = _recording(request)
    _require_manager(access)
    return session_id, access


async def create(request: web.Request) -> web.Response:
    """A trainer assigns the replay. Everything is checked before anything is stored."""
    session_id, _ = await _manager(request)
    body = parse(AssignmentIn, await read_json(request))
    now = time.time()
    deadline = _deadline(body.deadline, now)
    roster = [(x.name, x.email) for x in body.assignees]
    keys = [(rules.name_key(n), (e or "").casefold()) for n, e in roster]
    if len(set(keys)) != len(keys):
        raise CommandError("invalid_payload", "assignees: the same person is listed twice")
    if body.audience == "list" and not roster:
        raise CommandError("out_of_range", "assignees: name at least one learner (or use audience 'missed')")
    report, _ = await build_report(request.app, session_id, viewers=[])  # the live part is enough here
    quizzes = [p for p in report["polls"] if p["quiz"] and not p["anonymous"]]
    if body.quiz_required and not quizzes:
        raise CommandError(
            "no_quiz", "quiz_required: this recording has no quiz (a poll with a correct answer)"
        )
    if body.audience == "missed":
        if not report["session"]["final"]:
            raise CommandError("session_live", "who missed the session is known once it has ended")
        chosen = rules.missed_or_left_early(report, roster, body.left_early_s)
        if not chosen:
            raise CommandError("nobody_to_assign", "nobody missed the session or left early")
        if len(chosen) > rules.MAX_ASSIGNEES:
            raise CommandError("out_of_range", f"assignees: at most {rules.MAX_ASSIGNEES}")
    else:
        chosen = [(n, e, None) for n, e in roster]
    existing = await request.app[ASSIGNMENTS].list(session_id)  # a damaged file stops here
    if len(existing) >= rules.MAX_ASSIGNMENTS:
        raise CommandError("limit_reached", f"a session has at most {rules.MAX_ASSIGNMENTS} assignments")
    # Each assignee is a replay viewer of their own: their link reports progress under that id.
    ids = await request.app[REPLAY_STORE].add_viewers(session_id, [n for n, _, _ in chosen])
    assignment = Assignment(
        id=new_id(6),
        session_id=session_id,
        created_at=now,
        deadline=deadline,
        threshold=body.threshold,
        quiz_required=body.quiz_required,
        audience=body.audience,
        assignees=tuple(Assignee(v, n, e, r) for v, (n, e, r) in zip(ids, chosen, strict=True)),
    )
    try:
        await request.app[ASSIGNMENTS].add(assignment)
    except Exception:
        await request.app[REPLAY_STORE].remove_viewers(session_id, ids)  # refused: nothing changed
        raise
    report, activity = await build_report(request.app, session_id, viewers=ids)
    statuses = rules.assignee_statuses(assignment, report, activity, time.time())
    return _respond(request, _assignment_out(request, assignment, statuses), 201)


async def assignment_statuses(
    app: web.Application, session_id: str, now: float | None = None
) -> list[tuple[Assignment, list[AssigneeStatus]]]:
    """Every assignment of a recorded session with its assignees' statuses at `now` (default:
    the present), from one engagement report. For other edges (xAPI) as much as for the routes."""
    items = await app[ASSIGNMENTS].list(session_id)
    if not items:
        return []
    report, activity = await build_report(app, session_id)
    at = time.time() if now is None else now

    def derive() -> list[tuple[Assignment, list[AssigneeStatus]]]:
        return [(a, rules.assignee_statuses(a, report, activity, at)) for a in items]

    return await asyncio.to_thread(derive)  # up to 25 000 assignees: off the event loop


async def list_assignments(request: web.Request) -> web.Response:
    session_id, _ = await _manager(request)
    fmt = request.query.get("format")
    if fmt is None:
        fmt = "csv" if any(kind in request.headers.get("Accept", "") for kind in _CSV_TYPES) else "json"
    if fmt not in ("json", "csv"):
        raise CommandError("invalid_payload", "format: json or csv")
    now = time.time()
    found = await assignment_statuses(request.app, session_id, now)

    def render() -> bytes | dict[str, Any]:
        # Signing a link per assignee and the CSV: in a worker thread, like the statuses.
        if fmt == "csv":
            rows = []
            for a, statuses in found:
                people = {x.id: x for x in a.assignees}
                rows += [(a, s, _link(request, a, people[s.assignee_id])) for s in statuses]
            return rules.assignments_csv(rows)
        return {"now": rules.iso(now), "assignments": [_assignment_out(request, a, s) for a, s in found]}

    body = await asyncio.to_thread(render)
    if isinstance(body, bytes):
        return web.Response(
            body=body,
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{session_id}-assignments.csv"',
            },
        )
    return _respond(request, body)


async def _mine(request: web.Request) -> tuple[str, Assignment, Assignee]:
    session_id, access = _recording(request)
    if access.assignment is None or access.viewer is None:
        raise CommandError("forbidden", "open the personal link of an assignment")
    items = await request.app[ASSIGNMENTS].list(session_id)
    a = next((x for x in items if x.id == access.assignment), None)
    who = next((x for x in a.assignees if x.id == access.viewer), None) if a else None
    if a is None or who is None:
        raise CommandError("not_found", "this assignment no longer exists")
    return session_id, a, who


async def my_assignment(request: web.Request) -> web.Response:
    """An assignee's own deadline, threshold, status and progress."""
    session_id, a, who = await _mine(request)
    report, activity = await build_report(request.app, session_id, viewers=[who.id])  # only theirs
    now = time.time()
    mine = rules.assignee_statuses(replace(a, assignees=(who,)), report, activity, now)[0]
    return _respond(
        request,
        {
            "id": a.id,
            "title": report["session"]["title"],
            "name": who.name,
            "deadline": rules.iso(a.deadline),
            "threshold": a.threshold,
            "quiz_required": a.quiz_required,
            "now": rules.iso(now),
            **_status_out(mine),
        },
    )


async def my_calendar(request: web.Request) -> web.Response:
    """The assignee's deadline as an iCalendar file."""
    session_id, a, who = await _mine(request)
    report, _ = await build_report(request.app, session_id, viewers=[])
    body = rules.deadline_ics(a, who, report["session"]["title"], _link(request, a, who), time.time())
    return web.Response(
        body=body,
        headers={
            "Content-Type": "text/calendar; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{session_id}-deadline.ics"',
        },
    )


def setup_assignment_routes(app: web.Application, only: Any) -> None:
    r = app.router
    r.add_post("/api/sessions/{id}/assignments", only(create))
    r.add_get("/api/sessions/{id}/assignments", only(list_assignments))
    r.add_get("/api/recordings/{id}/assignment", only(my_assignment))
    r.add_get("/api/recordings/{id}/assignment.ics", only(my_calendar))


async def xapi_extras(app: web.Application, session_id: str) -> tuple[dict[str, str], list[Completion]]:
    """What the assignments add to a session's xAPI statements (`recorder/xapi.py`): the assignees'
    e-mails by viewer id, so their statements name them by mailbox, and who completed what."""
    emails: dict[str, str] = {}
    done: list[Completion] = []
    for _assignment, statuses in await assignment_statuses(app, session_id):
        for s in statuses:
            if s.email:
                emails[s.assignee_id] = s.email
            if s.status == "completed" and s.completed_at is not None:
                done.append(
                    Completion(
                        session_id=session_id,
                        assignee=s.assignee_id,
                        name=s.name,
                        completed_at=s.completed_at,
                        share=s.watched_share,
                        email=s.email,
                        score=s.quiz_score,
                    )
                )
    return emails, done
