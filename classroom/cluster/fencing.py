"""Leases and fencing: the Lua scripts that take, keep and free a session's lease and publish
its events only while the lease is ours and the stream ends where we left it, and the lease's
timing. Each runs atomically in Redis (registered by `Node`)."""

from __future__ import annotations

LEASE_MS = 3000  # a dead owner's sessions are taken over this long (plus replica.WATCH_S) after it died
RENEW_S = 0.75

# Take or keep a lease: free -> ours; ours -> renewed; another node's -> 0.
LEASE_SCRIPT = """
local cur = redis.call('GET', KEYS[1])
if cur == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
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
