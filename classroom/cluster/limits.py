"""The edge's per-address budgets counted across the cluster (issue 11): open websockets and new
identities per address, so a client spreading its connections over N nodes does not get N times
each budget.

- **Open websockets**: the hash `cc:open:<address>` holds, per node id, how many websockets that
  node has open from the address. A node adds one before it accepts a websocket, in a Lua script
  that first sums the fields of the nodes still alive (their heartbeat key `cc:node:<id>`
  exists) and drops the others: a node that died without closing its sockets stops counting
  within its heartbeat's TTL (`ALIVE_MS`), with no per-connection refresh. It takes one off when
  the websocket closes.
- **New identities**: a token bucket per address and session, `cc:mint:<session>:<address>`,
  the same rate as the local one, taken in one Lua script on Redis's clock (the hash expires once
  it would be full again).
- **Redis unreachable or slow** (no answer in `TIMEOUT_S`, or the node's heartbeat failed and has
  not succeeded since): `None`, and the node falls back to its local limits (a client then gets up
  to N times a budget again) rather than refusing everyone. A websocket whose count timed out is
  taken off when it closes anyway (the script may have run).
"""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError

from .keys import k_alive, k_mints, k_open
from .node import Node

TIMEOUT_S = 2.0
TIMED_OUT = -2
OPEN_TTL_MS = 24 * 3600 * 1000  # an address's hash outlives its last change by this long at most

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

# A token bucket like the local one (`classroom.core.ratelimit.TokenBucket`) on Redis's clock:
# KEYS[1] the bucket; ARGV: burst, refill time (ms). Returns 1 if a token was taken, else 0.
MINT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local burst = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * burst / per)
if tokens < 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], per)
return 1
"""


class AddressLimits:
    """The cluster-wide half of `signaling.guard.Guard`'s per-address budgets (`SharedLimits`)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._open = node.r.register_script(OPEN_SCRIPT)
        self._close = node.r.register_script(CLOSE_SCRIPT)
        self._mint = node.r.register_script(MINT_SCRIPT)
        self._closing: set[asyncio.Task[None]] = set()

    async def _call(self, script, keys: list[str], args: list[object]) -> int | None:  # type: ignore[no-untyped-def]
        # (Not `healthy`, which is False until the first heartbeat: a node serves before that.)
        if self.node.down:
            return None
        try:
            return int(await asyncio.wait_for(script(keys=keys, args=args), TIMEOUT_S))
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
        task = asyncio.get_running_loop().create_task(self._close_one(address))
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
