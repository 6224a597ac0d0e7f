"""The pages behind the links. The browser client replaces these; until then each link opens a
page that says what it is and how to take part (with the Python client)."""

from __future__ import annotations

import html

from aiohttp import web

from .api import SESSIONS, SIGNER
from .core import CommandError

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title} — Classcast</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}}
code{{background:#f2f2f2;padding:.1rem .3rem;border-radius:3px;word-break:break-all}}</style></head>
<body><h1>{title}</h1><p>{body}</p></body></html>"""

_ROLES = {"trainer": "trainer", "join": "learner", "replay": "replay"}


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=_PAGE.format(title=html.escape(title), body=body), status=status, content_type="text/html"
    )


async def home(request: web.Request) -> web.Response:
    return _page(
        "Classcast",
        "A live classroom server. Create a session with <code>POST /api/sessions</code> "
        'or <code>python -m classroom create "Title"</code>; the API is described at '
        '<a href="/api/openapi.json">/api/openapi.json</a>.',
    )


async def link(request: web.Request) -> web.Response:
    session_id = request.match_info["id"]
    kind = request.match_info["kind"]
    role = _ROLES.get(kind)
    if role is None:
        raise web.HTTPNotFound()
    try:
        claims = request.app[SIGNER].verify(request.query.get("token"), session_id)
        if claims.role != role:
            raise CommandError("invalid_token", "this link is for another role")
    except CommandError as exc:
        return _page("Link not valid", html.escape(exc.message), status=403)
    info = await request.app[SESSIONS].store.get(session_id)
    if info is None:
        return _page("No such session", "This session does not exist.", status=404)
    url = html.escape(str(request.url))
    return _page(
        info.title,
        f"Session status: <strong>{html.escape(info.status)}</strong>. You hold a valid "
        f"<strong>{role}</strong> link. Join with the Python client: "
        f'<code>ClassroomClient("{url}")</code>.',
    )


def setup_pages(app: web.Application) -> None:
    app.router.add_get("/", home)
    app.router.add_get("/s/{id}/{kind}", link)
