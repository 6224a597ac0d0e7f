"""`ClusterSessions`: the session registry in cluster mode, which sessions this node follows
and owns, taking leases over, answering other nodes' requests, and reaping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import RedisError

from ..auth import new_id
from ..core import CommandError
from ..crowd import CROWD_LEARNERS
from ..ports import EventLog, Fanout, StorageError
from ..store import SessionInfo
from ..tasks import cancel
from .codec import as_text, pack_state
from .connection import connect, unavailable
from .fencing import LEASE_MS
from .keys import k_lease
from .node import Node
from .owner import Owned
from .replica import Replica
from .store import RedisStore

log = logging.getLogger(__name__)

EVICT_AFTER = 60.0  # seconds a followed session without local sockets stays followed


class ClusterSessions:
    """The session registry in cluster mode (the hub and the HTTP API use it as they use
    `classroom.sessions.Sessions`): `live` holds the sessions this node follows (`Replica`),
    `owned` those whose core runs here."""

    def __init__(
        self,
        url: str,
        fanout: Fanout,
        recorder: EventLog,
        idle_timeout: float,
        crowd: int = CROWD_LEARNERS,
    ) -> None:
        client = connect(url)
        self.node = Node(client)
        self.node.on_request = self._on_request
        self.store = RedisStore(client)
        self.fanout = fanout
        self.recorder = recorder
        self.idle_timeout = idle_timeout
        self.crowd = crowd  # learners online above which a session is large (`crowd.py`)
        self.live: dict[str, Replica] = {}
        self.owned: dict[str, Owned] = {}
        self._loading: dict[str, asyncio.Future[Replica | None]] = {}
        self._taking: dict[str, asyncio.Future[None]] = {}
        self._answering: set[asyncio.Task[None]] = set()  # forwarded commands being run
        self._reaper: asyncio.Task[None] | None = None
        self.draining = False  # set by release_all: this node takes no session any more
        # Called with a session's id once it has ended, by the node that owns it.
        self.on_ended: list[Callable[[str], None]] = []
        # Awaited by the owner after each command it acknowledged: (its `LiveSession`, the command's
        # name, its events); the media layer's floor rule (`signaling/media_cluster.py`).
        self.after_command: list[Callable[[Any, str, list[Any]], Awaitable[None]]] = []

    def start(self) -> None:
        self.node.start()
        self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def ready(self) -> bool:
        """Whether this node can take traffic: Redis answers."""
        return await self.node.ready()

    async def release_all(self) -> int:
        """Hand every owned session over (for draining): what is decided is published, the
        leases are freed, and the nodes following them take over within `WATCH_S`. Returns the
        number of events that could not be published (Redis away): 0 when nothing was lost."""
        self.draining = True
        lost = await asyncio.gather(*(owned.release() for owned in list(self.owned.values())))
        return sum(lost)

    async def create(self, title: str, recording: bool = True, anonymize: bool = False) -> SessionInfo:
        return await self.store.create(new_id(), title, recording, anonymize)

    async def get(self, session_id: str) -> Replica | None:
        replica = self.live.get(session_id)
        if replica is not None:
            return replica
        pending = self._loading.get(session_id)
        if pending is not None:
            return await pending
        future: asyncio.Future[Replica | None] = asyncio.get_running_loop().create_future()
        self._loading[session_id] = future
        try:
            info = await self.store.get(session_id)
            replica = None
            if info is not None:
                replica = Replica(self, info)
                try:
                    await replica.load()
                except RedisError:
                    raise unavailable() from None
                self.live[session_id] = replica
                replica.start()
            future.set_result(replica)
            return replica
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._loading[session_id]

    async def owner_of(self, session_id: str, acquire: bool = True) -> str | None:
        """The node owning the session, taking the lease when nobody holds it (and `acquire`)."""
        owner = as_text(await self.node.r.get(k_lease(session_id)))
        if owner is None and acquire and self.node.healthy and not self.draining:
            await self._take(session_id)
            owner = as_text(await self.node.r.get(k_lease(session_id)))
        if owner == self.node.id and session_id not in self.owned and not self.draining:
            await self._take(session_id)  # ours after a Redis outage, or half taken
        return owner

    async def _take(self, session_id: str) -> None:
        pending = self._taking.get(session_id)
        if pending is not None:
            return await pending
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._taking[session_id] = future
        try:
            got = await self.node.lease(keys=[k_lease(session_id)], args=[self.node.id, LEASE_MS])
            if got == 1 and session_id not in self.owned:
                info = await self.store.get(session_id)
                try:
                    if info is None:  # deleted meanwhile: nothing to run
                        await self.node.release(keys=[k_lease(session_id)], args=[self.node.id])
                        return
                    await Owned.take(self, info)
                except BaseException:
                    log.exception("session %s: taking it over failed", session_id)
                    with contextlib.suppress(RedisError):
                        await self.node.release(keys=[k_lease(session_id)], args=[self.node.id])
                    if self.recorder.is_open(session_id):
                        await self.recorder.close_session(session_id)
        finally:
            future.set_result(None)
            del self._taking[session_id]

    def _owned_for(self, msg: dict[str, Any], again: Callable[[], None]) -> Owned | None:
        """The session a request from another node is about, if this node owns it and can use
        it. Otherwise None, having answered `not_owner` (the asker then looks the owner up
        again), or, while this node is taking the session over, having deferred `again` until
        it is done: requests deferred so run in the order they arrived."""
        session_id = msg.get("s", "")
        owned = self.owned.get(session_id)
        taking = self._taking.get(session_id)
        if owned is None and taking is not None:
            taking.add_done_callback(lambda _: again())
            return None
        if owned is None or not owned.usable:
            self.node.reply(msg, {"err": "not_owner"})
            return None
        return owned

    def answer(
        self, msg: dict[str, Any], run: Callable[[Owned], Awaitable[dict[str, Any]]], what: str
    ) -> None:
        """The owner's side of a command forwarded by another node (`op` "cmd" here, "media" in
        `signaling/media_cluster.py`): `run` on the session, started now (so commands are
        decided in the order they arrived; during a takeover, once it is done, still in that
        order), its ack sent back; a CommandError is its ack, any other failure a logged
        `internal_error` (`what` names it in the log). Replies `not_owner` when this node does not
        own the session, or cannot use it now."""
        owned = self._owned_for(msg, lambda: self.answer(msg, run, what))
        if owned is None:
            return
        task = asyncio.get_running_loop().create_task(self._answer(owned, msg, run, what))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(
        self, owned: Owned, msg: dict[str, Any], run: Callable[[Owned], Awaitable[dict[str, Any]]], what: str
    ) -> None:
        try:
            ack = await run(owned)
        except CommandError as exc:
            ack = exc.as_ack()
        except Exception:
            log.exception("%s failed", what)
            ack = CommandError("internal_error", "the server failed; nothing changed").as_ack()
        self.node.reply(msg, {"ack": ack})

    def _on_request(self, msg: dict[str, Any]) -> None:
        op, args = msg.get("op"), msg.get("a") or []
        if op == "cmd":
            pid, name, payload = args
            self.answer(
                msg, lambda owned: owned.run(pid, name, payload), f"forwarded command {str(name)[:60]!r}"
            )
            return
        owned = self._owned_for(msg, lambda: self._on_request(msg))
        if owned is None:
            return
        if op == "attach":
            owned.attach(msg["from"], *args)
        elif op == "detach":
            owned.detach(msg["from"], *args)
        elif op == "state":
            self.node.reply(msg, {"state": pack_state(owned.published_state), "epoch": owned.epoch})

    async def forget(self, session_id: str) -> None:
        """Drop a session for good: followed, owned, its log, its metadata and stream."""
        replica = self.live.pop(session_id, None)
        if replica is not None:
            await replica.close()
        owned = self.owned.get(session_id)
        if owned is not None:
            await owned.release()
        if self.recorder.is_open(session_id):
            await self.recorder.close_session(session_id)
        await self.store.delete(session_id)

    async def _reap(self) -> None:
        """End owned sessions left empty past the idle timeout; hand over ended ones nobody is
        in; stop following sessions without local sockets."""
        while True:
            await asyncio.sleep(max(0.05, min(5.0, self.idle_timeout / 4)))
            now = time.monotonic()
            for owned in list(self.owned.values()):
                empty = owned.live.empty_since
                if not empty:
                    continue
                if owned.live.state.status == "live" and now - empty >= self.idle_timeout:
                    log.info("session %s ended after %.0fs without participants", owned.id, now - empty)
                    owned.live.end("idle")
                elif owned.live.state.status == "ended" and now - empty >= EVICT_AFTER:
                    await owned.release()
            for replica in list(self.live.values()):
                if (
                    replica.empty_since
                    and now - replica.empty_since >= EVICT_AFTER
                    and not replica.connections
                ):
                    del self.live[replica.id]
                    await replica.close()

    async def close(self, grace: float = 5.0) -> bool:
        """Stop: stop following, hand over owned sessions, flush the log. True when everything
        this node decided reached the stream and its log."""
        if self._reaper is not None:
            await cancel(self._reaper)
        for replica in list(self.live.values()):
            await replica.close()
        try:  # bounded: a stop must not hang on Redis (each hand-over waits at most 5 s itself)
            unpublished = await asyncio.wait_for(self.release_all(), grace + 5)
        except TimeoutError:
            log.error("stopping before every session was handed over")
            unpublished = 1
        saved = True
        try:
            await asyncio.wait_for(self.recorder.close(), grace)
        except (StorageError, OSError, TimeoutError) as exc:
            log.error("stopping with events not saved to this node's log (%s)", exc)
            saved = False
        try:
            await asyncio.wait_for(self.node.close(), grace)
        except TimeoutError:
            log.warning("Redis did not let go in time; stopping anyway")
        return saved and unpublished == 0
