"""Every route of the OpenAPI document (/api/ and /healthz) answers its errors as JSON, a 405 with
an `Allow` header; pages keep aiohttp's own error pages."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from .conftest import ADMIN_KEY, Server


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/healthz", {"GET"}),
        ("PATCH", "/healthz", {"GET"}),
        ("OPTIONS", "/healthz", {"GET"}),
        ("DELETE", "/healthz", {"GET"}),
        ("DELETE", "/api/sessions", {"GET", "POST"}),
        ("PUT", "/api/openapi.json", {"GET"}),
    ],
)
async def test_405_is_json_with_allow(server: Server, method: str, path: str, allowed: set[str]) -> None:
    async with server.http.request(method, server.base_url + path) as r:
        assert r.status == 405
        assert r.headers["Content-Type"].startswith("application/json")
        assert (await r.json())["error"]["code"] == "method_not_allowed"
        assert allowed <= {m.strip() for m in r.headers["Allow"].split(",")}, r.headers["Allow"]


async def test_pages_keep_their_own_error_pages(server: Server) -> None:
    async with server.http.put(server.base_url + "/") as r:
        assert r.status == 405
        assert not r.headers["Content-Type"].startswith("application/json")


async def _raw(server: Server, data: bytes) -> bytes:
    host, port = server.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


BAD_REQUESTS = [
    b"GET /api/sessions/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/sessions HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
    b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
]


async def test_requests_the_parser_refuses_log_one_line_per_cause_without_traceback(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        for _ in range(40):
            for data in BAD_REQUESTS:
                assert (await _raw(server, data)).startswith(b"HTTP/1.0 400 "), data[:40]
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in lines if r.levelno >= logging.ERROR or r.exc_info], lines[:2]
    # One line per cause (LineTooLong, BadHttpMessage, BadStatusLine, ...), not one per request.
    assert len(lines) <= len(BAD_REQUESTS), [r.getMessage() for r in lines]
    assert not [r for r in lines if "aaaa" in r.getMessage()]  # no client data in the log
    async with server.http.get(server.base_url + "/healthz") as r:
        assert r.status == 200


async def test_a_body_that_does_not_decode_is_a_json_400(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    request = (
        b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: gzip\r\nContent-Length: 5\r\nAuthorization: Bearer "
        + ADMIN_KEY.encode()
        + b"\r\n\r\nabcde"
    )
    with caplog.at_level(logging.INFO):
        response = await _raw(server, request)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), head
    assert b"application/json" in head
    assert orjson.loads(body)["error"]["code"] == "invalid_payload"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    status, listed = await _list(server)
    assert status == 200 and listed["sessions"] == []


async def _list(server: Server) -> tuple[int, dict]:
    async with server.http.get(server.base_url + "/api/sessions", headers=server.admin) as r:
        return r.status, await r.json()
