"""Every node's side of a session: `Replica` follows its stream, folds it into a local state
and fans it out to this node's sockets, and sends their commands and presence to the owner."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from ..core import Audience, CommandError, Event, SessionState, apply
from ..core.presence import COALESCED
from ..crowd import Crowd, Outbox
from ..live import RESUME_EVENTS, add_socket, delivery, drop_socket, missed_events
from ..ports import Delivery
from ..store import SessionInfo
from ..tasks import cancel
from .codec import fold_entries, pack_state, unpack_entry, unpack_state
from .connection import unavailable
from .fencing import BEAT_S
from .keys import k_stream
from .node import BLOCK_S, RPC_TIMEOUT

if TYPE_CHECKING:
    from .sessions import ClusterSessions

log = logging.getLogger(__name__)

WATCH_S = BEAT_S  # how often a follower sees the session's lease (its node's beat reads it)


class _Places:
    """What the hub tells the core (`place`) goes to the owner with the participant's presence."""

    def __init__(self) -> None:
        self.addresses: dict[str, str | None] = {}

    def place(self, pid: str, address: str | None) -> None:
        self.addresses[pid] = address


class Replica:
    """A session as one node serves it to its sockets: the state folded from the stream, the
    local connections, a resume buffer; commands and presence go to the owner. The hub uses it
    like a `LiveSession` (`forwards` tells it to hand commands to `command`)."""

    forwards = True

    def __init__(self, sessions: ClusterSessions, info: SessionInfo) -> None:
        self.sessions = sessions
        self.node = sessions.node
        self.id = info.id
        self.info = info
        self.state: SessionState
        self.epoch = ""
        self.core = _Places()
        self.connections: dict[str, set[str]] = {}  # pid -> local socket ids
        self.people: dict[str, tuple[str, str]] = {}  # pid -> (name, role), for re-attaching
        self.recent: deque[Event] = deque(maxlen=RESUME_EVENTS)
        self.sent_seq = 0
        self.owner: str | None = None
        self.empty_since: float | None = time.monotonic()
        self.on_ended: list[Callable[[str], None]] = []
        # A large session's presence, coalesced by each node for its own sockets from the stream.
        self.crowd = Crowd(info.id, sessions.crowd, sessions.fanout.notify)
        # What this node delivers, in stream order, its trainers' presence batched as `LiveSession`'s.
        self.outbox = Outbox(self.crowd, self._send)
        self._tasks: list[asyncio.Task[None]] = []
        self._checking: asyncio.Task[None] | None = None

    async def load(self) -> None:
        """The owner's published state (taking the lease if the session has no owner), then the
        stream's recent events for resume."""
        deadline = time.monotonic() + RPC_TIMEOUT * 2
        while True:
            owner = await self.sessions.owner_of(self.id)
            if owner == self.node.id and self.id in self.sessions.owned:
                owned = self.sessions.owned[self.id]
                blob, epoch = pack_state(owned.published_state), owned.epoch
                break
            if owner is not None and owner != self.node.id:
                try:
                    reply = await self.node.request(owner, {"op": "state", "s": self.id})
                except CommandError:
                    reply = {}
                if "state" in reply:
                    blob, epoch = reply["state"], reply["epoch"]
                    break
            if time.monotonic() > deadline:
                raise unavailable("the session's node did not answer")
            await asyncio.sleep(0.2)
        self.owner = owner
        self.state, self.epoch = unpack_state(blob), epoch
        entries = await self.node.r.xrevrange(k_stream(self.id), count=RESUME_EVENTS)
        for event, _wall in fold_entries(self.state, entries[::-1]):
            self.recent.append(event)
        self.sent_seq = self.state.seq
        self.info.status = self.state.status
        self.crowd.seed(self.state)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._follow())]
        self.node.watching[self.id] = self._seen  # the lease, read at each beat of the node
        self.crowd.check()  # already large when this node starts to follow it

    async def close(self) -> None:
        if self.node.watching.get(self.id) == self._seen:
            del self.node.watching[self.id]
        for task in [*self._tasks, self._checking]:
            await cancel(task)
        await self.outbox.close()
        await self.crowd.close()

    def now(self) -> int:
        owned = self.sessions.owned.get(self.id)
        return owned.live.now() if owned is not None else self.state.t

    # -- the hub's side -------------------------------------------------------------------------

    def attach(self, sid: str, pid: str, name: str, role: str) -> None:
        self.people[pid] = (name, role)
        self.empty_since = None
        if add_socket(self.connections, sid, pid):
            self._presence("attach", pid)

    def detach(self, sid: str, pid: str) -> None:
        if drop_socket(self.connections, sid, pid):
            self._presence("detach", pid)
            if not self.connections:
                self.empty_since = time.monotonic()

    def _presence(self, op: str, pid: str) -> None:
        owner = self.owner
        if owner is None:
            return  # the next owner hears of it when it takes over (`_watch`)
        name, role = self.people.get(pid, ("?", "learner"))
        args = [pid, name, role, self.core.addresses.get(pid)] if op == "attach" else [pid]
        if owner == self.node.id:
            owned = self.sessions.owned.get(self.id)
            if owned is not None:
                if op == "attach":
                    owned.attach(self.node.id, *args)
                else:
                    owned.detach(self.node.id, pid)
            return
        self.node.send(owner, {"k": "req", "op": op, "s": self.id, "a": args, "from": self.node.id})

    async def command(self, pid: str, name: str, payload: Any) -> dict[str, Any]:
        """Run a command on the session's owner; its ack."""
        if name.startswith("media."):  # the hub hands these to signaling/media_cluster.py when media is on
            raise CommandError("media_failed", "live media is off on this server")
        for _ in range(3):
            owner = self.owner
            if owner == self.node.id:
                owned = self.sessions.owned.get(self.id)
                if owned is not None:
                    return await owned.run(pid, name, payload)
            elif owner is not None:
                reply = await self.node.request(owner, {"op": "cmd", "s": self.id, "a": [pid, name, payload]})
                if "ack" in reply:
                    return reply["ack"]
            await self._check_owner()
        raise unavailable("the session has no reachable node right now")

    def snapshot(self, audience: Audience, pid: str | None) -> dict[str, Any]:
        return self.crowd.snapshot(self.state, audience, pid)

    def missed(self, last_seq: int, audience: Audience, pid: str) -> list[dict[str, Any]] | None:
        """As `LiveSession.missed`, from the events this node has followed."""
        return missed_events(self.recent, self.sent_seq, self.crowd, last_seq, audience, pid)

    # -- following ------------------------------------------------------------------------------

    async def _follow(self) -> None:
        r = self.node.blocking
        while True:
            try:
                found = await r.xread(
                    {k_stream(self.id): f"{self.state.seq}-0"}, count=1000, block=int(BLOCK_S * 1000)
                )
            except RedisError as exc:
                self.node.failed(exc)
                await asyncio.sleep(0.25)
                continue
            if not found:
                continue
            try:
                events = [unpack_entry(fields)[0] for _id, fields in found[0][1]]
                self._fold(events)
            except Exception:  # a broken socket must not stop the session's stream
                log.exception("session %s: delivering events failed", self.id)

    def _fold(self, events: list[Event]) -> None:
        batch = []
        for event in events:
            if event.seq <= self.state.seq:
                continue
            if event.seq != self.state.seq + 1:
                log.error(
                    "session %s: events %s-%s never reached this node",
                    self.id,
                    self.state.seq + 1,
                    event.seq - 1,
                )
            apply(self.state, event)
            self.recent.append(event)
            if event.type in COALESCED:
                self.crowd.tally(event)
            batch.append(event)
            if event.type == "session.started":
                self.info.status = "live"
            elif event.type == "session.ended":
                self.info.status = "ended"
                for hook in self.on_ended:
                    with contextlib.suppress(Exception):
                        hook(self.id)
        self.outbox.put(batch)

    async def _send(self, batch: list[Event]) -> None:
        self.sent_seq = batch[-1].seq
        await self.sessions.fanout.deliver(self.id, [self._delivery(event) for event in batch])

    def _delivery(self, event: Event) -> Delivery:
        return delivery(event, self.state, self.connections, self.crowd)

    def _seen(self, holder: str | None) -> None:
        """The lease's holder as the node's beat found it: when it is not the owner this replica
        knows (it lapsed, or moved), find the owner, taking the lease if nobody holds it and
        this node has the session's participants, and tell a new owner who is here."""
        if self._checking is not None and not self._checking.done():
            return  # one check at a time; the next beat looks again
        same = holder == self.owner and (holder is not None or not self.connections)
        if same and (holder != self.node.id or self.id in self.sessions.owned):
            return  # nothing changed (the common case: no round trip)
        self._checking = asyncio.get_running_loop().create_task(self._check())

    async def _check(self) -> None:
        try:
            await self._check_owner()
        except (RedisError, CommandError) as exc:  # Redis away: the next beat tries again
            self.node.failed(exc)
        except Exception:
            log.exception("session %s: checking its owner failed", self.id)

    async def _check_owner(self) -> None:
        owner = await self.sessions.owner_of(self.id, acquire=bool(self.connections))
        if owner != self.owner:
            if self.owner is not None and self.owner != self.node.id:
                self.node.abandon(self.owner)
            self.owner = owner
            if owner is not None:
                for pid in list(self.connections):
                    self._presence("attach", pid)
