"""The owner's side of a session: `Owned` runs its `LiveSession`, keeps its lease (renewed at each
beat of its node, `Node._beat`) and publishes its events to the stream in order (then to this
node's log, through `StreamLog`)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from ..auth import new_id
from ..core import CommandError, Event, SessionState, apply
from ..live import RESUME_EVENTS, LiveSession
from ..ports import Delivery, EventLog, Recovered, StorageError
from ..store import SessionInfo
from ..tasks import cancel
from .codec import as_text, fold_entries, pack_event
from .connection import unavailable
from .fencing import BEAT_S, LEASE_MS
from .keys import k_epoch, k_lease, k_stream

if TYPE_CHECKING:
    from .sessions import ClusterSessions

log = logging.getLogger(__name__)

ACK_TIMEOUT = 5.0  # seconds an owner waits for a command's events to reach the stream
STREAM_MAXLEN = RESUME_EVENTS  # kept per stream (approximately): the resume window of any node
PUBLISH_BATCH = 500
ENDED_STREAM_MS = 24 * 3600 * 1000  # an ended session's stream is dropped a day later
FORGET_EVERY = round(3.0 / BEAT_S)  # beats between checks for participants on nodes that died


class _NoFanout:
    """The owner's `LiveSession` delivers nothing itself: every node, the owner included,
    delivers from the stream (and sends its own sockets the presence summary)."""

    async def deliver(self, session_id: str, batch: list[Delivery]) -> None:
        return None

    async def notify(self, session_id: str, audience: str, name: str, data: dict[str, Any]) -> int:
        return 0


class StreamLog:
    """The `EventLog` an owned session's `LiveSession` writes to: events go to the Redis stream
    first (`Owned._publish_loop`), then to this node's recorder; durable means both."""

    def __init__(self, owned: Owned, recorder: EventLog) -> None:
        self._owned = owned
        self._recorder = recorder

    @property
    def durable_seq(self) -> dict[str, int]:
        return self._recorder.durable_seq

    async def open(self, session_id: str, title: str, recording: str, anonymize: bool = False) -> Any:
        return await self._recorder.open(session_id, title, recording, anonymize)

    def is_open(self, session_id: str) -> bool:
        return self._recorder.is_open(session_id)

    def accepting(self, session_id: str) -> bool:
        return self._recorder.accepting(session_id)

    def append(self, session_id: str, events: list[Event]) -> None:
        self._owned.queue(events)

    async def durable(self, session_id: str, seq: int) -> None:
        await self._owned.published(seq)
        if self._recorder.is_open(session_id):  # not: an ended session that was never recorded
            await self._recorder.durable(session_id, seq)

    async def close_session(self, session_id: str, discard: bool = False) -> None:
        with contextlib.suppress(CommandError):
            await self._owned.published(self._owned.queued_seq)
        await self._recorder.close_session(session_id, discard)

    async def close(self) -> dict[str, int]:
        return {}


class Owned:
    """A session this node owns: its `LiveSession`, the lease kept, events published in order."""

    def __init__(self, sessions: ClusterSessions, info: SessionInfo) -> None:
        self.sessions = sessions
        self.node = sessions.node
        self.id = info.id
        self.info = info
        self.live: LiveSession
        self.epoch = ""
        self.published_state: SessionState  # the state at the last published event
        self.published_seq = 0
        self.queued_seq = 0  # the last event handed to the stream (not all are: see `LiveSession`)
        self.pending: list[Event] = []
        self.abdicated = False
        self.lapsed = False  # the lease could not be renewed for a whole TTL
        self._renewed_at = time.monotonic()  # the lease's last renewal (it was just taken)
        self._beats = 0
        self._releasing = False
        self._forgetting: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._progress: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def take(cls, sessions: ClusterSessions, info: SessionInfo) -> Owned:
        """Rebuild a session whose lease this node just took: its log, then the stream's newer
        events (which the log is always a prefix of), then carry on."""
        r, recorder = sessions.node.r, sessions.recorder
        if not info.recording and info.status == "ended":
            # Its log went with its end (it was never to be recorded): it stays ended, unlogged.
            recovered = Recovered(SessionState(info.id, info.title, status="ended", recording="off"))
        else:
            recovered = await recorder.open(
                info.id, info.title, "on" if info.recording else "off", info.anonymize
            )
        state = recovered.state or SessionState(
            info.id, info.title, recording="on" if info.recording else "off"
        )
        recovered.state = state
        top = await r.xrevrange(k_stream(info.id), count=1)
        top_seq = int(top[0][0].split(b"-")[0]) if top else 0
        if top_seq > state.seq:
            entries = await r.xrange(k_stream(info.id), min=f"{state.seq + 1}-0", max="+")
            folded = fold_entries(state, entries)
            if folded:
                recovered.last_t, recovered.last_wall_ms = folded[-1][0].t, folded[-1][1]
            events = [event for event, _wall in folded]
            if events and recorder.is_open(info.id):
                recorder.append(info.id, events)
                log.info("session %s: %d events taken from the stream beyond its log", info.id, len(events))
        elif top_seq < state.seq and top:
            # Redis lost the stream's end (no AOF?): start the stream again after the log, in a
            # new epoch (clients take a fresh snapshot).
            log.warning("session %s: the stream ends at %s, its log at %s", info.id, top_seq, state.seq)
            await r.delete(k_stream(info.id), k_epoch(info.id))
        await r.set(k_epoch(info.id), new_id(4), nx=True)
        owned = cls(sessions, info)
        owned.epoch = as_text(await r.get(k_epoch(info.id))) or ""
        owned.published_state = copy.deepcopy(state)
        owned.published_seq = owned.queued_seq = state.seq
        # Its crowd is off (size 0): every node coalesces presence for its own sockets
        # (`Replica.crowd`), and the owner's sender must not hold presence back for batching.
        owned.live = LiveSession(
            info, _NoFanout(), sessions.store.set_status, StreamLog(owned, recorder), recovered, crowd=0
        )
        owned.live.epoch = owned.epoch
        # Hooks that must run once per session (pushing xAPI statements), on its owner only.
        owned.live.on_ended.extend(sessions.on_ended)
        sessions.owned[info.id] = owned
        owned._tasks = [asyncio.get_running_loop().create_task(owned._publish_loop())]
        sessions.node.keeping[info.id] = owned  # renewed at each beat
        owned.live.rebuild()
        if state.status != info.status and state.status in ("live", "ended"):
            info.status = state.status
            asyncio.get_running_loop().create_task(sessions.store.set_status(info.id, state.status))
        log.info("node %s owns session %s from seq %s", sessions.node.id, info.id, state.seq)
        return owned

    @property
    def usable(self) -> bool:
        return self.node.healthy and not self.lapsed and not self.abdicated

    # -- commands and presence ------------------------------------------------------------------

    async def run(self, pid: str, name: str, payload: Any) -> dict[str, Any]:
        """A command, decided at once (in arrival order), acknowledged once durable."""
        if not self.usable:
            return unavailable().as_ack()
        try:
            outcome = self.live.execute(pid, name, payload)
        except CommandError as exc:
            return exc.as_ack()
        try:
            await asyncio.wait_for(self.live.durable(outcome), ACK_TIMEOUT)
        except StorageError:
            return CommandError(
                "storage_failed", "done, but not yet saved to disk; the server keeps trying to save it"
            ).as_ack()
        except TimeoutError:
            return unavailable("the change could not be stored in time").as_ack()
        except CommandError as exc:
            return exc.as_ack()
        for hook in self.sessions.after_command:
            try:
                await hook(self.live, name, outcome.events)
            except Exception:
                log.exception("session %s: a hook after %r failed", self.id, str(name)[:60])
        seq = outcome.events[-1].seq if outcome.events else self.live.state.seq
        return {"ok": True, "seq": seq, **outcome.reply}

    def attach(self, node: str, pid: str, name: str, role: str, address: str | None) -> None:
        """A node has a first socket of `pid` (each node counts as one connection)."""
        self.live.core.place(pid, address)
        self.live.attach(node, pid, name, role)

    def detach(self, node: str, pid: str) -> None:
        self.live.detach(node, pid)

    # -- publishing -----------------------------------------------------------------------------

    def queue(self, events: list[Event]) -> None:
        if events:
            self.pending.extend(events)
            self.queued_seq = events[-1].seq
            self._wake.set()

    async def published(self, seq: int) -> None:
        while self.published_seq < seq:
            if self.abdicated:
                raise unavailable("the session moved to another node")
            await asyncio.shield(self._progress)

    def _progressed(self) -> None:
        done, self._progress = self._progress, asyncio.get_running_loop().create_future()
        done.set_result(None)

    async def _publish_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.pending:
                batch = self.pending[:PUBLISH_BATCH]
                args: list[Any] = [self.node.id, STREAM_MAXLEN, batch[0].seq - 1]
                for event in batch:
                    args += [event.seq, pack_event(event)]
                try:
                    result = await self.node.publish(keys=[k_lease(self.id), k_stream(self.id)], args=args)
                except RedisError as exc:
                    self.node.failed(exc)
                    await asyncio.sleep(0.25)
                    continue
                if result != 1:
                    why = "its lease was taken" if result == -1 else "the stream moved on"
                    self.abdicate(why)
                    return
                del self.pending[: len(batch)]
                if self.sessions.recorder.is_open(self.id):
                    self.sessions.recorder.append(self.id, batch)
                for event in batch:
                    apply(self.published_state, event)
                self.published_seq = batch[-1].seq
                if any(e.type == "session.ended" for e in batch):
                    # An ended session's stream only serves resume for a while; its log stays.
                    with contextlib.suppress(RedisError):
                        await self.node.r.pexpire(k_stream(self.id), ENDED_STREAM_MS)
                self._progressed()

    def kept(self, holder: str | None) -> None:
        """The node's beat renewed the lease (`holder` is this node), or found another holder."""
        if self.abdicated:
            return
        if holder != self.node.id:
            self.abdicate("another node holds its lease")
            return
        self._renewed_at = time.monotonic()
        self.lapsed = self._releasing  # a session being handed over takes no new command
        self._beats += 1
        if self._beats % FORGET_EVERY == 0 and (self._forgetting is None or self._forgetting.done()):
            self._forgetting = asyncio.get_running_loop().create_task(self._forget_dead_nodes())

    def missed(self) -> None:
        """The node's beat failed (Redis away): no command is taken once a whole TTL has passed
        without a renewal (another node may hold the lease by then)."""
        if time.monotonic() - self._renewed_at > LEASE_MS / 1000:
            self.lapsed = True

    async def _forget_dead_nodes(self) -> None:
        """Participants connected through a node that died leave."""
        nodes = {n for sids in self.live.connections.values() for n in sids if n != self.node.id}
        if not nodes:
            return
        try:
            alive = await self.node.alive(sorted(nodes))
        except RedisError:
            return
        dead = {n for n, ok in alive.items() if not ok}
        if not dead:
            return  # the usual case: no pass over every participant (a list and a tuple each)
        for pid, sids in list(self.live.connections.items()):
            for n in sids & dead:
                self.live.detach(n, pid)

    def abdicate(self, why: str) -> None:
        """Stop owning at once: events not yet published are dropped (none was acknowledged)."""
        if self.abdicated:
            return
        self.abdicated = True
        log.warning("node %s no longer owns session %s: %s", self.node.id, self.id, why)
        if self.sessions.owned.get(self.id) is self:
            del self.sessions.owned[self.id]
        self._progressed()
        asyncio.get_running_loop().create_task(self._close(discard_lease=False))

    async def release(self, timeout: float = 5.0) -> int:
        """Hand the session over (drain, stop): publish what is decided, then free the lease so
        another node takes it at once. Returns how many events could not be published."""
        if self.abdicated:
            return 0
        self.lapsed = self._releasing = True  # no new commands
        with contextlib.suppress(TimeoutError, CommandError):
            await asyncio.wait_for(self.published(self.queued_seq), timeout)
        lost = len(self.pending)
        if lost:
            log.error("session %s: handed over without %d events Redis did not take", self.id, lost)
        self.abdicated = True
        if self.sessions.owned.get(self.id) is self:
            del self.sessions.owned[self.id]
        self._progressed()
        await self._close(discard_lease=True)
        return lost

    async def _close(self, discard_lease: bool) -> None:
        if self.node.keeping.get(self.id) is self:
            del self.node.keeping[self.id]
        current = asyncio.current_task()
        for task in [*self._tasks, self._forgetting]:
            if task is None:
                continue
            if task is not current:
                await cancel(task)
        await self.live.close()
        if discard_lease:
            with contextlib.suppress(RedisError):
                await self.node.release(keys=[k_lease(self.id)], args=[self.node.id])
        if self.sessions.recorder.is_open(self.id):
            await self.sessions.recorder.close_session(self.id)
