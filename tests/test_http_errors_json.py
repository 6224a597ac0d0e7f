"""Every route of the OpenAPI document (/api/ and /healthz) answers its errors as JSON, a 405 with
an `Allow` header; pages keep aiohttp's own error pages."""

from __future__ import annotations

import pytest

from .conftest import Server


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
