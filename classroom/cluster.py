"""Cluster mode (`--redis-url`): several server processes, on one machine or many, serve the same
sessions through Redis.

- **Metadata** (`RedisStore`): the sessions' rows live in Redis, so every node sees every session.
- **One owner per session**: a lease `cc:lease:<id>` (the owning node's id, TTL `LEASE_MS`,
  renewed every `RENEW_S`). Only the owner runs the session core (`Owned`, a `LiveSession`) and
  assigns `seq`.
- **One stream per session**: the owner publishes its events to the Redis stream
  `cc:events:<id>` with the seq as entry id (`<seq>-0`), from a Lua script that first checks the
  lease and that the stream ends at the event before (fencing: a deposed owner cannot publish).
  Only then does the owner's local log (the recorder) get the events, so the log is always a
  prefix of the stream.
- **Every node follows the stream** (`Replica`): it folds the events into its own copy of the
  state (for join snapshots and resume) and hands them to its fan-out, so each event is encoded
  once per audience per node. Commands and presence of its sockets go to the owner: directly
  when this node owns the session, else through the owner's Redis list `cc:inbox:<node>`, with
  the reply in the sender's own inbox.
- **Durability**: a command is acknowledged once its events are in the stream and fsynced in the
  owner's log. Run Redis with `appendonly yes` and `appendfsync always`, so a stream write that
  Redis acknowledged is on Redis's disk too; then an acknowledged event survives the loss of the
  owner (its successor reads the stream) as well as a Redis restart (the AOF).
- **Failover**: every node following a session checks the lease every `WATCH_S`; when it has
  lapsed (the owner died), one takes it, rebuilds the session from its log (the data directory
  is shared) and the stream's newer events, and carries on; the other nodes send their
  participants' presence to the new owner.
- **Redis unreachable**: commands are answered `temporarily_unavailable` (nothing changed);
  events already decided wait in order and are published when Redis answers again.

Nothing here imports `signaling` or `recorder`: the fan-out and the log come in through
`classroom/ports.py`, plugged in by the composition root.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgpack
import orjson
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ConstantBackoff
from redis.exceptions import RedisError

from .auth import new_id
from .core import Audience, CommandError, Event, SessionState, apply, project
from .live import RESUME_EVENTS, LiveSession
from .ports import Delivery, EventLog, Fanout, Recovered, StorageError
from .store import SessionInfo
from .tasks import cancel

log = logging.getLogger(__name__)

LEASE_MS = 3000  # a dead owner's sessions are taken over this long (plus WATCH_S) after it died
RENEW_S = 0.75
WATCH_S = 0.5
ALIVE_MS = 3000  # a node's heartbeat key lives this long
RPC_TIMEOUT = 5.0  # seconds a forwarded command may wait for its owner's reply
ACK_TIMEOUT = 5.0  # seconds an owner waits for a command's events to reach the stream
STREAM_MAXLEN = RESUME_EVENTS  # kept per stream (approximately): the resume window of any node
PUBLISH_BATCH = 500
ENDED_STREAM_MS = 24 * 3600 * 1000  # an ended session's stream is dropped a day later
EVICT_AFTER = 60.0  # seconds a followed session without local sockets stays followed

K_INDEX = "cc:sessions"


def k_info(session_id: str) -> str:
    return f"cc:session:{session_id}"


def k_lease(session_id: str) -> str:
    return f"cc:lease:{session_id}"


def k_stream(session_id: str) -> str:
    return f"cc:events:{session_id}"


def k_epoch(session_id: str) -> str:
    return f"cc:epoch:{session_id}"


def k_inbox(node: str) -> str:
    return f"cc:inbox:{node}"


def k_alive(node: str) -> str:
    return f"cc:node:{node}"


def unavailable(what: str = "the cluster's Redis cannot be reached") -> CommandError:
    return CommandError(
        "temporarily_unavailable", f"{what}; the command was not acknowledged, try again shortly"
    )


# Take or keep a lease: free -> ours; ours -> renewed; another node's -> 0.
_LEASE = """
local cur = redis.call('GET', KEYS[1])
if cur == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Publish events seq ARGV[4], ARGV[6], ... (payloads after each) if we hold the lease and the stream
# ends at seq ARGV[3] (or is empty): -1 lease lost, -2 the stream moved on without us.
_PUBLISH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #top > 0 and tonumber(string.match(top[1][1], '^(%d+)')) ~= tonumber(ARGV[3]) then return -2 end
for i = 4, #ARGV, 2 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], ARGV[i] .. '-0', 'e', ARGV[i + 1])
end
return 1
"""
_SET_STATUS = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local d = cjson.decode(raw)
if ARGV[1] == 'live' and d['status'] == 'ended' then return 0 end
d['status'] = ARGV[1]
local col = 'ended_at'
if ARGV[1] == 'live' then col = 'started_at' end
if d[col] == nil or d[col] == cjson.null then d[col] = tonumber(ARGV[2]) end
redis.call('SET', KEYS[1], cjson.encode(d))
return 1
"""


def connect(url: str) -> aioredis.Redis:
    """An asyncio client that fails fast (one quick retry) so callers can say
    `temporarily_unavailable` instead of hanging while Redis is away."""
    return aioredis.from_url(
        url,
        socket_timeout=3,
        socket_connect_timeout=2,
        retry=Retry(ConstantBackoff(0.05), 1),
    )


# -- encoding -----------------------------------------------------------------------------------


def pack_event(event: Event) -> bytes:
    return orjson.dumps([event.seq, event.t, event.type, event.actor, event.data, int(time.time() * 1000)])


def unpack_entry(fields: dict[bytes, bytes]) -> tuple[Event, int]:
    seq, t, type_, actor, data, wall = orjson.loads(fields[b"e"])
    return Event(seq, t, type_, actor, data), wall


_SET = 1


def _default(obj: Any) -> Any:
    if isinstance(obj, set):
        return msgpack.ExtType(_SET, msgpack.packb(sorted(obj), use_bin_type=True))
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _ext(code: int, data: bytes) -> Any:
    return set(msgpack.unpackb(data, raw=False)) if code == _SET else msgpack.ExtType(code, data)


def packb(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, default=_default)


def unpackb(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, ext_hook=_ext, strict_map_key=False)


def pack_state(state: SessionState) -> bytes:
    return packb({name: getattr(state, name) for name in state.__dataclass_fields__})


def unpack_state(data: bytes) -> SessionState:
    return SessionState(**unpackb(data))


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


# -- metadata -----------------------------------------------------------------------------------


class RedisStore:
    """The session store (`classroom.store.SessionStore`'s async API) in Redis: one JSON value
    per session and a sorted set of ids by creation time. Unreachable Redis is
    `temporarily_unavailable`; a status write that fails is retried until it succeeds."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.r = client
        self._set_status = client.register_script(_SET_STATUS)
        self._retries: set[asyncio.Task[None]] = set()

    async def create(
        self, session_id: str, title: str, recording: bool = True, anonymize: bool = False
    ) -> SessionInfo:
        info = SessionInfo(
            session_id, title, "created", time.time(), recording=recording, anonymize=anonymize
        )
        try:
            async with self.r.pipeline(transaction=True) as p:
                p.set(k_info(session_id), orjson.dumps(info.as_dict()))
                p.zadd(K_INDEX, {session_id: info.created_at})
                await p.execute()
        except RedisError:
            raise unavailable() from None
        return info

    async def get(self, session_id: str) -> SessionInfo | None:
        try:
            raw = await self.r.get(k_info(session_id))
        except RedisError:
            raise unavailable() from None
        return SessionInfo(**orjson.loads(raw)) if raw else None

    async def list(self) -> list[SessionInfo]:
        try:
            ids = await self.r.zrevrange(K_INDEX, 0, -1)
            raws = await self.r.mget([k_info(i.decode()) for i in ids]) if ids else []
        except RedisError:
            raise unavailable() from None
        return [SessionInfo(**orjson.loads(raw)) for raw in raws if raw]

    async def delete(self, session_id: str) -> None:
        try:
            keys = (k_info(session_id), k_stream(session_id), k_epoch(session_id))
            async with self.r.pipeline(transaction=True) as p:
                p.delete(*keys)
                p.zrem(K_INDEX, session_id)
                await p.execute()
        except RedisError:
            raise unavailable() from None

    async def set_status(self, session_id: str, status: str) -> None:
        """Save a status with the time it took effect; never raises (retried every second)."""
        at = time.time()
        while True:
            try:
                await self._set_status(keys=[k_info(session_id)], args=[status, at])
                return
            except RedisError as exc:
                log.warning("session %s: cannot save status %s yet (%s); retrying", session_id, status, exc)
                await asyncio.sleep(1.0)

    @property
    def unsaved_statuses(self) -> dict[str, dict[str, float]]:
        return {}

    def close(self) -> None:
        """Nothing to close: the cluster closes the client."""


def find_or_create_sync(url: str, title: str) -> SessionInfo:
    """For `serve` at start (before any loop): a session titled `title` not yet ended, else a new
    one, in the cluster's store."""
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        for raw_id in client.zrevrange(K_INDEX, 0, -1):
            raw = client.get(k_info(raw_id.decode()))
            if raw:
                info = SessionInfo(**orjson.loads(raw))
                if info.title == title and info.status != "ended":
                    return info
        return create_sync(url, title, client)
    finally:
        client.close()


def create_sync(url: str, title: str, client: redis.Redis | None = None) -> SessionInfo:
    """`create` in cluster mode: a new session in the cluster's store."""
    own = client is None
    client = client or redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        info = SessionInfo(new_id(), title, "created", time.time())
        with client.pipeline(transaction=True) as p:
            p.set(k_info(info.id), orjson.dumps(info.as_dict()))
            p.zadd(K_INDEX, {info.id: info.created_at})
            p.execute()
        return info
    finally:
        if own:
            client.close()


# -- the node -----------------------------------------------------------------------------------

Handler = Callable[[dict[str, Any]], None]


class Node:
    """This process in the cluster: its id, a heartbeat key, and its inbox (requests for the
    sessions it owns, replies to its own requests), read by one loop; messages to other nodes
    go out in order through one sender."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.id = new_id(8)
        self.r = client
        self.healthy = False
        self.on_request: Handler = lambda msg: None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._waiting_on: dict[int, str] = {}  # request id -> the node asked
        self._out: list[tuple[str, dict[str, Any]]] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.lease = client.register_script(_LEASE)
        self.release = client.register_script(_RELEASE)
        self.publish = client.register_script(_PUBLISH)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(f()) for f in (self._heartbeat, self._inbox, self._sender)]

    async def close(self) -> None:
        for task in self._tasks:
            await cancel(task)
        with contextlib.suppress(RedisError):
            await self.r.delete(k_alive(self.id))
        await self.r.aclose()

    async def ready(self) -> bool:
        """Redis answers (for a readiness probe)."""
        try:
            return bool(await asyncio.wait_for(self.r.ping(), 1.0))
        except (RedisError, TimeoutError, OSError):
            return False

    def failed(self, exc: BaseException) -> None:
        if self.healthy:
            log.warning("Redis unreachable (%s); commands are refused until it answers", exc)
        self.healthy = False

    async def _heartbeat(self) -> None:
        while True:
            try:
                await self.r.set(k_alive(self.id), 1, px=ALIVE_MS)
                if not self.healthy:
                    log.info("Redis reachable; node %s serving", self.id)
                self.healthy = True
            except RedisError as exc:
                self.failed(exc)
            await asyncio.sleep(0.5)

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
                item = await self.r.blpop([key], timeout=1)
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


class _NoFanout:
    """The owner's `LiveSession` delivers nothing itself: every node, the owner included,
    delivers from the stream."""

    async def deliver(self, session_id: str, batch: list[Delivery]) -> None:
        return None


# -- the owner's side ---------------------------------------------------------------------------


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
            events = []
            for _id, fields in entries:
                event, wall = unpack_entry(fields)
                if event.seq != state.seq + 1:
                    log.error(
                        "session %s: the stream misses events %s-%s", info.id, state.seq + 1, event.seq - 1
                    )
                apply(state, event)
                events.append(event)
                recovered.last_t, recovered.last_wall_ms = event.t, wall
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
        owned.epoch = _text(await r.get(k_epoch(info.id))) or ""
        owned.published_state = copy.deepcopy(state)
        owned.published_seq = owned.queued_seq = state.seq
        owned.live = LiveSession(
            info, _NoFanout(), sessions.store.set_status, StreamLog(owned, recorder), recovered
        )
        owned.live.epoch = owned.epoch
        sessions.owned[info.id] = owned
        owned._tasks = [
            asyncio.get_running_loop().create_task(f()) for f in (owned._publish_loop, owned._renew)
        ]
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

    async def _renew(self) -> None:
        last_ok = time.monotonic()
        beat = 0
        while True:
            await asyncio.sleep(RENEW_S)
            try:
                got = await self.node.lease(keys=[k_lease(self.id)], args=[self.node.id, LEASE_MS])
            except RedisError as exc:
                self.node.failed(exc)
                if time.monotonic() - last_ok > LEASE_MS / 1000:
                    self.lapsed = True
                continue
            if got != 1:
                self.abdicate("another node holds its lease")
                return
            last_ok, self.lapsed = time.monotonic(), False
            beat += 1
            if beat % 4 == 0:
                await self._forget_dead_nodes()

    async def _forget_dead_nodes(self) -> None:
        """Participants connected through a node that died leave."""
        nodes = {n for sids in self.live.connections.values() for n in sids if n != self.node.id}
        if not nodes:
            return
        try:
            alive = await self.node.alive(sorted(nodes))
        except RedisError:
            return
        for pid, sids in list(self.live.connections.items()):
            for n in list(sids):
                if n in alive and not alive[n]:
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
        self.lapsed = True  # no new commands
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
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                await cancel(task)
        await self.live.close()
        if discard_lease:
            with contextlib.suppress(RedisError):
                await self.node.release(keys=[k_lease(self.id)], args=[self.node.id])
        if self.sessions.recorder.is_open(self.id):
            await self.sessions.recorder.close_session(self.id)


# -- every node's side --------------------------------------------------------------------------


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
        self._tasks: list[asyncio.Task[None]] = []

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
        for _id, fields in reversed(entries):
            event, _wall = unpack_entry(fields)
            self.recent.append(event)
            apply(self.state, event)
        self.sent_seq = self.state.seq
        self.info.status = self.state.status

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._follow()), loop.create_task(self._watch())]

    async def close(self) -> None:
        for task in self._tasks:
            await cancel(task)

    def now(self) -> int:
        owned = self.sessions.owned.get(self.id)
        return owned.live.now() if owned is not None else self.state.t

    # -- the hub's side -------------------------------------------------------------------------

    def attach(self, sid: str, pid: str, name: str, role: str) -> None:
        sids = self.connections.setdefault(pid, set())
        sids.add(sid)
        self.people[pid] = (name, role)
        self.empty_since = None
        if len(sids) == 1:
            self._presence("attach", pid)

    def detach(self, sid: str, pid: str) -> None:
        sids = self.connections.get(pid)
        if not sids:
            return
        sids.discard(sid)
        if not sids:
            del self.connections[pid]
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
        if name.startswith("media."):  # WebRTC peers are per process: not across a cluster yet
            raise CommandError("media_failed", "live media is not available in cluster mode yet")
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
        return self.state.view(audience, pid, bounded=True)

    def missed(self, last_seq: int, audience: Audience, pid: str) -> list[dict[str, Any]] | None:
        """As `LiveSession.missed`, from the events this node has followed."""
        if last_seq > self.sent_seq:
            return None
        if last_seq == self.sent_seq:
            return []
        oldest = self.recent[0].seq if self.recent else self.sent_seq + 1
        if last_seq < oldest - 1:
            return None
        out = []
        for event in self.recent:
            if event.seq <= last_seq:
                continue
            view = project(event, audience, event.actor == pid)
            if view is not None:
                out.append(view)
        return out

    # -- following ------------------------------------------------------------------------------

    async def _follow(self) -> None:
        r = self.node.r
        while True:
            try:
                found = await r.xread({k_stream(self.id): f"{self.state.seq}-0"}, count=1000, block=1000)
            except RedisError as exc:
                self.node.failed(exc)
                await asyncio.sleep(0.25)
                continue
            if not found:
                continue
            try:
                events = [unpack_entry(fields)[0] for _id, fields in found[0][1]]
                await self._fold(events)
            except Exception:  # a broken socket must not stop the session's stream
                log.exception("session %s: delivering events failed", self.id)

    async def _fold(self, events: list[Event]) -> None:
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
            batch.append(self._delivery(event))
            if event.type == "session.started":
                self.info.status = "live"
            elif event.type == "session.ended":
                self.info.status = "ended"
                for hook in self.on_ended:
                    with contextlib.suppress(Exception):
                        hook(self.id)
        if batch:
            self.sent_seq = self.state.seq
            await self.sessions.fanout.deliver(self.id, batch)

    def _delivery(self, event: Event) -> Delivery:
        if event.actor is None:
            return Delivery(event)
        actor = self.state.participants.get(event.actor)
        return Delivery(event, actor["role"] if actor else None, self.connections.get(event.actor, ()))

    async def _watch(self) -> None:
        """Follow the lease: take it when it lapses, and tell a new owner who is here."""
        while True:
            await asyncio.sleep(WATCH_S)
            try:
                await self._check_owner()
            except (RedisError, CommandError) as exc:  # Redis away: the next round tries again
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


# -- the registry -------------------------------------------------------------------------------


class ClusterSessions:
    """The session registry in cluster mode (the hub and the HTTP API use it as they use
    `classroom.sessions.Sessions`): `live` holds the sessions this node follows (`Replica`),
    `owned` those whose core runs here."""

    def __init__(self, url: str, fanout: Fanout, recorder: EventLog, idle_timeout: float) -> None:
        client = connect(url)
        self.node = Node(client)
        self.node.on_request = self._on_request
        self.store = RedisStore(client)
        self.fanout = fanout
        self.recorder = recorder
        self.idle_timeout = idle_timeout
        self.live: dict[str, Replica] = {}
        self.owned: dict[str, Owned] = {}
        self._loading: dict[str, asyncio.Future[Replica | None]] = {}
        self._taking: dict[str, asyncio.Future[None]] = {}
        self._reaper: asyncio.Task[None] | None = None
        self.draining = False  # set by release_all: this node takes no session any more

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
        owner = _text(await self.node.r.get(k_lease(session_id)))
        if owner is None and acquire and self.node.healthy and not self.draining:
            await self._take(session_id)
            owner = _text(await self.node.r.get(k_lease(session_id)))
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

    def _on_request(self, msg: dict[str, Any]) -> None:
        session_id = msg.get("s", "")
        owned = self.owned.get(session_id)
        op, args = msg.get("op"), msg.get("a") or []
        taking = self._taking.get(session_id)
        if owned is None and taking is not None:
            # Taking the session over right now: its presence and commands wait, in order.
            taking.add_done_callback(lambda _: self._on_request(msg))
            return
        if owned is None or owned.abdicated:
            self.node.reply(msg, {"err": "not_owner"})
            return
        if op == "cmd":
            # Started now, so commands are decided in the order they arrived.
            task = asyncio.get_running_loop().create_task(self._serve(owned, msg, *args))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        elif op == "attach":
            owned.attach(msg["from"], *args)
        elif op == "detach":
            owned.detach(msg["from"], *args)
        elif op == "state":
            self.node.reply(msg, {"state": pack_state(owned.published_state), "epoch": owned.epoch})

    async def _serve(self, owned: Owned, msg: dict[str, Any], pid: str, name: str, payload: Any) -> None:
        try:
            ack = await owned.run(pid, name, payload)
        except Exception:
            log.exception("forwarded command %r failed", str(name)[:60])
            ack = CommandError("internal_error", "the server failed; nothing changed").as_ack()
        self.node.reply(msg, {"ack": ack})

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
