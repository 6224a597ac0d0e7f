"""The replay HTTP API: list and delete recordings, manifest, events in a window, state at a time,
exports, and what replay viewers add (quiz answers, time-anchored questions)."""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from classroom.auth import same_secret
from classroom.core import CommandError, clean_name
from classroom.core.history import PAGE_LIMIT
from classroom.core.limits import (
    ANSWER_LEN,
    NAME_LEN,
    POLL_OPTIONS_MAX,
    PROGRESS_RATE,
    PROGRESS_REPORTS,
    PROGRESS_VIEWERS,
    QUESTION_LEN,
)
from classroom.core.ratelimit import TokenBucket
from classroom.core.validation import Text, parse
from classroom.http import bearer, error_response, int_param, read_json
from classroom.keys import ADMIN_KEY, HUB, PUBLIC_URL, SESSIONS, SIGNER

from . import exports, media, report, xapi
from .assignments import AssignmentStore
from .interactive import ReplayStore
from .library import Library
from .paths import valid_id
from .replay import Recording, RecordingError

LIBRARY = web.AppKey("library", Library)
REPLAY_STORE = web.AppKey("replay_store", ReplayStore)
PROGRESS_BUCKETS = web.AppKey("progress_buckets", OrderedDict)
# Optional: what the assignments know for xAPI. An async callable, session id -> (e-mails by
# participant or viewer id, completed assignments as `xapi.Completion`s); wired by the composition
# root once assignments exist. When one completes, call `app[XAPI_CHANGED](session_id)` if set.
XAPI_EXTRAS = web.AppKey("xapi_extras", object)
# The server's base URL (`Settings.base_url`): activity ids and accounts' homePage in statements.
XAPI_BASE = web.AppKey("xapi_base", str)
# Optional: told when a session's statements may have changed (`recorder/lrs.py`).
XAPI_CHANGED = web.AppKey("xapi_changed", object)
ASSIGNMENTS = web.AppKey("assignments", AssignmentStore)

END = 2**62  # the default `to`: the end of any recording; no query time may exceed it
_MSGPACK = ("application/msgpack", "application/x-msgpack")


@dataclass
class Access:
    role: str  # admin | trainer | replay | learner
    viewer: str | None = None  # a replay viewer's id (from a viewer token)
    name: str | None = None
    assignment: str | None = None  # a replay assignee's assignment (from their personal link)

    @property
    def manages(self) -> bool:
        return self.role in ("admin", "trainer")


class ViewerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: Text(NAME_LEN) | None = None  # type: ignore[valid-type]


class QuizIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    choices: list[int] = Field(max_length=POLL_OPTIONS_MAX)


class QuestionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    t: int = Field(ge=0)
    text: Text(QUESTION_LEN)  # type: ignore[valid-type]


class ProgressIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    start: int = Field(alias="from", ge=0)
    end: int = Field(alias="to", ge=0)


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    text: Text(ANSWER_LEN)  # type: ignore[valid-type]


def _access(request: web.Request, session_id: str) -> Access:
    token = bearer(request)
    if token is None:
        raise CommandError("unauthorized", "send the replay link's token, a trainer token or the admin key")
    if same_secret(token, request.app[ADMIN_KEY]):
        return Access("admin")
    claims = request.app[SIGNER].verify(token, session_id)
    if claims.role == "replay" and claims.pid:
        return Access("replay", claims.pid, claims.name, claims.assignment)
    return Access(claims.role)


def _require_manager(access: Access) -> None:
    if not access.manages:
        raise CommandError("forbidden", "only trainers and admins may do this")


def _require_viewer(access: Access) -> None:
    if access.viewer is None:
        raise CommandError("forbidden", "register as a replay viewer first (POST .../viewers)")


def _respond(request: web.Request, body: Any, status: int = 200) -> web.Response:
    """JSON, or msgpack when the client asks for it in Accept."""
    accept = request.headers.get("Accept", "")
    if any(kind in accept for kind in _MSGPACK):
        return web.Response(
            body=msgpack.packb(body, use_bin_type=True), status=status, content_type="application/msgpack"
        )
    return web.json_response(body, status=status)


async def _read(request: web.Request, session_id: str, fn: Any) -> Any:
    try:
        return await request.app[LIBRARY].read(session_id, fn)
    except RecordingError as exc:
        if exc.message == "no recording":
            raise CommandError("not_found", f"no recording {session_id!r}") from None
        raise CommandError("recording_damaged", str(exc)) from None


def _audience(request: web.Request, access: Access) -> str:
    audience = request.query.get("audience", "learner")
    if audience not in ("learner", "trainer"):
        raise CommandError("invalid_payload", "audience: learner or trainer")
    if audience == "trainer" and not access.manages:
        raise CommandError("forbidden", "only trainers and admins may see the trainer view")
    return audience


def _recording(request: web.Request) -> tuple[str, Access]:
    """The recording's id and the caller's access, checked in that order of trust: the token
    first, so a recording's existence cannot be probed without one."""
    session_id = request.match_info["id"]
    access = _access(request, session_id)
    if not request.app[LIBRARY].exists(session_id):
        raise CommandError("not_found", f"no recording {session_id[:64]!r}")
    return session_id, access


async def list_recordings(request: web.Request) -> web.Response:
    token = bearer(request)
    if token is None:
        raise CommandError("unauthorized", "send the admin key or a trainer token")
    if same_secret(token, request.app[ADMIN_KEY]):
        infos = await request.app[SESSIONS].store.list()
        ids = [i.id for i in infos if i.recording]
    else:
        claims = request.app[SIGNER].verify(token)
        if claims.role != "trainer":
            raise CommandError("forbidden", "only trainers and admins may list recordings")
        ids = [claims.session_id]
    out = []
    for session_id in ids:
        if not request.app[LIBRARY].exists(session_id):
            info = await request.app[SESSIONS].store.get(session_id)
            if info is not None and not info.recording:  # a trainer asking for its own session
                out.append({"id": session_id, "error": "recording_off"})
            continue
        try:
            m = await request.app[LIBRARY].read(session_id, Recording.manifest)
        except RecordingError as exc:
            out.append({"id": session_id, "error": exc.message})
            continue
        out.append(
            {
                "id": m["id"],
                "title": m["title"],
                "date": m["started_at"] or m["created_at"],
                "status": m["status"],
                "duration_ms": m["duration_ms"],
                "participants": m["counts"]["participants"],
                "size_bytes": m["size_bytes"],
                **({"damage": m["damage"]} if "damage" in m else {}),
            }
        )
    return _respond(request, {"recordings": out})


async def manifest(request: web.Request) -> web.Response:
    session_id, access = _recording(request)
    body = await _read(request, session_id, Recording.manifest)
    # Who is asking, so a replay page can offer trainers what only they may do, and a viewer's
    # own link (an assignee's) can report progress under its own identity.
    you: dict[str, Any] = {"role": access.role, "manages": access.manages}
    if access.viewer is not None:
        you.update(viewer_id=access.viewer, name=access.name, assignment=access.assignment)
    return _respond(request, {**body, "you": you})


async def events(request: web.Request) -> web.Response:
    session_id, access = _recording(request)
    t_from = int_param(request, "from", 0, END)
    t_to = int_param(request, "to", END, END)
    if t_from > t_to:
        raise CommandError("out_of_range", "from: must not be after to")
    audience = _audience(request, access)
    found = await _read(request, session_id, lambda r: r.window(t_from, t_to, audience))
    return _respond(request, {"from": t_from, "to": t_to, "events": found})


async def state(request: web.Request) -> web.Response:
    return await _at_t(request, lambda rec, t, audience: rec.state_at(t, audience, bounded=True))


async def _at_t(request: web.Request, read: Callable[..., Any], paged: bool = False) -> web.Response:
    """What every state route shares: the recording, `t` (checked against its duration in the
    reading thread), the audience the caller may see and, if `paged`, `before` and `limit`
    (checked in this order, so a request with several faults names the same one everywhere).
    Answers with `read(rec, t, audience[, before, limit])`."""
    session_id, access = _recording(request)
    t = int_param(request, "t", None, END)
    audience = _audience(request, access)
    paging = _paging(request) if paged else ()

    def at(rec: Recording) -> Any:
        _check_t(rec, t)
        return read(rec, t, audience, *paging)

    return _respond(request, await _read(request, session_id, at))


def _check_t(rec: Recording, t: int) -> None:
    duration = rec.manifest()["duration_ms"]
    if t > duration:
        raise CommandError("out_of_range", f"t: the recording lasts {duration} ms")


def _paging(request: web.Request) -> tuple[int | None, int]:
    """`before` (a seq; default: everything shown at t) and `limit` (1..100, default 50)."""
    before = int_param(request, "before", None, END) if "before" in request.query else None
    limit = int_param(request, "limit", 50, END)
    if not 1 <= limit <= PAGE_LIMIT:
        raise CommandError("out_of_range", f"limit: from 1 to {PAGE_LIMIT}")
    return before, limit


async def state_chat(request: web.Request) -> web.Response:
    """Older chat messages shown at t than the bounded state carries, page by page."""
    return await _at_t(
        request, lambda rec, t, audience, before, limit: rec.chat_page(t, before, limit, audience), paged=True
    )


async def state_polls(request: web.Request) -> web.Response:
    """Older polls shown at t, page by page."""
    return await _state_items(request, "polls")


async def state_questions(request: web.Request) -> web.Response:
    """Older questions shown at t, page by page."""
    return await _state_items(request, "questions")


async def _state_items(request: web.Request, kind: str) -> web.Response:
    def page(rec: Recording, t: int, audience: str, before: int | None, limit: int) -> dict[str, Any]:
        return rec.items_page(t, kind, before, limit, audience)

    return await _at_t(request, page, paged=True)


async def state_board_page(request: web.Request) -> web.Response:
    """One whiteboard page as it was at t (the bounded state carries the current one only)."""
    page_id = request.match_info["page"]

    def page(rec: Recording, t: int, audience: str) -> dict[str, Any]:
        found = rec.board_page(t, page_id, audience)
        if found is None:
            raise CommandError("not_found", f"no page {page_id[:64]!r} at t={t}")
        return found

    return await _at_t(request, page)


async def export(request: web.Request) -> web.Response:
    session_id, access = _recording(request)
    name = request.match_info["name"]
    if name not in exports.FORMATS:
        raise CommandError("not_found", f"exports: {', '.join(exports.FORMATS)}")
    if not name.startswith("chat.") and not access.manages:
        raise CommandError("forbidden", "only trainers and admins may export the whole recording")
    audience = "trainer" if access.manages else "learner"

    def build(rec: Recording) -> bytes:
        wires = rec.window(0, END, audience)
        if name == "chat.vtt":
            return exports.chat_vtt(wires)
        if name == "chat.txt":
            return exports.chat_txt(wires)
        if name.startswith("recording."):
            return exports.whole(rec.manifest(), wires, name.split(".")[1])
        final = rec.state_at(rec.manifest()["duration_ms"], audience)
        return exports.polls_csv(final) if name == "polls.csv" else exports.questions_csv(final)

    body = await _read(request, session_id, build)
    return web.Response(
        body=body,
        headers={
            "Content-Type": exports.FORMATS[name],
            "Content-Disposition": f'attachment; filename="{session_id}-{name}"',
        },
    )


async def media_file(request: web.Request) -> web.StreamResponse:
    """One media file of the recording (see `recorder/media.py`), with HTTP Range requests;
    `?download=1` (managers) makes it an attachment. A file a crash left half-written is
    finalised before it is served."""
    session_id, access = _recording(request)
    download = request.query.get("download", "0")
    if download not in ("0", "1"):
        raise CommandError("invalid_payload", "download: 0 or 1")
    if download == "1" and not access.manages:
        raise CommandError("forbidden", "only trainers and admins may download the media")
    name = request.match_info["file"]

    def find(rec: Recording) -> tuple[Any, dict[str, Any], os.stat_result] | None:
        found = media.media_file(rec.path.parent, name)
        return None if found is None else (*found, found[0].stat())

    found = await _read(request, session_id, find)
    if found is None:
        raise CommandError("not_found", f"no media file {name[:130]!r} in this recording")
    path, entry, st = found
    if _unsatisfiable(request, st):
        response = error_response("range_not_satisfiable", f"the file has {st.st_size} bytes", 416)
        response.headers["Content-Range"] = f"bytes */{st.st_size}"
        return response
    headers = {"Content-Type": entry["content_type"], "Cache-Control": "private, no-cache"}
    if download == "1":
        headers["Content-Disposition"] = f'attachment; filename="{session_id}-{name}"'
    return web.FileResponse(path, headers=headers)


def _unsatisfiable(request: web.Request, st: os.stat_result) -> bool:
    """Would aiohttp's FileResponse answer this Range 416? Decided here so that answer is a
    JSON error like every other (FileResponse sends an empty one)."""
    if_range = request.if_range
    if if_range is not None and st.st_mtime > if_range.timestamp():
        return False  # the file changed: the Range is ignored, the whole file is sent
    try:
        rng = request.http_range
    except ValueError:
        return True
    if rng.start is None or (rng.start < 0 and rng.stop is None):
        return False
    return rng.start >= st.st_size


async def delete(request: web.Request) -> web.Response:
    """Delete a session that is not live, with whatever it has: a recording, a crash-guard log,
    or nothing at all (created and never opened)."""
    session_id = request.match_info["id"]
    access = _access(request, session_id)
    sessions = request.app[SESSIONS]
    info = await sessions.store.get(session_id) if valid_id(session_id) else None
    if info is None and not request.app[LIBRARY].exists(session_id):
        raise CommandError("not_found", f"no recording {session_id[:64]!r}")
    _require_manager(access)
    live = sessions.live.get(session_id)
    status = live.state.status if live is not None else (info.status if info else "ended")
    if status == "live":
        raise CommandError("session_live", "end the session before deleting its recording")
    if live is not None:
        # Nobody keeps acting on a session that no longer exists (one not started yet, or ended).
        await request.app[HUB].disconnect_session(session_id)
    await sessions.forget(session_id)
    await request.app[LIBRARY].delete(session_id)
    await request.app[REPLAY_STORE].forget(session_id)
    await request.app[ASSIGNMENTS].forget(session_id)
    return web.Response(status=204)


async def add_viewer(request: web.Request) -> web.Response:
    session_id, access = _recording(request)
    body = parse(ViewerIn, await read_json(request) if request.can_read_body else {})
    name = clean_name(body.name) if body.name else "Viewer"
    viewer = await request.app[REPLAY_STORE].add_viewer(session_id, name)
    token = request.app[SIGNER].participant(session_id, "replay", viewer, name)
    return _respond(request, {"viewer_id": viewer, "name": name, "token": token, "role": access.role}, 201)


def _poll_at_end(rec: Recording, poll_id: str) -> dict[str, Any]:
    final = rec.state_at(rec.manifest()["duration_ms"], "trainer")
    poll = next((p for p in final["polls"] if p["id"] == poll_id), None)
    if poll is None:
        raise CommandError("not_found", f"no poll {poll_id!r} in this recording")
    return poll


async def answer_quiz(request: web.Request) -> web.Response:
    session_id, access = _recording(request)
    _require_viewer(access)
    body = parse(QuizIn, await read_json(request))
    poll = await _read(request, session_id, lambda r: _poll_at_end(r, request.match_info["poll"]))
    choices = sorted(body.choices)
    n = len(poll["options"])
    if len(set(choices)) != len(choices):
        raise CommandError("invalid_payload", "choices: an option is chosen twice")
    if not choices or any(not 0 <= c < n for c in choices):
        raise CommandError("out_of_range", f"choices: options between 0 and {n - 1}")
    if not poll["multiple"] and len(choices) != 1:
        raise CommandError("out_of_range", "choices: this poll takes exactly one choice")
    assert access.viewer
    await request.app[REPLAY_STORE].answer_quiz(session_id, access.viewer, poll["id"], choices)
    _changed(request, session_id)
    return _respond(request, _quiz_result(poll, choices))


def _quiz_result(poll: dict[str, Any], choices: list[int]) -> dict[str, Any]:
    """A viewer's answer beside the right one and the live results. The live counts show only
    when the trainer shared them in the session; what stayed private stays private."""
    correct = poll["correct"]
    return {
        "poll_id": poll["id"],
        "choices": choices,
        "correct": correct,
        "is_correct": (choices == correct) if correct is not None else None,
        "live": {"counts": poll["counts"], "voters": poll["voters"]} if poll["shared"] else None,
    }


async def my_quiz(request: web.Request) -> web.Response:
    session_id, access = _recording(request)
    _require_viewer(access)
    assert access.viewer
    answers = await request.app[REPLAY_STORE].quiz_answers(session_id, access.viewer)
    out = []
    for poll_id, choices in answers.items():
        poll = await _read(request, session_id, lambda r, p=poll_id: _poll_at_end(r, p))
        out.append(_quiz_result(poll, choices))
    return _respond(request, {"answers": out})


async def list_questions(request: web.Request) -> web.Response:
    session_id, _ = _recording(request)
    return _respond(request, {"questions": await request.app[REPLAY_STORE].questions(session_id)})


async def ask(request: web.Request) -> web.Response:
    session_id, access = _recording(request)
    _require_viewer(access)
    body = parse(QuestionIn, await read_json(request))
    duration = (await _read(request, session_id, Recording.manifest))["duration_ms"]
    if body.t > duration:
        raise CommandError("out_of_range", f"t: the recording lasts {duration} ms")
    assert access.viewer and access.name
    question = await request.app[REPLAY_STORE].ask(session_id, access.viewer, access.name, body.t, body.text)
    _changed(request, session_id)
    return _respond(request, question, 201)


async def answer(request: web.Request) -> web.Response:
    session_id, access = _recording(request)
    _require_manager(access)
    body = parse(AnswerIn, await read_json(request))
    by = "Admin" if access.role == "admin" else "Trainer"
    done = await request.app[REPLAY_STORE].answer(session_id, request.match_info["qid"], body.text, by)
    if done is None:
        raise CommandError("not_found", "no such question on this recording")
    return _respond(request, done)


async def progress(request: web.Request) -> web.Response:
    """A replay viewer's player says which media-time interval [from, to) it played."""
    session_id, access = _recording(request)
    _require_viewer(access)
    if request.match_info["viewer"] != access.viewer:
        raise CommandError("forbidden", "a viewer reports its own progress only")
    body = parse(ProgressIn, await read_json(request))
    if body.end <= body.start:
        raise CommandError("out_of_range", "to: must be after from")
    duration = (await _read(request, session_id, Recording.manifest))["duration_ms"]
    if body.end > duration:
        raise CommandError("out_of_range", f"to: the recording lasts {duration} ms")
    buckets: OrderedDict[tuple[str, str], TokenBucket] = request.app[PROGRESS_BUCKETS]
    key = (session_id, access.viewer)
    now = int(time.monotonic() * 1000)
    bucket = buckets.get(key)
    if bucket is None:
        bucket = buckets[key] = TokenBucket(PROGRESS_RATE, now)
        while len(buckets) > PROGRESS_VIEWERS:
            buckets.popitem(last=False)
    buckets.move_to_end(key)
    if not bucket.take(now):
        raise CommandError("rate_limited", "progress reports come too fast; send one every few seconds")
    stored = await request.app[REPLAY_STORE].progress(
        session_id, access.viewer, body.start, body.end, PROGRESS_REPORTS
    )
    if not stored:
        raise CommandError("limit_reached", f"a viewer may send at most {PROGRESS_REPORTS} progress reports")
    _changed(request, session_id, progress=True)
    return web.Response(status=204)


def _changed(request: web.Request, session_id: str, progress: bool = False) -> None:
    """Tell the LRS pusher, if there is one, that the session's statements may have changed."""
    notify = request.app.get(XAPI_CHANGED)
    if notify is not None:
        notify(session_id, progress=progress)  # type: ignore[operator]


_CSV_TYPES = ("text/csv",)


async def build_report(
    app: web.Application, session_id: str, viewers: list[str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The engagement report of a recorded session, and what replay viewers added that it was
    built from (`ReplayStore.report_data`, with the times of their reports and answers). With
    `viewers`, the report's replay part holds only those viewers (one assignee's status)."""
    live = app[SESSIONS].live.get(session_id)
    live_now = live.now() if live is not None and live.state.status == "live" else 0
    added = await app[REPLAY_STORE].report_data(session_id, viewers)

    def build(rec: Recording) -> dict[str, Any]:
        # In the recording's reader thread (one at a time): the fold is extended in place.
        fold = rec.report_fold()
        m = rec.manifest()
        names = rec.index.aliases.names if rec.anonymized else {}
        out = fold.report(live_now, names, {**added, "duration_ms": m["duration_ms"]})
        out["session"] = {"id": m["id"], "title": m["title"], "status": m["status"], **out["session"]}
        return out

    try:
        return await app[LIBRARY].read(session_id, build), added
    except RecordingError as exc:
        if exc.message == "no recording":
            raise CommandError("not_found", f"no recording {session_id!r}") from None
        raise CommandError("recording_damaged", str(exc)) from None


async def session_report(request: web.Request) -> web.Response:
    """The engagement report (`recorder/report.py`), as JSON or CSV: live while the session runs,
    final once it ended."""
    session_id, access = _recording(request)
    _require_manager(access)
    fmt = request.query.get("format")
    if fmt is None:
        fmt = "csv" if any(kind in request.headers.get("Accept", "") for kind in _CSV_TYPES) else "json"
    if fmt not in ("json", "csv"):
        raise CommandError("invalid_payload", "format: json or csv")
    body, _ = await build_report(request.app, session_id)
    if fmt == "csv":
        return web.Response(
            body=report.report_csv(body),
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{session_id}-report.csv"',
            },
        )
    return _respond(request, body)


XAPI_LIMIT = 1000  # statements per page of GET /api/sessions/{id}/xapi


async def build_statements(app: web.Application, session_id: str) -> tuple[list[dict[str, Any]], bool]:
    """The session's xAPI statements (`recorder/xapi.py`) from its recording's report fold and
    what replay viewers stored, and whether the session has ended. Raises `RecordingError`."""
    viewers = await app[REPLAY_STORE].report_data(session_id)
    emails: dict[str, str] = {}
    completions: tuple[xapi.Completion, ...] = ()
    extras = app.get(XAPI_EXTRAS)
    if extras is not None:
        emails, found = await extras(session_id)  # type: ignore[operator]
        completions = tuple(found)
    base = app.get(XAPI_BASE) or app[PUBLIC_URL]

    def build(rec: Recording) -> tuple[list[dict[str, Any]], bool]:
        fold = rec.report_fold()
        m = rec.manifest()
        ix = rec.index
        names = ix.aliases.names if rec.anonymized else {}
        rendered = fold.report(0, names, {**viewers, "duration_ms": m["duration_ms"]})
        if ix.started_wall_ms is not None and fold.started_t is not None:
            wall_base = ix.started_wall_ms - fold.started_t
        else:
            wall_base = int(float(ix.header.get("created") or 0) * 1000)
        src = xapi.Source(
            session_id=session_id,
            title=m["title"],
            base_url=base,
            report=rendered,
            fold=fold,
            wall_base_ms=wall_base,
            replay=viewers,
            emails=emails,
            completions=completions,
        )
        return xapi.statements(src), m["status"] == "ended"

    return await app[LIBRARY].read(session_id, build)


async def session_xapi(request: web.Request) -> web.Response:
    """The session's xAPI statements, as an xAPI StatementResult page (`offset`, `limit`)."""
    session_id, access = _recording(request)
    _require_manager(access)
    offset = int_param(request, "offset", 0, END)
    limit = int_param(request, "limit", XAPI_LIMIT, END)
    if not 1 <= limit <= XAPI_LIMIT:
        raise CommandError("out_of_range", f"limit: from 1 to {XAPI_LIMIT}")
    try:
        found, _ended = await build_statements(request.app, session_id)
    except RecordingError as exc:
        raise CommandError("recording_damaged", str(exc)) from None
    page = found[offset : offset + limit]
    more = ""
    if offset + limit < len(found):
        more = f"/api/sessions/{session_id}/xapi?offset={offset + limit}&limit={limit}"
    return web.json_response(
        {"statements": page, "more": more, "total": len(found)},
        headers={"X-Experience-API-Version": xapi.VERSION},
    )


RECORDING_OFF = "the session was created with recording off: it has no replay"


async def _check_recorded(request: web.Request) -> None:
    """A session created with recording off answers 409 `recording_off` on every replay route
    (after the token check), rather than a bare 404 that reads as a wrong id."""
    session_id = request.match_info["id"]
    if request.app[LIBRARY].exists(session_id) or not valid_id(session_id):
        return
    info = await request.app[SESSIONS].store.get(session_id)
    if info is not None and not info.recording:
        _access(request, session_id)
        raise CommandError("recording_off", RECORDING_OFF)


def _recorded_only(handler: Any) -> Any:
    async def checked(request: web.Request) -> web.StreamResponse:
        await _check_recorded(request)
        return await handler(request)

    return checked


def setup_replay_routes(app: web.Application) -> None:
    from .assignment_api import setup_assignment_routes  # it builds on this module's helpers

    r = app.router
    only = _recorded_only
    r.add_get("/api/recordings", list_recordings)
    r.add_get("/api/recordings/{id}", only(manifest))
    r.add_delete("/api/recordings/{id}", delete)
    r.add_get("/api/recordings/{id}/events", only(events))
    r.add_get("/api/recordings/{id}/state", only(state))
    r.add_get("/api/recordings/{id}/state/chat", only(state_chat))
    r.add_get("/api/recordings/{id}/state/polls", only(state_polls))
    r.add_get("/api/recordings/{id}/state/questions", only(state_questions))
    r.add_get("/api/recordings/{id}/state/board/{page}", only(state_board_page))
    r.add_get("/api/recordings/{id}/export/{name}", only(export))
    r.add_get("/api/recordings/{id}/media/{file}", only(media_file))
    r.add_post("/api/recordings/{id}/viewers", only(add_viewer))
    r.add_get("/api/recordings/{id}/quiz", only(my_quiz))
    r.add_post("/api/recordings/{id}/quiz/{poll}", only(answer_quiz))
    r.add_get("/api/recordings/{id}/questions", only(list_questions))
    r.add_post("/api/recordings/{id}/questions", only(ask))
    r.add_post("/api/recordings/{id}/questions/{qid}/answer", only(answer))
    r.add_post("/api/recordings/{id}/viewers/{viewer}/progress", only(progress))
    r.add_get("/api/sessions/{id}/report", only(session_report))
    r.add_get("/api/sessions/{id}/xapi", only(session_xapi))
    setup_assignment_routes(app, only)
    app[PROGRESS_BUCKETS] = OrderedDict()
