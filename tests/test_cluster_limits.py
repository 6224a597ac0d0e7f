"""The edge's per-address budgets hold across the nodes of a cluster (issue 11): one address
connecting to two nodes alternately gets one budget of open websockets and of new identities,
not one per node. Loopback is made a limited address here (CLASSCAST_UNLIMITED_IPS="")."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest

from classroom.client import ClassroomClient, ClassroomError
from classroom.core.limits import Rate

from .cluster import Cluster, RedisServer, cluster_of
from .test_cluster import redis_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(180)

OPEN = 40  # CLASSCAST_MAX_CONNECTIONS_PER_IP on every node
NEW = 30  # new identities per address and session: signaling.guard.JOINS_PER_ADDRESS
assert Rate(NEW, 60_000).burst == NEW


async def websocket(
    http: aiohttp.ClientSession, base: str
) -> tuple[aiohttp.ClientWebSocketResponse, str | None]:
    """A raw engine.io websocket: the socket and why it was refused (None: accepted)."""
    ws = await http.ws_connect(f"{base.replace('http', 'ws', 1)}/socket.io/?EIO=4&transport=websocket")
    msg = await asyncio.wait_for(ws.receive(), 10)
    if msg.type == aiohttp.WSMsgType.TEXT and msg.data.startswith("0"):
        return ws, None
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
    assert msg.data == 1013, msg
    return ws, msg.extra


async def open_count(cl: Cluster) -> int:
    return sum(int(v) for v in await cl.redis.hvals("cc:open:127.0.0.1"))


ENV = {
    "CLASSCAST_UNLIMITED_IPS": "",
    "CLASSCAST_MAX_CONNECTIONS_PER_IP": str(OPEN),
    "CLASSCAST_JOIN_TIMEOUT": "120",
}


async def test_one_address_gets_one_budget_of_websockets_across_two_nodes(
    tmp_path: Path,
    redis_server: RedisServer | None,  # noqa: F811
):
    async with (
        cluster_of(tmp_path, 2, redis_server and redis_server.url, env=ENV) as cl,
        aiohttp.ClientSession() as http,
    ):
        # Open websockets: alternately on each node, OPEN in all, then each node refuses.
        accepted = []
        for i in range(OPEN):
            ws, refused = await websocket(http, cl.nodes[i % 2].base)
            assert refused is None, (i, refused)
            accepted.append(ws)
        for node in (0, 1):
            _, refused = await websocket(http, cl.nodes[node].base)
            assert refused == f"too many connections from your address (at most {OPEN})", (node, refused)
        # Closing one on a node makes room on the other.
        await accepted.pop(1).close()
        deadline = time.monotonic() + 10
        while True:
            ws, refused = await websocket(http, cl.nodes[0].base)
            if refused is None:
                accepted.append(ws)
                break
            assert time.monotonic() < deadline, "a closed websocket was never taken off the count"
            await asyncio.sleep(0.1)
        for ws in accepted:
            await ws.close()
        deadline = time.monotonic() + 10
        while await open_count(cl):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)


async def test_one_address_gets_one_budget_of_new_identities_across_two_nodes(
    tmp_path: Path,
    redis_server: RedisServer | None,  # noqa: F811
):
    async with cluster_of(tmp_path, 2, redis_server and redis_server.url, env=ENV) as cl:
        # New identities: NEW + 4 learners from one address, alternately on each node, at once.
        info = await cl.create_session()
        learners = [ClassroomClient(cl.on(info["join_url"], i % 2), f"L{i}") for i in range(NEW + 4)]
        cl.clients.extend(learners)
        results = await asyncio.gather(*(c.connect() for c in learners), return_exceptions=True)
        joined = [r for r in results if isinstance(r, dict)]
        refused = [r for r in results if isinstance(r, ClassroomError)]
        assert len(joined) + len(refused) == len(learners), results
        # At most NEW at once (and a token or two refilled while they join), not NEW per node.
        assert NEW <= len(joined) <= NEW + 2, len(joined)
        assert {(e.code, e.message) for e in refused} == {
            ("rate_limited", "too many new participants from this link or address; try again shortly")
        }


async def test_without_redis_a_node_keeps_its_local_limits(
    tmp_path: Path,
    redis_server: RedisServer | None,  # noqa: F811
):
    if redis_server is None:
        pytest.skip("kills the private redis-server")
    async with (
        cluster_of(tmp_path, 2, redis_server.url, env=ENV) as cl,
        aiohttp.ClientSession() as http,
    ):
        ws, refused = await websocket(http, cl.nodes[0].base)
        assert refused is None
        await redis_server.kill()
        deadline = time.monotonic() + 15
        while "Redis unreachable" not in cl.log(0):
            assert time.monotonic() < deadline, "node 0 never noticed Redis was away"
            await asyncio.sleep(0.1)
        # Not refused for want of Redis, and not kept waiting: the local count decides.
        accepted = [ws]
        began = time.monotonic()
        for _ in range(OPEN - 1):
            ws, refused = await websocket(http, cl.nodes[0].base)
            assert refused is None, refused
            accepted.append(ws)
        assert time.monotonic() - began < 10
        _, refused = await websocket(http, cl.nodes[0].base)
        assert refused == f"too many connections from your address (at most {OPEN})"
        for ws in accepted:
            await ws.close()
