"""This process as a node of the cluster: its beat (heartbeat and leases, one round trip), Redis's
health as it sees it, and its inbox: requests for the sessions it owns, replies to its own requests
(RPC), and messages to other nodes sent in order."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .. import metrics
from ..auth import new_id
from ..tasks import cancel, next_tick
from .codec import as_text, packb, unpackb
from .connection import unavailable
from .fencing import BEAT_S, BEAT_SCRIPT, LEASE_MS, LEASE_SCRIPT, PUBLISH_SCRIPT, RELEASE_SCRIPT
from .keys import k_alive, k_inbox, k_lease

log = logging.getLogger(__name__)

ALIVE_MS = 3000  # a node's heartbeat key lives this long
# A blocking read (the inbox, a followed stream) waits this long for news before asking again. On
# its own connections, allowed to wait that long: the beat tells whether Redis answers.
BLOCK_S = 20
RPC_TIMEOUT = 5.0  # seconds a forwarded command may wait for its owner's reply

Handler = Callable[[dict[str, Any]], None]
# Told a session's lease holder (None: free) at each beat of its node.
Watcher = Callable[[str | None], None]


class Keeper(Protocol):
    """A lease this node keeps (`Owned`): told at each beat who holds it, or that Redis failed."""

    def kept(self, holder: str | None) -> None: ...

    def missed(self) -> None: ...


class Node:
    """This process in the cluster: its id, a heartbeat key, and its inbox (requests for the
    sessions it owns, replies to its own requests), read by one loop; messages to other nodes
    go out in order through one sender."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.id = new_id(8)
        self.r = client
        self.blocking = _blocking_client(client)
        self.healthy = False
        self.down = False  # Redis failed to answer, and has not answered since
        self.on_request: Handler = lambda msg: None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._waiting_on: dict[int, str] = {}  # request id -> the node asked
        self._out: list[tuple[str, dict[str, Any]]] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Leases renewed and leases read at each beat, by session id (`Owned`, `Replica`).
        self.keeping: dict[str, Keeper] = {}
        self.watching: dict[str, Watcher] = {}
        self.beats = 0
        self._reconnect: asyncio.Task[None] | None = None
        self.beat = client.register_script(BEAT_SCRIPT)
        self.lease = client.register_script(LEASE_SCRIPT)
        self.release = client.register_script(RELEASE_SCRIPT)
        self.publish = client.register_script(PUBLISH_SCRIPT)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(f()) for f in (self._beat, self._inbox, self._sender)]

    async def close(self) -> None:
        for task in self._tasks:
            await cancel(task)
        with contextlib.suppress(RedisError):
            await self.r.delete(k_alive(self.id))
        await self.r.aclose()
        await self.blocking.aclose()

    async def ready(self) -> bool:
        """Redis answers (for a readiness probe)."""
        try:
            return bool(await asyncio.wait_for(self.r.ping(), 1.0))
        except (RedisError, TimeoutError, OSError):
            return False

    def failed(self, exc: BaseException) -> None:
        metrics.REDIS_ERRORS.inc()
        if self.healthy:
            log.warning("Redis unreachable (%s); commands are refused until it answers", exc)
        self.healthy = False
        self.down = True

    async def _beat(self) -> None:
        """Every BEAT_S, one round trip: this node's heartbeat, the leases of the sessions it owns
        renewed, those of the sessions it follows read (what used to be a heartbeat task, a renewal
        task per owned session and a lease check per followed one, each its own round trip and
        timer). On the loop's shared grid (`next_tick`), with the node's other periodic work."""
        first = True
        missed = False  # the last beat found Redis away
        while True:
            if not first:  # the first at once: other nodes count this one's sockets once it is alive
                await next_tick(BEAT_S)
            first = False
            kept = list(self.keeping)
            read = [s for s in self.watching if s not in self.keeping]
            try:
                began = time.perf_counter()
                holders = await self.beat(
                    keys=[k_alive(self.id), *(k_lease(s) for s in (*kept, *read))],
                    args=[self.id, ALIVE_MS, LEASE_MS, len(kept)],
                )
                metrics.REDIS_SECONDS.observe(time.perf_counter() - began)  # a round trip, sampled
            except Exception as exc:  # RedisError, or anything else: the beat must go on
                if not isinstance(exc, RedisError):
                    log.exception("the node's beat failed")
                self.failed(exc)
                missed = True
                for session_id in kept:
                    keeper = self.keeping.get(session_id)
                    if keeper is not None:
                        keeper.missed()
                continue
            if not self.healthy:
                log.info("Redis reachable; node %s serving", self.id)
            if missed:
                # Redis was away: blocking reads on connections that died silently (no reset)
                # would wait out their timeout; they start again on new ones now.
                missed = False
                self._reconnect = asyncio.get_running_loop().create_task(
                    self.blocking.connection_pool.disconnect()
                )
                self._reconnect.add_done_callback(lambda t: t.cancelled() or t.exception())
            self.healthy = True
            self.down = False
            self.beats += 1
            for i, (session_id, raw) in enumerate(zip((*kept, *read), holders, strict=True)):
                holder = as_text(raw) or None
                keeper = self.keeping.get(session_id) if i < len(kept) else None
                watcher = self.watching.get(session_id)
                try:
                    if keeper is not None:
                        keeper.kept(holder)
                    if watcher is not None:
                        watcher(holder)
                except Exception:
                    log.exception("session %s: handling its lease failed", session_id)

    async def alive(self, nodes: list[str]) -> dict[str, bool]:
        async with self.r.pipeline(transaction=False) as p:
            for n in nodes:
                p.exists(k_alive(n))
            found = await p.execute()
        return dict(zip(nodes, (bool(f) for f in found), strict=True))

    # -- messages -------------------------------------------------------------------------------

    def send(self, node: str, msg: dict[str, Any]) -> None:
        """Queue a message to `node` (sent in order with everything queued before)."""
        self._out.append((node, msg))
        self._wake.set()

    async def request(self, node: str, msg: dict[str, Any], timeout: float = RPC_TIMEOUT) -> dict[str, Any]:
        """Send a request and wait for its reply; `temporarily_unavailable` when Redis or the
        node does not answer in time."""
        if not self.healthy:
            raise unavailable()
        rid = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        self._waiting_on[rid] = node
        self.send(node, {**msg, "k": "req", "id": rid, "from": self.id})
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise unavailable("the session's node did not answer") from None
        finally:
            self._waiting.pop(rid, None)
            self._waiting_on.pop(rid, None)

    def abandon(self, node: str) -> None:
        """`node` lost a lease (it died, most likely): its pending requests fail at once rather
        than at their timeout, so clients retry on the new owner sooner."""
        for rid, asked in list(self._waiting_on.items()):
            future = self._waiting.get(rid)
            if asked == node and future is not None and not future.done():
                future.set_exception(unavailable("the session is moving to another node"))

    def reply(self, msg: dict[str, Any], body: dict[str, Any]) -> None:
        if msg.get("id"):
            self.send(msg["from"], {"k": "rep", "id": msg["id"], **body})

    async def _sender(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._out:
                batch, self._out = self._out, []
                try:
                    async with self.r.pipeline(transaction=False) as p:
                        for node, msg in batch:
                            p.rpush(k_inbox(node), packb(msg))
                            p.pexpire(k_inbox(node), 60_000)
                        await p.execute()
                except RedisError as exc:
                    self.failed(exc)
                    # Requests fail now (nothing was acknowledged, and they must not run later);
                    # presence is kept, in order, and sent again.
                    kept = []
                    for node, msg in batch:
                        future = self._waiting.get(msg.get("id", 0)) if msg.get("k") == "req" else None
                        if future is not None:
                            if not future.done():
                                future.set_exception(unavailable())
                        elif msg.get("k") == "req":
                            kept.append((node, msg))
                    self._out = kept + self._out
                    await asyncio.sleep(0.25)

    async def _inbox(self) -> None:
        key = k_inbox(self.id)
        while True:
            try:
                item = await self.blocking.blpop([key], timeout=BLOCK_S)
                if item is None:
                    continue
                raws = [item[1], *(await self.r.lpop(key, 1000) or [])]
            except RedisError as exc:
                self.failed(exc)
                await asyncio.sleep(0.25)
                continue
            for raw in raws:
                try:
                    msg = unpackb(raw)
                    if msg.get("k") == "rep":
                        future = self._waiting.get(msg["id"])
                        if future is not None and not future.done():
                            future.set_result(msg)
                    else:
                        self.on_request(msg)
                except Exception:
                    log.exception("a cluster message could not be handled")


def _blocking_client(client: aioredis.Redis) -> aioredis.Redis:
    """A client to the same Redis for blocking reads: its own connections, whose reads may wait
    BLOCK_S and more (the shared client's give up after a few seconds, so that commands fail fast
    when Redis is away)."""
    pool = client.connection_pool
    kwargs = {k: v for k, v in pool.connection_kwargs.items() if not k.startswith(("maint_", "orig_"))}
    kwargs["socket_timeout"] = BLOCK_S + 10
    return aioredis.Redis(connection_pool=type(pool)(connection_class=pool.connection_class, **kwargs))
