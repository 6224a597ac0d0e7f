"""Cluster mode under test: a private `redis-server` (append-only, fsync always, on a free port,
restartable) or the one `REDIS_URL` names, and several `python -m classroom serve --redis-url`
nodes on loopback sharing one data directory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from classroom.client import ClassroomClient

from .conftest import ADMIN_KEY, free_port
from .served import Served


class RedisServer:
    """A private redis-server whose data survives a restart (AOF, appendfsync always)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "redis-server",
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)),
            *("--appendonly", "yes", "--appendfsync", "always", "--save", ""),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        ready = asyncio.get_running_loop().create_future()
        out = self.proc.stdout

        async def drain() -> None:
            seen = b""
            while line := await out.readline():
                seen += line
                if b"Ready to accept connections" in line and not ready.done():
                    ready.set_result(None)
            if not ready.done():
                ready.set_exception(AssertionError(f"redis-server exited: {seen.decode()[-2000:]}"))

        self._drain = asyncio.get_running_loop().create_task(drain())
        await asyncio.wait_for(ready, 30)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
        if self._drain is not None:
            await self._drain


class Cluster:
    def __init__(self, redis_url: str, data_dir: Path, logs: Path, http: aiohttp.ClientSession) -> None:
        self.redis_url = redis_url
        self.data_dir = data_dir
        self.logs = logs
        self.http = http
        self.nodes: list[Served] = []
        self.clients: list[ClassroomClient] = []
        self.redis = aioredis.from_url(redis_url)

    async def start(self, n: int, *extra: str, env: dict[str, str] | None = None) -> None:
        # One after the other: the first creates the keys in the shared data directory.
        for i in range(n):
            node = Served(
                self.data_dir,
                *("--redis-url", self.redis_url, "--admin-key", ADMIN_KEY, "--idle-timeout", "3600"),
                *extra,
                env=env,
                stderr=self.logs / f"node{i}.log",
            )
            self.nodes.append(await node.start())

    def log(self, i: int) -> str:
        return (self.logs / f"node{i}.log").read_text()

    async def create_session(self, node: int = 0, title: str = "Cluster") -> dict[str, Any]:
        async with self.http.post(
            f"{self.nodes[node].base}/api/sessions",
            json={"title": title},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        ) as r:
            assert r.status == 201, await r.text()
            return await r.json()

    def on(self, link: str, node: int) -> str:
        """The same link, served by another node."""
        base = link.split("/s/")[0]
        return link.replace(base, self.nodes[node].base, 1)

    async def client(self, link: str, node: int, name: str | None = None) -> ClassroomClient:
        c = ClassroomClient(self.on(link, node), name)
        self.clients.append(c)
        await c.connect()
        return c

    async def move(self, c: ClassroomClient, node: int) -> dict[str, Any]:
        """Leave the node a client is on (or was, if it died) and resume on `node`."""
        await c.sio.disconnect()
        c.base_url = self.nodes[node].base
        joins = c.joins
        # The client's own reconnection path: it joins again with its last seq and epoch.
        await c.sio.connect(c.base_url, auth=c._auth, transports=["websocket"], wait_timeout=20)
        await c.wait_until(lambda: c.joins > joins, 20)
        assert c.last_join is not None
        return c.last_join

    async def stream_seqs(self, session_id: str) -> list[int]:
        entries = await self.redis.xrange(f"cc:events:{session_id}")
        return [int(i.split(b"-")[0]) for i, _ in entries]

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)
        for node in self.nodes:
            await node.kill()
        await self.redis.aclose()


@contextlib.asynccontextmanager
async def cluster_of(
    tmp_path: Path, nodes: int, redis_url: str | None = None, *extra: str, env: dict[str, str] | None = None
) -> AsyncIterator[Cluster]:
    """`nodes` servers on one Redis; `extra` arguments go to every node's `serve`, `env` over
    this process's environment."""
    (tmp_path / "logs").mkdir(exist_ok=True)
    async with aiohttp.ClientSession() as http:
        cluster = Cluster(redis_url or os.environ["REDIS_URL"], tmp_path / "data", tmp_path / "logs", http)
        try:
            await cluster.start(nodes, *extra, env=env)
            yield cluster
        finally:
            await cluster.close()


def gapless(seqs: list[int]) -> bool:
    return seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else True
