"""With few file descriptors, many silent connections from one address do not take the server
down: connections per address are capped, new ones are refused before descriptors run out, and
/healthz keeps answering. The server runs in a subprocess with a lowered RLIMIT_NOFILE."""

from __future__ import annotations

import asyncio
import contextlib
import resource
from pathlib import Path

import aiohttp
import pytest

from .served import Served

FDS = 1024
SILENT = 1100
UPGRADE = (
    "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _lower_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FDS, FDS))  # soft = hard: nothing to raise


async def _healthz(base: str, timeout: float = 5) -> int | None:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{base}/healthz", timeout=aiohttp.ClientTimeout(total=timeout)) as r,
        ):
            return r.status
    except (aiohttp.ClientError, TimeoutError):
        return None


async def _silent(port: int) -> asyncio.StreamWriter | None:
    """Open a websocket and say nothing; None if it was refused or got no answer."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 3)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(UPGRADE.encode())
        status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        if b" 101 " not in status.split(b"\r\n", 1)[0]:
            raise ConnectionError
        frame = await asyncio.wait_for(reader.read(2), 3)  # engine.io OPEN, or a close frame
        if not frame or frame[0] & 0x0F == 0x8:
            raise ConnectionError
    except (OSError, TimeoutError, ConnectionError, asyncio.IncompleteReadError):
        writer.close()
        return None
    return writer


@pytest.mark.parametrize("per_address", [200, 0])
async def test_many_silent_connections_leave_healthz_answering(tmp_path: Path, per_address: int):
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < 2 * SILENT + 100:
        pytest.skip("the test process needs descriptors for its own connections")
    served = Served(
        tmp_path,
        "--log-level",
        "WARNING",
        env={
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
            "CLASSCAST_UNLIMITED_IPS": "",  # loopback is an address like any other here
            "CLASSCAST_MAX_CONNECTIONS_PER_IP": str(per_address),  # 0: no cap, only the descriptor reserve
            "CLASSCAST_JOIN_TIMEOUT": "300",  # none of them is closed for not joining while the test runs
        },
        preexec_fn=_lower_nofile,
    )
    await served.start()
    port, base = served.port, served.base
    writers: list[asyncio.StreamWriter] = []
    try:
        for start in range(0, SILENT, 100):
            got = await asyncio.gather(*(_silent(port) for _ in range(start, min(SILENT, start + 100))))
            writers.extend(w for w in got if w is not None)
        assert await _healthz(base) == 200
        if per_address:
            assert len(writers) == per_address
        else:
            assert FDS // 2 < len(writers) <= FDS - 64
        # Those refused were let go at once: once the silent ones leave, all is as before.
        for w in writers:
            w.close()
        writers.clear()
        assert await _healthz(base) == 200
    finally:
        for w in writers:
            w.close()
        with contextlib.suppress(TimeoutError):  # then killed, and what it wrote is lost
            await served.stop(timeout=30)
    err = served.stderr
    assert b"Traceback" not in err, err.decode()[-2000:]
