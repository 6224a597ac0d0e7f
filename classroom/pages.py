"""The browser pages: a small HTML shell per page that loads its bundle from web/dist (built by
`make`), after checking the link's token so a bad link gets a clear page, not a broken app."""

from __future__ import annotations

import html
import os
import re
import struct
import zlib
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web

from .core import CommandError
from .http import error_response, is_api
from .keys import SESSIONS, SIGNER

WEB_DIST = Path(__file__).resolve().parents[1] / "web" / "dist"

# Every page names its icon, so a browser asks for nothing that is not there (no favicon 404).
_HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title><link rel="icon" href="/favicon.ico" sizes="32x32">
<link rel="stylesheet" href="/static/styles.css"></head>"""

_SHELL = (
    _HEAD
    + """
<body><main id="app"></main><script src="/static/{bundle}.js"></script></body></html>"""
)

# A page for a link or an address that does not work: what happened, what to do, the way home.
_ERROR = (
    _HEAD
    + """
<body><main class="notice error-page" data-status="{status}"><h1>{title}</h1><p>{message}</p>
<p class="muted">{advice}</p>
<p><a class="btn btn-primary" href="/" data-testid="home-link">Go to the Classcast home page</a></p>
</main></body></html>"""
)

# What to do about each way a link's token fails (`auth.Signer.verify`).
_ADVICE = {
    "expired_token": "Links expire after a while. Ask the trainer for a new link.",
    "wrong_session": "Open the link that was made for this session, or ask the trainer for it.",
    "invalid_token": "The link may be cut short or mistyped: copy the whole link again, "
    "or ask the trainer for a new one.",
}
_LOST = "Check the address, or open the link you were given again. The home page lists recordings."

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


def _error(title: str, message: str, status: int, advice: str = _LOST) -> web.Response:
    fields = {"title": title, "message": message, "advice": advice, "status": str(status)}
    return _html(_ERROR.format(**{k: html.escape(v) for k, v in fields.items()}), status)


def _wants_html(request: web.Request) -> bool:
    """A browser opening an address (it asks for text/html), not a script or an API client."""
    return "text/html" in request.headers.get("Accept", "")


# aiohttp's own errors outside the API, for a person in a browser: a page, not a line of text.
_STATUS_PAGES = {
    404: ("Page not found", "There is no page at this address."),
    405: ("This address does not take that request", "The page exists, but not for this kind of request."),
}


@web.middleware
async def html_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Errors of pages a browser opens (an unknown path, a malformed link) as an HTML page that
    says what happened and links home. The API's errors stay JSON (`http.json_errors`), and
    clients that do not ask for HTML keep aiohttp's plain answers."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or is_api(request.path) or not _wants_html(request):
            raise
        title, message = _STATUS_PAGES.get(exc.status, ("Something went wrong", exc.reason))
        response = _error(title, message, exc.status)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response


@cache
def _icon() -> bytes:
    """The site's icon as a 32x32 .ico holding one PNG: a blue rounded square with a white dot,
    drawn here so nothing binary is kept in the repository."""
    size = 32
    rows = []
    for y in range(size):
        row = bytearray([0])  # filter: none
        for x in range(size):
            cx, cy = min(x, size - 1 - x), min(y, size - 1 - y)
            corner = cx < 6 and cy < 6 and (6 - cx) ** 2 + (6 - cy) ** 2 > 36
            dot = (x - 15.5) ** 2 + (y - 15.5) ** 2 <= 49
            if corner:
                row += bytes((0, 0, 0, 0))
            elif dot:
                row += bytes((255, 255, 255, 255))
            else:
                row += bytes((29, 78, 216, 255))  # --primary-fill
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )
    header = struct.pack("<HHH", 0, 1, 1)
    entry = struct.pack("<BBBBHHII", size, size, 0, 0, 1, 32, len(png), 6 + 16)
    return header + entry + png


async def favicon(request: web.Request) -> web.Response:
    return web.Response(
        body=_icon(), content_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"}
    )


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
        message = exc.message[:1].upper() + exc.message[1:] + "."
        advice = _ADVICE.get(exc.code, _ADVICE["invalid_token"])
        return _error("This link does not work", message, 403, advice)
    info = await request.app[SESSIONS].store.get(session_id)
    if info is None:
        advice = "It may have been deleted. Ask the trainer for a current link."
        return _error("No such session", "This session does not exist (any more).", 404, advice)
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
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/s/{id}/{kind}", link)
    app.router.add_get("/static/{filename}", static)
