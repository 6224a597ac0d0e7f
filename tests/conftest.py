"""Fixtures that start a real Classcast server on a free loopback port."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from classroom.app import build_app
from classroom.client import ClassroomClient
from classroom.config import Settings

ADMIN_KEY = "test-admin-key"


_PORTS = random.SystemRandom()  # not the seeded `random`: concurrent runs must not pick alike


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port free now, for a server to listen on soon after. Picked below the kernel's
    ephemeral range: every outgoing connection on the machine (clients, Redis, other test runs)
    takes its local port from that range, so a port picked there (as binding port 0 does) can be
    taken before the server binds it ("address already in use")."""
    low = _ephemeral_low()
    for _ in range(100):
        port = _PORTS.randrange(10_000, low) if low > 10_100 else 0
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    base_url: str
    app: web.Application
    http: aiohttp.ClientSession

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_KEY}"}

    async def create_session(self, title: str = "Test session") -> dict[str, Any]:
        async with self.http.post(
            f"{self.base_url}/api/sessions", json={"title": title}, headers=self.admin
        ) as r:
            assert r.status == 201, await r.text()
            return await r.json()

    async def client(self, link: str, name: str | None = None, **kw: Any) -> ClassroomClient:
        c = ClassroomClient(link, name, **kw)
        self._clients.append(c)
        await c.connect()
        return c

    async def live_session(self, title: str = "Test session") -> tuple[dict[str, Any], ClassroomClient]:
        """A session already started by a connected trainer."""
        info = await self.create_session(title)
        trainer = await self.client(info["trainer_url"], "Tess Trainer")
        await trainer.request("session.start")
        return info, trainer

    def __post_init__(self) -> None:
        self._clients: list[ClassroomClient] = []


async def barrier(trainer: ClassroomClient, *clients: ClassroomClient) -> None:
    """Return once every client has folded everything sent before this call: the trainer marks
    a chapter, and each client's stream is ordered, so seeing the mark means seeing all before."""
    ack = await trainer.request("session.mark", title="barrier")
    await asyncio.gather(
        *(
            c.wait_for("chapter.marked", lambda e: e["seq"] == ack["seq"], timeout=20)
            for c in (trainer, *clients)
        )
    )


@asynccontextmanager
async def running_server(data_dir: Path, **overrides: Any) -> AsyncIterator[Server]:
    """A real server in this process, listening on a free loopback port (or `port=`)."""
    port = overrides.pop("port", None) or free_port()
    settings = Settings(port=port, data_dir=data_dir, admin_key=ADMIN_KEY, idle_timeout=3600)
    for key, value in overrides.items():
        setattr(settings, key, value)
    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession() as http:
        srv = Server(f"http://127.0.0.1:{port}", app, http)
        try:
            yield srv
        finally:
            await asyncio.gather(*(c.close() for c in srv._clients), return_exceptions=True)
            await runner.cleanup()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    async with running_server(tmp_path / "data") as srv:
        yield srv
