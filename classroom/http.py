"""What every HTTP handler shares: the error body and its status, the credentials of a request, one
strict JSON body reader, bounded query integers, and the middlewares that make every failure a JSON
error and put the security headers on every response.

Everything a client sends passes through here before a handler sees it, so the same rules hold on
every route: JSON is UTF-8 with no lone surrogates, at most `MAX_DEPTH` deep, its integers within
what a JavaScript client can hold; query integers are plain ASCII digits within range."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_log import AccessLogger
from aiohttp.web_protocol import RequestPayloadError

from .core import CommandError
from .throttle import LogThrottle

log = logging.getLogger(__name__)

MAX_DEPTH = 32  # nesting of a JSON body; no endpoint takes more than 3
MAX_INT = 2**53 - 1  # JSON integers and query integers: what a JavaScript number holds exactly

STATUS = {
    "invalid_payload": 400,
    "too_long": 400,
    "out_of_range": 400,
    "unauthorized": 401,
    "invalid_token": 401,
    "expired_token": 401,
    "wrong_session": 403,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "session_live": 409,
    "recording_off": 409,
    "payload_too_large": 413,
    "limit_reached": 409,
    "no_quiz": 409,
    "nobody_to_assign": 409,
    "rate_limited": 429,
    "internal_error": 500,
    "recording_damaged": 500,
    "assignments_damaged": 500,
    "storage_full": 503,
    "temporarily_unavailable": 503,  # cluster mode: Redis unreachable
}

# Content Security Policy of the HTML pages. The bundles are plain files under /static and the pages
# carry no inline script or style; the favicon is a data: image and the board a canvas. socket.io
# connects to the same origin: CSP 3 browsers match ws:/wss: there against 'self'; older ones (Safari
# before 15.4) need the origin's websocket form spelled out, so `connect-src` names it (`{ws}`).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; media-src 'self'; connect-src 'self'{ws}; manifest-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def csp(request: web.Request) -> str:
    """The page's CSP, naming its own websocket origin (a Host header that is not a plain host is
    left out: 'self' still covers it in current browsers)."""
    host = request.host
    if not _HOST.fullmatch(host or ""):
        return CSP.format(ws="")
    return CSP.format(ws=f" ws://{host} wss://{host}")


# On every response, HTML or not: no MIME sniffing (exports, JSON), no framing, and no Referer, as
# link URLs carry tokens.
BASE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def error_response(code: str, message: str, status: int | None = None) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status or STATUS.get(code, 400)
    )


JSON_PROBES = ("/healthz", "/readyz", "/metrics")  # outside /api/ by convention, JSON errors all the same


def is_api(path: str) -> bool:
    """Whether `path` is under the JSON API (every route of the OpenAPI document: /api/ and the
    health check), whose errors are JSON whatever went wrong."""
    return path.startswith("/api/") or path in JSON_PROBES


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every API failure is JSON with a stable code, never an HTML or text error page; an
    unexpected exception is logged once with its traceback and answers a JSON 500."""
    try:
        return await handler(request)
    except CommandError as exc:
        return error_response(exc.code, exc.message)
    except web.HTTPException as exc:
        if not is_api(request.path) or exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status, "http_error"
        )
        response = error_response(code, exc.reason, exc.status)
        if "Allow" in exc.headers:  # a 405 says which methods the route takes (RFC 9110)
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except RequestPayloadError as exc:
        # The body broke off in transit: bad chunked encoding, a Content-Encoding that does not
        # decode. The client's fault, not a bug: no traceback.
        reason = exc.__cause__ or exc
        return error_response("invalid_payload", f"the body could not be read ({type(reason).__name__})")
    except Exception:
        log.exception("%s %s failed", request.method, request.rel_url.path)
        return error_response("internal_error", "the server failed; nothing changed", 500)


# What a client alone can cause below the handlers: a request the HTTP parser refuses (request line
# or header over 8190 bytes, more than 128 headers, bad chunked encoding, ...), a body that does not
# decode, a connection that goes away.
CLIENT_FAULTS = (HttpProcessingError, RequestPayloadError, ConnectionError)


class ServerLog(logging.LoggerAdapter):
    """The logger aiohttp's request handlers use (`aiohttp.server`), given to them by the app
    (`handler_args`). aiohttp logs an ERROR with a traceback for every request its HTTP parser
    refuses, which lets any client flood the log: those become one WARNING line per kind a minute,
    without traceback or client data (the request line may hold a token); real failures keep
    their traceback, one per kind a minute."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})
        self.throttle = LogThrottle(logger)

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        if level < logging.ERROR:
            self.logger.log(level, msg, *args, **kwargs)
            return
        exc = exc_info if isinstance(exc_info, BaseException) else None
        if exc is None and exc_info:
            exc = sys.exc_info()[1]
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = str(msg)
        if isinstance(exc, CLIENT_FAULTS):
            name = type(exc).__name__
            self.throttle.log(logging.WARNING, f"client: {name}", "%s: %s (the client's fault)", text, name)
        else:
            cause = f"{type(exc).__name__ if exc else ''} {msg}"[:100]
            self.throttle.log(level, cause, "%s", text, exc_info=exc or False)


@web.middleware
async def security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    """nosniff, no framing and no Referer on every response; the CSP on every HTML page."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # aiohttp's own error pages (404 outside /api/, ...)
        _secure(request, exc, exc.content_type == "text/html")
        raise
    _secure(request, response, response.content_type == "text/html")
    return response


def _secure(request: web.Request, response: web.StreamResponse, is_html: bool) -> None:
    if response.prepared:  # a websocket or a stream already sent its headers
        return
    for name, value in BASE_HEADERS.items():
        response.headers.setdefault(name, value)
    if is_html:
        response.headers.setdefault("Content-Security-Policy", csp(request))


def bearer(request: web.Request) -> str | None:
    """The request's secret: `Authorization: Bearer <secret>`, else `?token=`."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    return request.query.get("token")


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, checked once for every endpoint: UTF-8 (whatever charset the
    Content-Type claims), no lone surrogates, no NaN or infinity, at most MAX_DEPTH deep, integers
    within ±MAX_INT. Anything else is `invalid_payload` or `out_of_range`; nothing is half-read."""
    raw = await request.read()
    try:
        value = orjson.loads(raw)  # strict UTF-8, surrogate pairs only, its own depth limit (1024)
    except orjson.JSONDecodeError:
        raise CommandError("invalid_payload", "the body must be JSON (UTF-8)") from None
    check_json(value)
    return value


def check_json(value: Any) -> None:
    """Refuse JSON values nested deeper than MAX_DEPTH or holding integers beyond ±MAX_INT
    (iteratively: no recursion however deep the input)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise CommandError("invalid_payload", f"the body is nested more than {MAX_DEPTH} deep")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, int) and not isinstance(item, bool) and not -MAX_INT <= item <= MAX_INT:
            raise CommandError("out_of_range", f"numbers must lie within ±{MAX_INT}")


_DIGITS = re.compile(r"[0-9]{1,16}")


def int_param(request: web.Request, name: str, default: int | None = None, maximum: int = MAX_INT) -> int:
    """A non-negative integer query parameter (milliseconds): ASCII digits only, at most `maximum`."""
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise CommandError("invalid_payload", f"{name}: query parameter required (milliseconds)")
        return default
    if raw.startswith("-") and _DIGITS.fullmatch(raw[1:]):
        raise CommandError("out_of_range", f"{name}: must not be negative")
    if not _DIGITS.fullmatch(raw):
        if raw.isascii() and raw.isdigit():
            raise CommandError("out_of_range", f"{name}: at most {maximum}")
        raise CommandError("invalid_payload", f"{name}: must be a whole number of milliseconds")
    value = int(raw)
    if value > maximum:
        raise CommandError("out_of_range", f"{name}: at most {maximum}")
    return value


# Query parameters whose value is a secret: tokens, keys, signatures, passwords (any name that
# contains one of these words: `token`, `admin_key`, `api-key`, `sig`...).
_SECRET_NAME = re.compile(r"(?i)token|key|secret|pass|auth|sig|sid|session_id|code")
_SECRET_PARAM = re.compile(r"([?&;]([^=&;\s\"#]*)=)([^&;\s\"#]*)")
_SECRET_HEADERS = {"authorization", "cookie", "proxy-authorization", "x-api-key"}
REDACTED = "[redacted]"


def _secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(unquote(name)))


def redact(text: str) -> str:
    """`text` (a request line, a URL) with the values of secret-looking query parameters hidden
    (the names are matched percent-decoded, so `?%74oken=` is hidden too)."""
    return _SECRET_PARAM.sub(lambda m: m[1] + REDACTED if _secret_name(m[2]) else m[0], text)


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access log with secrets left out: tokens and the admin key may come as `?token=`
    (links, downloads), and an access log is read by more people than the admin key should be. The
    values go out redacted both in the message and in the record's `extra` fields."""

    def _format_line(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float
    ) -> list[tuple[Any, Any]]:
        out = []
        for key, value in super()._format_line(request, response, time):
            if key == "first_request_line" and request is not None:
                # From the raw target: the decoded one would turn an encoded `&` or space inside
                # a token into a separator, and leave the rest of the token in the clear.
                version = request.version
                value = f"{request.method} {redact(request.raw_path)} HTTP/{version.major}.{version.minor}"
            elif isinstance(key, tuple) and key[1].lower() in _SECRET_HEADERS and value != "-":
                value = REDACTED
            elif isinstance(value, str):
                value = redact(value)
            out.append((key, value))
        return out
