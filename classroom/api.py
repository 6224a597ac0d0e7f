"""The HTTP API: health, sessions, and the OpenAPI document that describes them."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from . import __version__
from .auth import Claims, Signer, same_secret
from .core import CommandError
from .core.limits import TITLE_LEN
from .core.validation import Text, parse
from .http import bearer, read_json
from .keys import ADMIN_KEY, PUBLIC_URL, SESSIONS, SIGNER
from .openapi import document
from .store import SessionInfo


class CreateSession(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    title: Text(TITLE_LEN)  # type: ignore[valid-type]
    recording: bool = True
    anonymize: bool = False


def _is_admin(request: web.Request) -> bool:
    token = bearer(request)
    return token is not None and same_secret(token, request.app[ADMIN_KEY])


def _require_admin(request: web.Request) -> None:
    if bearer(request) is None:
        raise CommandError("unauthorized", "send the admin key as 'Authorization: Bearer <key>'")
    if not _is_admin(request):
        raise CommandError("forbidden", "the admin key is wrong")


def base_url(request: web.Request) -> str:
    return request.app[PUBLIC_URL] or f"{request.scheme}://{request.host}"


def links(signer: Signer, base: str, session_id: str) -> dict[str, str]:
    """The three links of a session, each with its own signed token."""
    return {
        "trainer_url": f"{base}/s/{session_id}/trainer?token={signer.link(session_id, 'trainer')}",
        "join_url": f"{base}/s/{session_id}/join?token={signer.link(session_id, 'learner')}",
        "replay_url": f"{base}/s/{session_id}/replay?token={signer.link(session_id, 'replay')}",
    }


async def healthz(request: web.Request) -> web.Response:
    sessions = request.app[SESSIONS]
    live = sum(1 for s in sessions.live.values() if s.state.status == "live")
    return web.json_response({"status": "ok", "version": __version__, "live_sessions": live})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document(base_url(request)))


async def create_session(request: web.Request) -> web.Response:
    _require_admin(request)
    body = parse(CreateSession, await read_json(request))
    info = await request.app[SESSIONS].create(body.title, body.recording, body.anonymize)
    return web.json_response(_describe(request, info, None), status=201)


async def list_sessions(request: web.Request) -> web.Response:
    _require_admin(request)
    infos = await request.app[SESSIONS].store.list()
    return web.json_response({"sessions": [_describe(request, i, None) for i in infos]})


async def get_session(request: web.Request) -> web.Response:
    session_id = request.match_info["id"]
    claims: Claims | None = None
    if not _is_admin(request):
        token = bearer(request)
        if token is None:
            raise CommandError("unauthorized", "send the admin key or a trainer token")
        claims = request.app[SIGNER].verify(token, session_id)
        if claims.role != "trainer":
            raise CommandError("forbidden", "only trainers and admins may describe a session")
    sessions = request.app[SESSIONS]
    info = await sessions.store.get(session_id)
    if info is None:
        raise CommandError("not_found", "no such session")
    return web.json_response(_describe(request, info, claims))


def _describe(request: web.Request, info: SessionInfo, claims: Claims | None) -> dict[str, Any]:
    out = {**info.as_dict(), **links(request.app[SIGNER], base_url(request), info.id)}
    live = request.app[SESSIONS].live.get(info.id)
    people = live.state.participants.values() if live else ()
    out["status"] = live.state.status if live else info.status
    out["participants"] = sum(1 for p in people)
    out["online"] = sum(1 for p in people if p["online"])
    out["seq"] = live.state.seq if live else 0
    return out


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_post("/api/sessions", create_session)
    app.router.add_get("/api/sessions", list_sessions)
    app.router.add_get("/api/sessions/{id}", get_session)
