"""`--lrs-url` against a real Learning Record Store on loopback (ralph's, `tests/lrs.py`): the
statements arrive and the LRS accepts them; an LRS down at first gets them once it is up, while
the session's commands are answered as usual; a restart sends nothing twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from classroom.app import LRS
from recorder import xapi
from recorder.lrs import LrsPusher

from ..conftest import ADMIN_KEY, free_port, running_server
from ..lrs import PASSWORD, USER, RalphLrs
from .test_replay_features import ok, token_of
from .test_report_api import live_script
from .test_xapi import duration_ms, statements, viewers_watch

SETTLED = 20  # seconds: generous, the machine may be loaded


@pytest.fixture
async def lrs(tmp_path: Path) -> AsyncIterator[RalphLrs]:
    store = RalphLrs(tmp_path / "lrs")
    await store.start()
    try:
        yield store
    finally:
        await store.stop()
        print(store.log.decode(errors="replace")[-4000:])  # shown when the test fails


def lrs_server(data_dir: Path, store: RalphLrs):
    """A server pushing to `store`, on the same port at each start of one data dir: its URL is
    its identity in the statements (activity ids, accounts' homePage)."""
    port = PORTS.setdefault(data_dir, free_port())
    return running_server(data_dir, lrs_url=store.url, lrs_user=USER, lrs_password=PASSWORD, port=port)


PORTS: dict[Path, int] = {}


def plain(value: Any) -> Any:
    """Without `objectType`, which the LRS leaves out where it is the default (Agent, Activity)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items() if k != "objectType"}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def quick(pusher: LrsPusher) -> LrsPusher:
    """Shorter waits than a server's, for the tests."""
    pusher.settle, pusher.progress_every, pusher.retry_first, pusher.retry_max = 0.05, 0.2, 0.2, 1.0
    return pusher


async def settled(pusher: LrsPusher) -> None:
    """Everything noted so far has been pushed (the pusher's task found nothing left to do)."""
    await asyncio.wait_for(pusher.idle.wait(), SETTLED)


def same(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    """The LRS holds each of our statements once, as we sent it (it leaves out `objectType`
    where it is the default). It may hold more: a replay viewer's progress as it was at an
    earlier push, with less watched than now."""
    ids = [s["id"] for s in theirs]
    assert len(ids) == len(set(ids)), "a statement stored twice"
    held = {s["id"]: s for s in theirs}
    assert {s["id"] for s in ours} <= set(held)
    for s in ours:
        got = held[s["id"]]
        for field in ("actor", "verb", "object", "result", "context", "timestamp"):
            assert plain(got.get(field)) == plain(s.get(field)), (
                s["id"],
                field,
                got.get(field),
                s.get(field),
            )
    now = {s["actor"]["account"]["name"]: s for s in ours if s["verb"]["id"] == xapi.PROGRESSED}
    for extra in set(held) - {s["id"] for s in ours}:
        was = held[extra]
        assert was["verb"]["id"] == xapi.PROGRESSED, was
        later = now[was["actor"]["account"]["name"]]
        # Less watched then (shares are rounded: compare the time covered).
        assert duration_ms(was["result"]["duration"]) < duration_ms(later["result"]["duration"])
        assert (
            was["result"]["extensions"][xapi.EXT_PROGRESS] <= later["result"]["extensions"][xapi.EXT_PROGRESS]
        )


async def ended_session(srv) -> dict[str, Any]:
    run = await live_script(srv)
    await run["trainer"].request("session.end")
    await run["learners"]["Ada"].wait_for("session.ended")
    return run


async def test_statements_reach_the_lrs(tmp_path: Path, lrs: RalphLrs):
    async with lrs_server(tmp_path / "data", lrs) as srv:
        pusher = quick(srv.app[LRS])
        run = await ended_session(srv)
        await settled(pusher)
        rid = run["info"]["id"]
        at_end = await statements(srv, rid)
        assert any(s["verb"]["id"].endswith("/attended") for s in at_end)
        same(at_end, await lrs.statements())
        # Replay viewers watch and answer: their statements follow.
        await viewers_watch(srv, run)
        await settled(pusher)
        everything = await statements(srv, rid)
        assert len(everything) > len(at_end)
        same(everything, await lrs.statements())
        assert pusher.pushed >= len(everything) and pusher.failures == 0


async def test_an_lrs_down_at_first_gets_them_once_up(tmp_path: Path):
    store = RalphLrs(tmp_path / "lrs")  # its port is free: nothing listens there yet
    try:
        async with lrs_server(tmp_path / "data", store) as srv:
            pusher = quick(srv.app[LRS])
            run = await ended_session(srv)
            await asyncio.wait_for(pusher.failed.wait(), SETTLED)
            # Meanwhile the server answers as usual: another session's commands.
            info, _trainer = await srv.live_session("Meanwhile")
            ada = await srv.client(info["join_url"], "Ada")
            slowest = 0.0
            for i in range(5):  # within the chat rate limit
                t0 = time.monotonic()
                await ada.request("chat.send", text=f"message {i}")
                slowest = max(slowest, time.monotonic() - t0)
            assert slowest < 5, f"a command took {slowest:.1f} s while the LRS was down"
            rid = run["info"]["id"]
            ours = await statements(srv, rid, token_of(run["info"]["trainer_url"]))
            assert not pusher.idle.is_set() and pusher.pushed == 0
            failures = pusher.failures
            await store.start()
            await settled(pusher)
            assert pusher.failures >= failures >= 1
            same(ours, await store.statements())
    finally:
        await store.stop()


async def test_a_restart_sends_nothing_twice(tmp_path: Path, lrs: RalphLrs):
    data = tmp_path / "data"
    async with lrs_server(data, lrs) as srv:
        pusher = quick(srv.app[LRS])
        run = await ended_session(srv)
        await settled(pusher)
        rid = run["info"]["id"]
        first = await statements(srv, rid)
        same(first, await lrs.statements())
    # Restarted: a new replay viewer's progress brings one statement, and only it is sent.
    async with lrs_server(data, lrs) as srv:
        pusher = quick(srv.app[LRS])
        replay = token_of(run["info"]["replay_url"])
        base = f"/api/recordings/{rid}"
        viewer = await ok(srv, "POST", f"{base}/viewers", replay, 201, json={"name": "Nia"})
        watched = {"from": 0, "to": (await ok(srv, "GET", base, replay))["duration_ms"] // 2}
        await ok(srv, "POST", f"{base}/viewers/{viewer['viewer_id']}/progress", viewer["token"], 204,
                 json=watched)  # fmt: skip
        await settled(pusher)
        second = await statements(srv, rid)
        assert len(second) == len(first) + 1
        assert pusher.pushed == 1
        same(second, await lrs.statements())
    # The record of what was sent lost: everything goes again, and the LRS, which has each
    # statement already (same id, same content), stores none twice.
    (data / "lrs.db").unlink()
    async with lrs_server(data, lrs) as srv:
        pusher = quick(srv.app[LRS])
        await ok(srv, "POST", f"{base}/viewers/{viewer['viewer_id']}/progress", viewer["token"], 204,
                 json=watched)  # fmt: skip
        await settled(pusher)
        assert pusher.failures == 0 and pusher.pushed == len(second)
        same(second, await lrs.statements())


async def test_what_is_left_to_push_survives_a_restart(tmp_path: Path):
    data = tmp_path / "data"
    store = RalphLrs(tmp_path / "lrs")
    try:
        async with lrs_server(data, store) as srv:
            pusher = quick(srv.app[LRS])
            run = await ended_session(srv)
            await asyncio.wait_for(pusher.failed.wait(), SETTLED)
            ours = await statements(srv, run["info"]["id"], ADMIN_KEY)
        await store.start()
        # Nothing new happens: the restarted server pushes what it had noted.
        async with lrs_server(data, store) as srv:
            pusher = quick(srv.app[LRS])
            await settled(pusher)
            assert pusher.pushed == len(ours)
            same(ours, await store.statements())
    finally:
        await store.stop()


async def test_an_lrs_that_never_answers_blocks_nothing(tmp_path: Path):
    """An LRS that takes the request and never answers: the push waits (up to its timeout), the
    server does not. The stop does not wait for it either."""
    got_request = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        got_request.set()  # and never a word back

    black_hole = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = black_hole.sockets[0].getsockname()[1]
    store = RalphLrs(tmp_path / "lrs", port)  # only its URL: nothing of ralph runs
    try:
        async with lrs_server(tmp_path / "data", store) as srv:
            quick(srv.app[LRS])
            run = await ended_session(srv)
            await asyncio.wait_for(got_request.wait(), SETTLED)
            info, _trainer = await srv.live_session("Meanwhile")
            ada = await srv.client(info["join_url"], "Ada")
            t0 = time.monotonic()
            for i in range(5):
                await ada.request("chat.send", text=f"message {i}")
            await statements(srv, run["info"]["id"])
            assert time.monotonic() - t0 < 5
            assert srv.app[LRS].pushed == 0
            stopping = time.monotonic()
        assert time.monotonic() - stopping < 10, "the stop waited for the LRS"
    finally:
        for writer in held:
            writer.close()
        black_hole.close()
        await black_hole.wait_closed()
