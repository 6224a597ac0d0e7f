"""Security headers: every HTML page has a CSP, no framing and no Referer (link URLs carry
tokens); every response, exports and API answers included, forbids MIME sniffing."""

from __future__ import annotations

from classroom.http import CSP

from .recorder.test_replay_api import recorded_session, token_of


def _base(headers) -> None:
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("X-Frame-Options") == "DENY"
    assert headers.get("Referrer-Policy") == "no-referrer"


async def test_html_pages_send_a_csp_and_no_referrer(server):
    info = await server.create_session()
    pages = [
        ("/", 200),
        (info["trainer_url"].split("/", 3)[3], 200),
        (info["join_url"].split("/", 3)[3], 200),
        (info["replay_url"].split("/", 3)[3], 200),
        (f"s/{info['id']}/join?token=forged", 403),
        ("s/nosuchsession0/join?token=" + token_of(info["join_url"]), 403),
    ]
    for path, status in pages:
        url = f"{server.base_url}/{path.lstrip('/')}"
        async with server.http.get(url) as r:
            assert r.status == status, (path, r.status)
            assert r.content_type == "text/html"
            _base(r.headers)
            csp = r.headers.get("Content-Security-Policy", "")
            host = server.base_url.split("//")[1]
            assert csp == CSP.format(ws=f" ws://{host} wss://{host}"), path
            directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
            assert directives["script-src"] == "'self'" and "unsafe" not in csp
            assert directives["frame-ancestors"] == "'none'"

    # A Host header that is not a plain host does not reach the policy.
    async with server.http.get(server.base_url + "/", headers={"Host": "x y;script-src *"}) as r:
        assert r.headers["Content-Security-Policy"] == CSP.format(ws="")


async def test_api_exports_static_and_errors_are_nosniff(server):
    info, *_ = await recorded_session(server, end=True)
    replay = {"Authorization": f"Bearer {token_of(info['trainer_url'])}"}
    urls = [
        ("/healthz", {}, 200),
        ("/api/sessions", server.admin, 200),
        ("/api/sessions", {}, 401),
        ("/api/nothing/here", {}, 404),
        ("/nothing/here", {}, 404),
        (f"/api/recordings/{info['id']}", replay, 200),
        (f"/api/recordings/{info['id']}/export/chat.txt", replay, 200),
        (f"/api/recordings/{info['id']}/export/chat.vtt", replay, 200),
        (f"/api/recordings/{info['id']}/export/polls.csv", replay, 200),
        (f"/api/recordings/{info['id']}/export/recording.json", replay, 200),
        ("/static/learner.js", {}, None),
    ]
    for path, headers, status in urls:
        async with server.http.get(server.base_url + path, headers=headers) as r:
            if status is not None:
                assert r.status == status, (path, r.status)
            _base(r.headers)
            if r.content_type != "text/html":
                assert "Content-Security-Policy" not in r.headers, path
