"""The HTTP API over a real server: health, sessions, OpenAPI, JSON errors, link pages."""

from __future__ import annotations

from classroom.core import CODES


async def _json(server, method: str, path: str, **kw):
    async with server.http.request(method, server.base_url + path, **kw) as r:
        assert r.content_type == "application/json", (path, r.content_type)
        return r.status, await r.json()


async def test_healthz(server):
    status, body = await _json(server, "GET", "/healthz")
    assert status == 200 and body["status"] == "ok" and body["version"]


async def test_create_list_and_describe_sessions(server):
    status, created = await _json(
        server, "POST", "/api/sessions", json={"title": "  Statistics 101 "}, headers=server.admin
    )
    assert status == 201
    assert created["title"] == "Statistics 101" and created["status"] == "created"
    for key, path in (("trainer_url", "trainer"), ("join_url", "join"), ("replay_url", "replay")):
        assert created[key].startswith(f"{server.base_url}/s/{created['id']}/{path}?token=")

    status, listed = await _json(server, "GET", "/api/sessions", headers=server.admin)
    assert status == 200 and [s["id"] for s in listed["sessions"]] == [created["id"]]

    trainer_token = created["trainer_url"].split("token=")[1]
    for headers in (server.admin, {"Authorization": f"Bearer {trainer_token}"}):
        status, one = await _json(server, "GET", f"/api/sessions/{created['id']}", headers=headers)
        assert status == 200 and one["id"] == created["id"] and one["online"] == 0

    trainer = await server.client(created["trainer_url"], "T")
    await trainer.request("session.start")
    status, one = await _json(server, "GET", f"/api/sessions/{created['id']}?token={trainer_token}")
    assert one["status"] == "live" and one["online"] == 1 and one["seq"] == 2


async def test_http_errors_are_json_with_codes(server):
    bad_key = {"Authorization": "Bearer nope"}
    cases = [
        ("POST", "/api/sessions", {"json": {"title": "x"}}, 401, "unauthorized"),
        ("POST", "/api/sessions", {"json": {"title": "x"}, "headers": bad_key}, 403, "forbidden"),
        ("POST", "/api/sessions", {"data": "{not json", "headers": server.admin}, 400, "invalid_payload"),
        ("POST", "/api/sessions", {"json": {}, "headers": server.admin}, 400, "invalid_payload"),
        (
            "POST",
            "/api/sessions",
            {"json": {"title": "x", "extra": 1}, "headers": server.admin},
            400,
            "invalid_payload",
        ),
        ("POST", "/api/sessions", {"json": {"title": "t" * 201}, "headers": server.admin}, 400, "too_long"),
        ("POST", "/api/sessions", {"json": ["title"], "headers": server.admin}, 400, "invalid_payload"),
        ("GET", "/api/sessions", {}, 401, "unauthorized"),
        ("GET", "/api/sessions/nope", {"headers": server.admin}, 404, "not_found"),
        (
            "GET",
            "/api/sessions/nope",
            {"headers": {"Authorization": "Bearer forged.token"}},
            401,
            "invalid_token",
        ),
        ("GET", "/api/nothing-here", {}, 404, "not_found"),
        ("DELETE", "/api/sessions", {"headers": server.admin}, 405, "method_not_allowed"),
    ]
    for method, path, kw, status, code in cases:
        got_status, body = await _json(server, method, path, **kw)
        assert (got_status, body["error"]["code"]) == (status, code), (method, path, kw, body)
        assert body["error"]["message"]
    status, listed = await _json(server, "GET", "/api/sessions", headers=server.admin)
    assert listed["sessions"] == []  # none of the bad requests created anything


async def test_openapi_document_covers_every_route(server):
    status, doc = await _json(server, "GET", "/api/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in server.app.router.routes()
        if r.resource is not None
        and (
            r.resource.canonical.startswith("/api")
            or r.resource.canonical in ("/healthz", "/readyz", "/metrics")
        )
        and r.method != "HEAD"
    }
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert routes == documented
    assert "Error" in doc["components"]["schemas"]


async def test_every_error_code_is_documented():
    with open("docs/protocol.md", encoding="utf-8") as f:
        protocol = f.read()
    missing = [code for code in CODES if f"`{code}`" not in protocol]
    assert not missing, f"codes missing from docs/protocol.md: {missing}"


async def test_link_pages(server):
    info = await server.create_session("<script>alert(1)</script>")
    async with server.http.get(info["join_url"]) as r:
        text = await r.text()
        assert r.status == 200 and "learner" in text
        assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text
    async with server.http.get(info["join_url"].replace("/join?", "/trainer?")) as r:
        assert r.status == 403  # a learner token does not open the trainer page
    async with server.http.get(f"{server.base_url}/s/{info['id']}/join?token=forged") as r:
        assert r.status == 403
