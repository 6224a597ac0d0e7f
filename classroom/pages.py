"""The browser pages: a small HTML shell per page that loads its bundle from web/dist (built by
`make`), after checking the link's token so a bad link gets a clear page, not a broken app."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

from aiohttp import web

from .core import CommandError
from .http import error_response
from .keys import SESSIONS, SIGNER

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
_PAGES = {
    "join": ("learner", {"learner"}),
    "trainer": ("trainer", {"trainer"}),
    "replay": ("replay", None),
    "report": ("report", {"trainer"}),  # the engagement report
}


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


# What a built file is called (web/build.mjs writes flat names such as `learner.js.map`).
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class _Built:
    """The names of the files in web/dist, listed again whenever the directory changes (`make`
    while the server runs), so a request names a file that is there or gets a 404, and no name a
    client makes up reaches the file system (over-long, NUL, `..`, absolute, a directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._mtime = -1
        self._names: frozenset[str] = frozenset()

    def __contains__(self, name: str) -> bool:
        if not _FILE_NAME.fullmatch(name):
            return False
        try:
            mtime = os.stat(self.root).st_mtime_ns
            if mtime != self._mtime:
                self._names = frozenset(e.name for e in os.scandir(self.root) if e.is_file())
                self._mtime = mtime
        except OSError:
            return False
        return name in self._names


_BUILT = _Built(WEB_DIST)


async def static(request: web.Request) -> web.StreamResponse:
    """A built file of the web client (aiohttp's own static route turned some names into a 500)."""
    name = request.match_info["filename"]
    if not WEB_DIST.is_dir():
        return web.Response(status=503, text="The web client is not built: run `make` (it builds web/dist).")
    if name not in _BUILT:
        return error_response("not_found", "no such file", 404)
    return web.FileResponse(WEB_DIST / name)


def setup_pages(app: web.Application) -> None:
    app.router.add_get("/", home)
    app.router.add_get("/s/{id}/{kind}", link)
    app.router.add_get("/static/{filename}", static)
