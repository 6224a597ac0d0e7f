"""The web client's built files: served as they are; any other name is a JSON 404, never a 500
(aiohttp's static route answered an over-long name with a 500 and a logged traceback)."""

from __future__ import annotations

import logging

import pytest
import yarl

from classroom.pages import WEB_DIST

from .conftest import Server

pytestmark = pytest.mark.skipif(not (WEB_DIST / "learner.js").is_file(), reason="web/dist is not built")


async def test_a_built_file_is_served(server: Server) -> None:
    async with server.http.get(server.base_url + "/static/learner.js") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith(("application/javascript", "text/javascript"))
        assert await r.read() == (WEB_DIST / "learner.js").read_bytes()
        etag = r.headers["ETag"]
    async with server.http.get(server.base_url + "/static/learner.js", headers={"If-None-Match": etag}) as r:
        assert r.status == 304


@pytest.mark.parametrize(
    "name",
    ["f" * 300, "f%13" * 200, "%00", "..", "%2e%2e", "%2e%2e%2fpyproject.toml", ".built", "nope.js", "~"],
)
async def test_any_other_name_is_a_json_404(
    server: Server, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    with caplog.at_level(logging.INFO):
        url = yarl.URL(server.base_url + "/static/" + name, encoded=True)  # sent as written
        async with server.http.get(url) as r:
            assert r.status == 404, name
            assert r.headers["Content-Type"].startswith("application/json")
            assert (await r.json())["error"]["code"] == "not_found"
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR or rec.exc_info]
