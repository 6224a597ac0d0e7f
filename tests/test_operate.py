"""Operating a node (issue 11): `/metrics` for the admin key, `/readyz` with registered checks,
draining on SIGTERM (readyz 503, sockets told to reconnect elsewhere, nothing acknowledged lost,
a bounded exit), and `--workers`."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from classroom.client import ClassroomClient, ClassroomError
from classroom.operate import NODE
from recorder.replay import Recording

from .conftest import Server, free_port
from .served import Served, run_classroom


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert found, f"{name} not in the exposition"
    return float(found.group(1))


async def test_metrics_need_the_admin_key_and_count_what_happens(server: Server) -> None:
    url = f"{server.base_url}/metrics"
    async with server.http.get(url) as r:
        assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"
    async with server.http.get(url, headers={"Authorization": "Bearer wrong"}) as r:
        assert r.status == 403
    info, trainer = await server.live_session()
    learner = await server.client(info["join_url"], "Lea")
    async with server.http.get(url, headers=server.admin) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        before = await r.text()
    ack = await trainer.request("chat.send", text="counted")
    await learner.wait_for("chat.message", lambda e: e["seq"] == ack["seq"], timeout=10)
    async with server.http.get(url, headers=server.admin) as r:
        after = await r.text()
    assert _metric(after, "classcast_connections") == 2
    assert _metric(after, "classcast_sessions_owned") == 1
    assert _metric(after, 'classcast_commands_total{result="ok"}') > _metric(
        before, 'classcast_commands_total{result="ok"}'
    )
    # The chat message reached the trainer and the learner: two more deliveries at least.
    assert _metric(after, "classcast_deliveries_total") >= _metric(before, "classcast_deliveries_total") + 2
    assert _metric(after, "classcast_fanout_seconds_count") > 0
    assert _metric(after, "classcast_recorder_flush_seconds_count") > 0
    for name in ("classcast_recorder_backlog_bytes", "classcast_redis_errors_total", "classcast_draining"):
        _metric(after, name)
    assert "classcast_redis_seconds_bucket" in after


async def test_readyz_says_ready_and_names_a_failing_check(server: Server) -> None:
    url = f"{server.base_url}/readyz"
    async with server.http.get(url) as r:
        assert r.status == 200 and await r.json() == {"status": "ready"}
    node = server.app[NODE]

    async def broken() -> None:
        raise ConnectionError("redis is away")

    async def fine() -> bool:
        return True

    node.ready_checks += [("redis", broken), ("disk", fine)]
    async with server.http.get(url) as r:
        body = await r.json()
        assert r.status == 503, body
        assert body["status"] == "unavailable" and set(body["problems"]) == {"redis"}
        assert "redis is away" in body["problems"]["redis"]
    node.ready_checks.clear()
    async with server.http.get(f"{server.base_url}/healthz") as r:
        assert r.status == 200  # liveness is unchanged


@contextlib.asynccontextmanager
async def _served(tmp_path: Path, *args: str) -> AsyncIterator[Served]:
    # Generous: at a load of 20 and more, importing the server alone can take 20 s.
    served = Served(tmp_path / "data", *args, env={"CLASSCAST_ADMIN_KEY": "k"}, ready_timeout=90)
    await served.start()
    try:
        yield served
    finally:
        await served.kill()


@pytest.mark.timeout(300)
async def test_sigterm_drains_readyz_503_clients_told_nothing_acknowledged_lost(tmp_path: Path) -> None:
    notice, grace = 5.0, 5.0
    async with (
        _served(tmp_path, "--drain-notice", str(notice), "--drain-grace", str(grace)) as served,
        aiohttp.ClientSession() as http,
    ):
        trainer = ClassroomClient(served.link, "Tess", reconnect=False)
        await trainer.connect()
        await trainer.request("session.start")
        async with http.get(
            f"{served.base}/api/sessions/{trainer.session_id}", headers={"Authorization": "Bearer k"}
        ) as r:
            join_url = (await r.json())["join_url"]
        learners = [ClassroomClient(join_url, f"L{i}", reconnect=False) for i in range(3)]
        told: list[dict[str, Any]] = []
        everyone = [trainer, *learners]
        try:
            for c in learners:
                await c.connect()
            for c in everyone:
                c.sio.on("closing", told.append)
            acked: list[int] = []
            sent = asyncio.Event()

            async def chatter(c: ClassroomClient) -> None:
                """Chat until the connection goes: every ok ack counts."""
                i = 0
                while c.sio.connected:
                    ack = await c.send("chat.send", {"text": f"{c.name} {i}"})
                    if ack.get("ok"):
                        acked.append(ack["seq"])
                        sent.set()
                    i += 1
                    await asyncio.sleep(0.05)

            senders = [asyncio.create_task(chatter(c)) for c in learners]
            await asyncio.wait_for(sent.wait(), 10)
            began = time.monotonic()
            assert served.proc is not None
            served.proc.send_signal(signal.SIGTERM)
            # During the notice, /readyz says 503 and why, while the node still serves.
            async with asyncio.timeout(notice):
                while True:
                    async with http.get(f"{served.base}/readyz") as r:
                        if r.status == 503:
                            body = await r.json()
                            break
                    await asyncio.sleep(0.05)
            assert body["status"] == "unavailable" and "draining" in body["problems"], body
            # A new connection is refused with `draining` (a client tries again, reaching another node).
            with pytest.raises(ClassroomError) as refused:
                await ClassroomClient(join_url, "Late", reconnect=False).connect()
            assert refused.value.code == "draining"
            code = await asyncio.wait_for(served.proc.wait(), notice + grace + 15)
            took = time.monotonic() - began
            await asyncio.wait_for(asyncio.gather(*senders, return_exceptions=True), 20)
        finally:
            for c in everyone:
                await c.close()
    assert code == 0
    assert took < notice + grace + 5, took
    # Every socket was told to reconnect elsewhere.
    assert [t["code"] for t in told] == ["draining"] * len(everyone), told
    # Nothing acknowledged is lost: every acknowledged seq is in the recording, without a gap.
    events = Recording(tmp_path / "data" / "recordings", trainer.session_id).window(0, 2**62, "trainer")
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert acked and set(acked) <= {e["seq"] for e in events if e["type"] == "chat.message"}


async def test_workers_without_redis_is_a_clear_error(tmp_path: Path) -> None:
    code, _out, err = await run_classroom(
        "serve", "--data-dir", str(tmp_path / "d"), "--workers", "2", drop_env=["REDIS_URL"]
    )
    assert code == 2, err
    assert "--workers" in err and "--redis-url" in err and "Traceback" not in err


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
@pytest.mark.timeout(300)
async def test_two_workers_share_the_port_and_stop_together(tmp_path: Path) -> None:
    redis_port = free_port()
    redis = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    served = Served(
        tmp_path / "data",
        *("--workers", "2", "--redis-url", f"redis://127.0.0.1:{redis_port}/0"),
        env={"CLASSCAST_ADMIN_KEY": "k"},
        ready_timeout=90,
    )
    try:
        await served.start()
        pids = set()
        # A new connection per request: the kernel spreads them over both workers (once the
        # second is listening too: on a busy machine the first one's ready line comes before it).
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            while len(pids) < 2 and time.monotonic() < deadline:
                async with http.get(f"{served.base}/metrics", headers={"Authorization": "Bearer k"}) as r:
                    assert r.status == 200
                    pids.add(_metric(await r.text(), "classcast_process_id"))
                await asyncio.sleep(0.01)
        code, took = await served.stop()
        assert code == 0, served.stderr.decode()[-2000:]
        assert took < 15
        assert len(pids) == 2, pids
    finally:
        await served.kill()
        redis.terminate()
        redis.wait(10)
