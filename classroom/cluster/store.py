"""Session metadata in Redis (`RedisStore`, the cluster's `SessionStore`), and the synchronous
`create` / find-or-create the CLI uses before any event loop runs."""

from __future__ import annotations

import asyncio
import logging
import time

import orjson
import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..auth import new_id
from ..store import SessionInfo
from .connection import unavailable
from .keys import K_INDEX, k_epoch, k_info, k_stream

log = logging.getLogger(__name__)

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
