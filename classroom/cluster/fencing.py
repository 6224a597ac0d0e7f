"""Leases and fencing: the Lua scripts that take, keep and free a session's lease and publish
its events only while the lease is ours and the stream ends where we left it, and the lease's
timing. Each runs atomically in Redis (registered by `Node`)."""

from __future__ import annotations

LEASE_MS = 3000  # a dead owner's sessions are taken over this long (plus BEAT_S) after it died
# A node's beat: one round trip (BEAT_SCRIPT) that refreshes its heartbeat, renews the leases of
# the sessions it owns and reads those of the sessions it follows (so a lapsed lease is seen, and
# taken, within BEAT_S of lapsing).
BEAT_S = 0.5

# Take or keep a lease: free -> ours; ours -> renewed; another node's -> 0.
LEASE_SCRIPT = """
local cur = redis.call('GET', KEYS[1])
if cur == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""
# A node's beat, one round trip (`Node._beat`): its heartbeat KEYS[1] (ARGV[2] ms), then the
# leases it keeps (KEYS[2 .. ARGV[4] + 1], as LEASE_SCRIPT, for ARGV[3] ms), then the leases it
# follows (read only). Returns each lease's holder after the beat ('' when free), in KEYS' order.
BEAT_SCRIPT = """
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
local kept = tonumber(ARGV[4]) + 1
local out = {}
for i = 2, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  if i <= kept then
    if cur == false then
      redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[3])
      cur = ARGV[1]
    elseif cur == ARGV[1] then
      redis.call('PEXPIRE', KEYS[i], ARGV[3])
    end
  end
  out[i - 1] = cur or ''
end
return out
"""
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Publish events seq ARGV[4], ARGV[6], ... (payloads after each) if we hold the lease and the stream
# ends at seq ARGV[3] (or is empty): -1 lease lost, -2 the stream moved on without us.
PUBLISH_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #top > 0 and tonumber(string.match(top[1][1], '^(%d+)')) ~= tonumber(ARGV[3]) then return -2 end
for i = 4, #ARGV, 2 do
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], ARGV[i] .. '-0', 'e', ARGV[i + 1])
end
return 1
"""
