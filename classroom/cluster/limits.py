"""The edge's budgets counted across the cluster (issue 11): open websockets and new identities
per address, and new identities per session link, so a client spreading its connections over N
nodes does not get N times each budget, nor does a link shared by a class.

- **Open websockets**: the hash `cc:open:<address>` holds, per node id, how many websockets that
  node has open from the address. A node adds one before it accepts a websocket, in a Lua script
  that first sums the fields of the nodes still alive (their heartbeat key `cc:node:<id>`
  exists) and drops the others: a node that died without closing its sockets stops counting
  within its heartbeat's TTL (`ALIVE_MS`), with no per-connection refresh. It takes one off when
  the websocket closes.
- **New identities per address**: a token bucket per address and session,
  `cc:mint:<session>:<address>`, the same rate as the local one, taken in one Lua script on
  Redis's clock (the hash expires once it would be full again). One round trip per new learner
  from a limited address.
- **New identities per link** (`JOINS_PER_LINK`, `--joins-per-link`): a token bucket per session,
  `cc:mintlink:<session>`, the same rate as the local one, which nodes take from **in batches**
  (`LINK_SCRIPT`), so a storm of 10,000 learners costs a round trip per batch, not per join. A
  node holds the tokens it was granted for one session (`_Lease`) and spends them locally, with
  no await: only a join that finds none waits for Redis, and the joins that arrive meanwhile wait
  for the same request. A batch is what the node's joins are asking for now plus twice what it
  spent of its previous batch (`BATCH_MAX` at most), and never more than a quarter of what the
  bucket holds (one token at least): batches shrink as the bucket empties, so near the cap the
  nodes take tokens one by one, and one node holding a batch rarely leaves another refusing while
  the cap is not spent yet. Tokens a node has not spent within `LEASE_S` of their grant go back
  to the bucket (up to its burst), so an idle node keeps none. The cap holds to within what the
  nodes hold at a time (at most `BATCH_MAX` each); a join refused while another node still holds
  tokens gets in when it tries again after `LEASE_S`.
- **Redis unreachable or slow** (no answer in `TIMEOUT_S`, or the node's heartbeat failed and has
  not succeeded since): `None`, and the node falls back to its local limits (a client then gets up
  to N times a budget again) rather than refusing everyone. A websocket whose count timed out is
  taken off when it closes anyway (the script may have run). A link's granted tokens still
  unspent are spent first: they were taken from the shared bucket.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.exceptions import RedisError

from .keys import k_alive, k_link_mints, k_mints, k_open
from .node import Node

TIMEOUT_S = 2.0
TIMED_OUT = -2
OPEN_TTL_MS = 24 * 3600 * 1000  # an address's hash outlives its last change by this long at most
LEASE_S = 3.0  # a link's granted tokens not spent within this long go back to its bucket
BATCH_MAX = 50  # tokens of a link's bucket one node takes at a time, at most
SHARE = 4  # ... and at most this fraction of what the bucket holds (1/SHARE), one token at least

# KEYS[1] the address's hash; ARGV: this node, the limit, the hash's TTL, the heartbeat key prefix.
# Returns the count after adding this websocket, or -1 when the address is at its limit.
OPEN_SCRIPT = """
local total = 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local node = fields[i]
  if node == ARGV[1] or redis.call('EXISTS', ARGV[4] .. node) == 1 then
    total = total + tonumber(fields[i + 1])
  else
    redis.call('HDEL', KEYS[1], node)
  end
end
if total >= tonumber(ARGV[2]) then
  return -1
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return total + 1
"""

CLOSE_SCRIPT = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
return n
"""

# A token bucket like the local one (`classroom.core.ratelimit.TokenBucket`) on Redis's clock, in
# the hash KEYS[1] (fields `tokens`, `at`); ARGV[1] its burst, ARGV[2] its refill time (ms). The
# scripts below start with it (`tokens` refilled up to now) and end by storing `tokens` back.
_BUCKET_IN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local burst = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * burst / per)
"""
_BUCKET_OUT = """
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], per)
"""

# One token for a new identity from an address. Returns 1 if a token was taken, else 0.
MINT_SCRIPT = (
    _BUCKET_IN
    + """
if tokens < 1 then
  return 0
end
tokens = tokens - 1
"""
    + _BUCKET_OUT
    + "return 1\n"
)

# The bucket of a link, taken from in batches: a node takes up to ARGV[3] tokens at once after
# giving ARGV[4] back; ARGV[5] is SHARE. Returns {tokens granted, whole tokens left}.
LINK_SCRIPT = (
    _BUCKET_IN
    + """
tokens = math.min(burst, tokens + tonumber(ARGV[4]))
local whole = math.floor(tokens)
local grant = math.min(tonumber(ARGV[3]), whole, math.max(1, math.floor(whole / tonumber(ARGV[5]))))
if grant < 0 then
  grant = 0
end
tokens = tokens - grant
"""
    + _BUCKET_OUT
    + "return {grant, math.floor(tokens)}\n"
)


class _Lease:
    """The tokens of one link's shared bucket this node holds, and the request for more."""

    __slots__ = ("burst", "fetch", "left", "per_ms", "spent", "timer", "tokens", "until", "waiting")

    def __init__(self, burst: int, per_ms: int) -> None:
        self.burst, self.per_ms = burst, per_ms
        self.tokens = 0  # granted, not spent yet
        self.until = 0.0  # (monotonic) when the unspent ones go back
        self.spent = 0  # of the last batch: the next one is sized on it
        self.left = 1  # whole tokens the bucket held after the last grant
        self.waiting = 0  # joins waiting for a batch
        self.fetch: asyncio.Task[int | None] | None = None
        self.timer: asyncio.TimerHandle | None = None


class EdgeLimits:
    """The cluster-wide half of `signaling.guard.Guard`'s budgets (`SharedLimits`): per address,
    and new identities per link."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._open = node.r.register_script(OPEN_SCRIPT)
        self._close = node.r.register_script(CLOSE_SCRIPT)
        self._mint = node.r.register_script(MINT_SCRIPT)
        self._link = node.r.register_script(LINK_SCRIPT)
        self._leases: dict[str, _Lease] = {}
        self._closing: set[asyncio.Task[Any]] = set()

    async def _call(self, script, keys: list[str], args: list[object]) -> int | None:  # type: ignore[no-untyped-def]
        got = await self._run(script, keys, args)
        return None if got is None else int(got)

    async def _run(self, script, keys: list[str], args: list[object]) -> Any:  # type: ignore[no-untyped-def]
        # (Not `healthy`, which is False until the first heartbeat: a node serves before that.)
        if self.node.down:
            return None
        try:
            return await asyncio.wait_for(script(keys=keys, args=args), TIMEOUT_S)
        except TimeoutError as exc:
            self.node.failed(exc)
            # The script may have run: an open is taken back when its websocket closes (the
            # count errs low by one rather than high until this node stops).
            return TIMED_OUT
        except (RedisError, OSError) as exc:
            self.node.failed(exc)
            return None

    async def open(self, address: str, limit: int) -> bool | None:
        """Count a websocket from `address` if the cluster holds fewer than `limit`: True if
        counted, False if at the limit, None if Redis did not answer (nothing counted)."""
        n = await self._call(self._open, [k_open(address)], [self.node.id, limit, OPEN_TTL_MS, k_alive("")])
        if n == TIMED_OUT:
            return True  # not refused, and taken back on close
        return None if n is None else n >= 0

    def close(self, address: str) -> None:
        """Take back a websocket `open` counted (in the background: a close does not wait)."""
        self._background(self._close_one(address))

    def _background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_one(self, address: str) -> None:
        # Even while unhealthy: a decrement lost here would count against the address until this
        # node dies. (If it is lost anyway, the hash's TTL ends it.)
        try:
            await asyncio.wait_for(self._close(keys=[k_open(address)], args=[self.node.id]), 5.0)
        except (RedisError, OSError, TimeoutError) as exc:
            self.node.failed(exc)

    async def mint(self, session_id: str, address: str, burst: int, per_ms: int) -> bool | None:
        """Take a token for a new identity from `address` on the session's link (a bucket of
        `burst`, refilled over `per_ms`): True if allowed, False if spent, None if Redis did not answer."""
        n = await self._call(self._mint, [k_mints(session_id, address)], [burst, per_ms])
        return None if n is None or n == TIMED_OUT else n == 1

    async def link(self, session_id: str, burst: int, per_ms: int) -> bool | None:
        """Take a token for a new identity on the session's link (a bucket of `burst`, refilled
        over `per_ms`, for the whole cluster): True if allowed, False if spent, None if Redis did
        not answer. Without an await while this node holds tokens of the link."""
        lease = self._leases.get(session_id)
        if lease is not None and lease.tokens > 0 and time.monotonic() < lease.until:
            lease.tokens -= 1
            lease.spent += 1
            return True
        if self.node.down:
            return None
        if lease is None:
            lease = self._leases[session_id] = _Lease(burst, per_ms)
        lease.waiting += 1
        try:
            while True:
                if lease.fetch is None:
                    lease.fetch = asyncio.get_running_loop().create_task(self._grant(session_id, lease))
                # Shielded: the batch is shared by every join waiting for it.
                granted = await asyncio.shield(lease.fetch)
                if lease.tokens > 0 and time.monotonic() < lease.until:
                    lease.tokens -= 1
                    lease.spent += 1
                    return True
                if granted is None:
                    return None
                if lease.left < 1:  # the bucket is empty (not only this batch)
                    return False
                # The batch went to the joins ahead (or was a quarter of the bucket): another.
        finally:
            lease.waiting -= 1

    async def _grant(self, session_id: str, lease: _Lease) -> int | None:
        """One batch of the link's tokens into `lease` (giving back the expired ones it holds);
        how many, or None if Redis did not answer."""
        back, lease.tokens = lease.tokens, 0
        want = min(BATCH_MAX, max(1, lease.waiting + 2 * lease.spent))
        began = time.monotonic()
        try:
            got = await self._run(
                self._link, [k_link_mints(session_id)], [lease.burst, lease.per_ms, want, back, SHARE]
            )
            if got is None or got == TIMED_OUT:
                return None  # (the tokens given back are lost, or back: either way not held)
            lease.tokens, lease.left = int(got[0]), int(got[1])
            lease.until, lease.spent = began + LEASE_S, 0
            return lease.tokens
        finally:
            lease.fetch = None
            if lease.timer is not None:
                lease.timer.cancel()
            lease.timer = asyncio.get_running_loop().call_later(LEASE_S, self._expire, session_id, lease)

    def _expire(self, session_id: str, lease: _Lease) -> None:
        """A batch's time is up: its unspent tokens go back to the link's bucket, and a link
        without joins waiting is forgotten."""
        lease.timer = None
        if lease.fetch is not None:
            return  # the next batch is on its way, and gives them back
        if lease.tokens > 0:
            back, lease.tokens = lease.tokens, 0
            self._background(self._give_back(session_id, lease, back))
        if not lease.waiting and self._leases.get(session_id) is lease:
            del self._leases[session_id]

    async def _give_back(self, session_id: str, lease: _Lease, n: int) -> None:
        await self._run(self._link, [k_link_mints(session_id)], [lease.burst, lease.per_ms, 0, n, SHARE])
