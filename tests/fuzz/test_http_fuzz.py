"""Property-based tests of every HTTP route with hostile requests, against a real server.

The routes come from the app's router (the same setup functions `build_app` calls), and a test
checks that the live server has no other route and that the OpenAPI document lists exactly the
API's routes, so a new endpoint cannot escape the fuzzer. For each route: random path values
(existing ids and made-up ones), query parameters, headers (credentials of every kind, `Accept`
msgpack, odd content types) and bodies (shaped from the OpenAPI schema, broken, any JSON, bytes).
Properties: status < 500; every API error is JSON `{error: {code, message}}` with a documented
code; no error in the server's log; a refused request, and any GET, changes nothing on disk
(sessions, recordings, replay viewers' data); msgpack answers decode.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import msgpack
import orjson
import pytest
import yarl
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from classroom.api import setup_routes
from classroom.core.errors import CODES
from classroom.http import JSON_PROBES
from classroom.openapi import document
from classroom.operate import setup_operations
from classroom.pages import WEB_DIST, setup_pages
from recorder.api import LIBRARY, setup_replay_routes
from recorder.exports import FORMATS
from tests.conftest import ADMIN_KEY

from .conftest import LoopServer
from .payloads import (
    Raw,
    Ref,
    deep,
    encode,
    for_schema,
    json_values,
    long_text,
    mutated,
    resolve,
    short_text,
    undecodable,
)

# Hypothesis warns once that its own thread-local PRNG "could be garbage collected": harmless here.
pytestmark = pytest.mark.filterwarnings("ignore:It looks like `register_random`")

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def router_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path template) of every route but socket.io's; static files as one route."""
    out = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method not in METHODS or path.startswith("/socket.io"):
            continue
        if isinstance(route.resource, web.StaticResource):
            path += "/{filename}"
        out.add((route.method, path))
    return sorted(out)


def _bare_app() -> web.Application:
    app = web.Application()
    setup_routes(app)
    setup_replay_routes(app)
    setup_pages(app)
    setup_operations(app)
    return app


ROUTES = router_routes(_bare_app())
OPENAPI = document("http://127.0.0.1")


def is_api(path: str) -> bool:
    return path.startswith("/api/") or path in JSON_PROBES


def test_the_openapi_document_lists_exactly_the_api_routes() -> None:
    documented = {(m.upper(), p) for p, ops in OPENAPI["paths"].items() for m in ops}
    assert documented == {r for r in ROUTES if is_api(r[1])}


def test_the_server_has_no_route_the_fuzzer_does_not_know(loop_server: LoopServer) -> None:
    assert router_routes(loop_server.server.app) == ROUTES


# -- the world the requests act on -------------------------------------------------------------


class World:
    """A recorded ended session with a poll and questions (the replay target), a live one, one
    never recorded, credentials of every kind, and replay questions to answer."""

    def __init__(self, srv: LoopServer) -> None:
        self.srv = srv
        self.pools: dict[str, list[str]] = {}
        self.tokens: dict[str, str] = {}
        self._readers: dict[str, sqlite3.Connection] = {}

    async def ensure(self) -> None:
        app = self.srv.server.app
        if not self.pools or not app[LIBRARY].exists(self.pools["session"][0]):
            await self._build()

    async def _build(self) -> None:
        server = self.srv.server
        rec, trainer = await server.live_session("Recorded")
        learner = await server.client(rec["join_url"], "Lou")
        poll = await trainer.request("poll.open", question="Q?", options=["a", "b"], correct=[0])
        await learner.request("poll.vote", poll_id=poll["id"], choices=[1])
        await trainer.request("poll.close", poll_id=poll["id"])
        await learner.request("qa.ask", text="Why?")
        await learner.request("chat.send", text="=cmd|' /C calc'!A0")
        await trainer.request("session.mark", title="Part 2")
        await trainer.request("session.end")
        await learner.close()
        await trainer.close()
        live, live_trainer = await server.live_session("Live")
        await live_trainer.close()
        off_info = await self._create("Off", recording=False)
        viewer = await self._http("POST", f"/api/recordings/{rec['id']}/viewers", body={"name": "Vi"})
        vtoken = viewer["token"]
        asked = await self._http(
            "POST", f"/api/recordings/{rec['id']}/questions", body={"t": 0, "text": "Later?"}, token=vtoken
        )
        self.tokens = {
            "admin": ADMIN_KEY,
            "trainer": _token(rec["trainer_url"]),
            "learner": _token(rec["join_url"]),
            "replay": _token(rec["replay_url"]),
            "viewer": vtoken,
            "other_trainer": _token(live["trainer_url"]),
            "forged": _token(rec["trainer_url"])[:-3] + "abc",
        }
        self.pools = {
            "session": [rec["id"], live["id"], off_info["id"], "NoSuchSession", "..", "a" * 65],
            "poll": [poll["id"], "p0", "p" + "9" * 30],
            "qid": [asked["id"], "q0"],
            "name": list(FORMATS),
            "kind": ["join", "trainer", "replay", "admin"],
            "filename": [*sorted(p.name for p in WEB_DIST.glob("*"))[:4], "../pyproject.toml", "%2e%2e/x"],
        }
        # The sessions' last events (participants leaving) reach the disk in the background:
        # wait until what is on disk stops changing, so it cannot change inside an example.
        async with asyncio.timeout(10):
            previous = None
            while (now := self.fingerprint()) != previous:
                previous = now
                await asyncio.sleep(0.1)

    async def _create(self, title: str, recording: bool) -> dict[str, Any]:
        return await self._http("POST", "/api/sessions", body={"title": title, "recording": recording})

    async def _http(self, method: str, path: str, body: Any, token: str = ADMIN_KEY) -> dict[str, Any]:
        server = self.srv.server
        headers = {"Authorization": f"Bearer {token}"}
        async with server.http.request(method, server.base_url + path, json=body, headers=headers) as r:
            assert r.status in (200, 201), await r.text()
            return await r.json()

    def fingerprint(self) -> tuple[Any, ...]:
        """Everything a request may change on disk: the two SQLite databases, table by table, and
        the recordings (which exist, and the size of their logs)."""
        data = self.srv.data_dir
        out: list[Any] = []
        for db in ("classcast.db", "replay.db"):
            if db not in self._readers:
                self._readers[db] = sqlite3.connect(
                    f"file:{data / db}?mode=ro", uri=True, check_same_thread=False
                )
            con = self._readers[db]
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for t in sorted(tables):
                out.append((db, t, sorted(map(repr, con.execute(f"SELECT * FROM {t}")))))
        root = data / "recordings"
        for log in sorted(root.glob("*/*.log")):
            out.append((str(log.relative_to(root)), log.stat().st_size))
        return tuple(out)


def _token(link: str) -> str:
    return link.split("token=")[1]


@pytest.fixture(scope="module")
def world(loop_server: LoopServer) -> Iterator[World]:
    w = World(loop_server)
    loop_server.run(w.ensure())
    yield w
    for con in w._readers.values():
        con.close()


# -- requests ----------------------------------------------------------------------------------

header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True).filter(
    lambda n: n.lower() not in ("content-length", "transfer-encoding", "host", "connection")
)
query_values = st.one_of(
    st.sampled_from(["0", "1", "-1", "", " 1", "1e3", "0x10", "1.5", "+5", "９", "NaN"]),
    st.integers().map(str),
    st.sampled_from([str(2**63), str(2**64), str(2**64 + 1), "9" * 1200, "-" + "9" * 30]),
    short_text.map(lambda s: re.sub("[\ud800-\udfff]", "?", s)),
)
CREDENTIALS = ["none", "admin", "trainer", "learner", "replay", "viewer", "other_trainer", "forged", "junk"]


def _query_names(method: str, path: str) -> list[str]:
    op = OPENAPI["paths"].get(path, {}).get(method.lower(), {})
    return [p["name"] for p in op.get("parameters", ()) if p["in"] == "query"] + ["token", "audience"]


def _body_schema(method: str, path: str) -> dict[str, Any] | None:
    op = OPENAPI["paths"].get(path, {}).get(method.lower(), {})
    return op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")


@st.composite
def requests(draw: st.DrawFn, method: str, path: str) -> dict[str, Any]:
    params = re.findall(r"{(\w+)}", path)
    values = {}
    for p in params:
        pool = "session" if p == "id" else p
        values[p] = draw(
            st.one_of(
                st.builds(Ref, st.just(pool), st.integers(0, 8)),
                st.builds(Ref, st.just(pool), st.integers(0, 8)),
                short_text.map(lambda s: re.sub("[\ud800-\udfff]", "?", s)),
                # Up to 1000 characters (6000 bytes quoted): a longer request line has its own test.
                long_text(1000).map(lambda s: re.sub("[\ud800-\udfff]", "?", s)),
            ),
            p,
        )
    query = draw(
        st.dictionaries(
            st.one_of(st.sampled_from(_query_names(method, path)), header_names), query_values, max_size=4
        ),
        "query",
    )
    credential = draw(st.sampled_from(CREDENTIALS), "credential")
    where = draw(st.sampled_from(["header", "header", "query", "both"]), "where")
    accept = draw(
        st.sampled_from(
            [None, "application/json", "application/msgpack", "application/x-msgpack", "*/*", "text/html"]
        )
        | header_text,
        "accept",
    )
    content_type = draw(
        st.sampled_from(
            [
                None,
                "application/json",
                "application/json; charset=latin-1",
                "text/plain",
                "application/msgpack",
                "multipart/form-data",
                "application/x-www-form-urlencoded",
            ]
        )
        | header_text,
        "content_type",
    )
    extra = draw(st.dictionaries(header_names, header_text, max_size=3), "headers")
    schema = _body_schema(method, path)
    shaped = for_schema(schema) if schema else json_values()
    fields = list(schema.get("properties", {})) if schema else []
    body = draw(
        st.one_of(
            st.none(),
            shaped,
            mutated(shaped, fields),
            json_values(),
            undecodable,
            st.binary(max_size=64),
            st.sampled_from(
                [b"", b"\xff\xfe", b'{"title": "\xff"}', b"[" * 20_000, msgpack.packb({"title": "x"})]
            ),
        ),
        "body",
    )
    return {
        "params": values,
        "query": query,
        "credential": credential,
        "where": where,
        "accept": accept,
        "content_type": content_type,
        "headers": extra,
        "body": body,
    }


# aiohttp's HTTP parser refuses a request target or a header over 8190 bytes (its max_line_size and
# max_field_size) with a 400 text/plain of its own, before any middleware runs: no JSON is possible
# there (docs/protocol.md, section 9). Requests within this margin of the limit are judged by
# status and log only.
PARSER_LIMIT = 8190 - 100


def parser_refuses(full: yarl.URL, headers: dict[str, str]) -> bool:
    return len(full.raw_path_qs) > PARSER_LIMIT or any(
        len(k) + len(v) > PARSER_LIMIT for k, v in headers.items()
    )


async def send(world: World, method: str, path: str, req: dict[str, Any]) -> tuple[int, str, bytes, bool]:
    server = world.srv.server
    params = resolve(req["params"], world.pools)
    url = path
    for name, value in params.items():
        url = url.replace(
            "{" + name + "}", quote(value, safe="") if name != "filename" else quote(value, safe="/")
        )
    query = dict(req["query"])
    headers = dict(req["headers"])
    token = {"none": None, "junk": "not-a-token"}.get(req["credential"], world.tokens.get(req["credential"]))
    if token is not None:
        if req["where"] in ("header", "both"):
            headers["Authorization"] = f"Bearer {token}"
        if req["where"] in ("query", "both"):
            query["token"] = token
    if req["accept"] is not None:
        headers["Accept"] = req["accept"]
    if req["content_type"] is not None:
        headers["Content-Type"] = req["content_type"]
    full = yarl.URL(server.base_url + url, encoded=True).update_query(query)
    timeout = aiohttp.ClientTimeout(total=10)
    body = req["body"]
    if not isinstance(body, bytes | None):
        # A JSON value, ids resolved now, lone surrogates, NaN and all (the server's parser is
        # Python's, which takes them).
        body = (body.text if isinstance(body, Raw) else encode(resolve(body, world.pools))).encode()
    async with server.http.request(method, full, data=body, headers=headers, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type", ""), await r.read(), parser_refuses(full, headers)


async def exercise(world: World, method: str, path: str, req: dict[str, Any]) -> None:
    await world.ensure()
    errors = world.srv.errors
    mark = len(errors.records)
    before = world.fingerprint()
    status, content_type, body, refused_by_parser = await send(world, method, path, req)
    what = f"{method} {path} {req!r}"[:600]
    assert status < 500, f"{what}: {status} {body[:300]!r}"
    if refused_by_parser:
        assert 400 <= status < 500, f"{what}: over the parser's limits but answered {status}"
    elif is_api(path) and status >= 400:
        assert content_type.startswith("application/json"), f"{what}: {status} {content_type} {body[:200]!r}"
        error = orjson.loads(body).get("error")
        assert isinstance(error, dict) and error.get("code") in CODES, f"{what}: {body[:300]!r}"
        assert isinstance(error.get("message"), str) and error["message"], f"{what}: {body[:300]!r}"
    elif is_api(path) and status < 300 and body:
        if content_type.startswith("application/msgpack") and not path.endswith("/export/{name}"):
            msgpack.unpackb(body)
        elif content_type.startswith("application/json"):
            orjson.loads(body)
    if status >= 400 or method == "GET":
        assert world.fingerprint() == before, f"{what}: answered {status} but changed what is on disk"
    assert not errors.since(mark), f"{what}: the server logged {errors.since(mark)}"


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_each_route_answers_below_500_and_refusals_change_nothing(
    world: World, method: str, path: str
) -> None:
    @given(req=requests(method, path))
    def check(req: dict[str, Any]) -> None:
        world.srv.run(exercise(world, method, path, req))

    check()


@pytest.mark.parametrize("method", ["PUT", "PATCH", "OPTIONS"])
def test_other_methods_on_api_routes(world: World, method: str) -> None:
    paths = sorted({p for _, p in ROUTES if is_api(p)})

    @given(path=st.sampled_from(paths), req=requests(method, "/api/sessions"))
    def check(path: str, req: dict[str, Any]) -> None:
        req = {**req, "params": {}}
        concrete = re.sub(r"{(\w+)}", "x", path)
        world.srv.run(exercise(world, method, concrete, req))

    check()


def test_unknown_paths(world: World) -> None:
    segment = st.text(
        st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/?#%"), max_size=12
    )

    @given(
        prefix=st.sampled_from(["/api/", "/api/recordings/", "/api/sessions/x/", "/s/", "/"]),
        rest=st.lists(segment, max_size=4),
        method=st.sampled_from(METHODS),
    )
    def check(prefix: str, rest: list[str], method: str) -> None:
        path = prefix + "/".join(quote(s, safe="") for s in rest)
        req = {
            "params": {},
            "query": {},
            "credential": "admin",
            "where": "header",
            "accept": None,
            "content_type": None,
            "headers": {},
            "body": None,
        }
        world.srv.run(exercise(world, method, path, req))

    check()


@pytest.mark.parametrize(
    ("where", "size"), [("path", 9000), ("query", 9000), ("header", 9000), ("header", 70_000)]
)
def test_overlong_request_line_and_headers(world: World, where: str, size: int) -> None:
    """Past the HTTP parser's limits (8190 bytes a line): a 4xx (aiohttp's own text/plain 400,
    answered before any middleware can make it JSON) and no traceback in the log."""
    req = {
        "params": {},
        "query": {"t": "1" * size} if where == "query" else {},
        "credential": "admin",
        "where": "header",
        "accept": None,
        "content_type": None,
        "headers": {"X-Long": "a" * size} if where == "header" else {},
        "body": None,
    }
    path = "/api/sessions/" + "a" * size if where == "path" else "/api/sessions"
    world.srv.run(exercise(world, "GET", path, req))


HOSTILE_QUERY = [str(2**63), str(2**64), "9" * 4301, "-1", "1e3", "\u0661"]  # the last: Arabic-Indic 1


@pytest.mark.parametrize(
    ("method", "path"), [r for r in ROUTES if [q for q in _query_names(*r) if q not in ("token", "audience")]]
)
def test_hostile_query_values(world: World, method: str, path: str) -> None:
    """Each documented query parameter, with numbers past every integer type, as JSON and as
    msgpack (a corpus that runs every time, beside what hypothesis happens to draw)."""
    for name in _query_names(method, path):
        for value in HOSTILE_QUERY:
            for accept in ("application/json", "application/msgpack"):
                req = {
                    "params": {
                        p: Ref("session" if p == "id" else p, 0) for p in re.findall(r"{(\w+)}", path)
                    },
                    "query": {"t": "0", name: value},
                    "credential": "admin",
                    "where": "header",
                    "accept": accept,
                    "content_type": None,
                    "headers": {},
                    "body": None,
                }
                world.srv.run(exercise(world, method, path, req))


HOSTILE_BODY = [Raw('"\\ud800"'), Raw('"a\\udc00"'), Raw("9" * 5001), Raw("NaN"), Raw("1e999"), deep(10_000)]


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if _body_schema(*r)])
def test_hostile_values_in_every_body_field(world: World, method: str, path: str) -> None:
    """Each field of each request body (from the OpenAPI schema), and the whole body, set to what
    Python's JSON parser takes but nothing else should: lone surrogates, NaN, 1e999, thousands of
    digits, nesting past the recursion limit."""
    schema = _body_schema(method, path)
    assert schema is not None
    valid = {
        "title": "T",
        "recording": True,
        "anonymize": False,
        "name": "N",
        "t": 0,
        "text": "x",
        "choices": [0],
    }
    fields = list(schema.get("properties", {}))
    for value in HOSTILE_BODY:
        for field in [*fields, None]:
            body = value if field is None else {**{f: valid.get(f, "x") for f in fields}, field: value}
            req = {
                "params": {p: Ref("session" if p == "id" else p, 0) for p in re.findall(r"{(\w+)}", path)},
                "query": {},
                "credential": "viewer" if "/quiz" in path or path.endswith("/questions") else "admin",
                "where": "header",
                "accept": None,
                "content_type": "application/json",
                "headers": {},
                "body": body,
            }
            world.srv.run(exercise(world, method, path, req))
