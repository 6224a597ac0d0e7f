"""The browser pages: a small HTML shell per page that loads its bundle from web/dist (built by
`make`), after checking the link's token so a bad link gets a clear page, not a broken app."""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web

from .api import SESSIONS, SIGNER
from .core import CommandError

WEB_DIST = Path(__file__).resolve().parents[1] / "web" / "dist"

_SHELL = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title><link rel="stylesheet" href="/static/styles.css"></head>
<body><main id="app"></main><script src="/static/{bundle}.js"></script></body></html>"""

_ERROR = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title><link rel="stylesheet" href="/static/styles.css"></head>
<body><main class="notice"><h1>{title}</h1><p>{message}</p></main></body></html>"""

# Which token roles open which page. A learner's participant token also opens the replay, so a
# learner can watch it from the "session ended" banner.
_PAGES = {"join": ("learner", {"learner"}), "trainer": ("trainer", {"trainer"}), "replay": ("replay", None)}


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html", headers={"Cache-Control": "no-store"}
    )


def _shell(title: str, bundle: str) -> web.Response:
    return _html(_SHELL.format(title=html.escape(title), bundle=bundle))


def _error(title: str, message: str, status: int) -> web.Response:
    return _html(_ERROR.format(title=html.escape(title), message=html.escape(message)), status)


async def home(request: web.Request) -> web.Response:
    return _shell("Classcast", "home")


async def link(request: web.Request) -> web.Response:
    session_id = request.match_info["id"]
    page = _PAGES.get(request.match_info["kind"])
    if page is None:
        raise web.HTTPNotFound()
    bundle, roles = page
    try:
        claims = request.app[SIGNER].verify(request.query.get("token"), session_id)
        if roles is not None and claims.role not in roles:
            raise CommandError("invalid_token", "this link is for another page")
    except CommandError as exc:
        return _error("This link does not work", exc.message, 403)
    info = await request.app[SESSIONS].store.get(session_id)
    if info is None:
        return _error("No such session", "This session does not exist (any more).", 404)
    return _shell(f"{info.title} — Classcast", bundle)


async def not_built(request: web.Request) -> web.Response:
    return web.Response(status=503, text="The web client is not built: run `make` (it builds web/dist).")


def setup_pages(app: web.Application) -> None:
    app.router.add_get("/", home)
    app.router.add_get("/s/{id}/{kind}", link)
    if WEB_DIST.is_dir():
        app.router.add_static("/static", WEB_DIST)
    else:
        app.router.add_get("/static/{path:.*}", not_built)
