"""Cluster mode (`--redis-url`): several server processes, on one machine or many, serve the same
sessions through Redis.

- **Metadata** (`RedisStore`, `store.py`): the sessions' rows live in Redis, so every node sees
  every session.
- **One owner per session**: a lease `cc:lease:<id>` (the owning node's id, TTL `LEASE_MS`,
  renewed at every beat of the owner's node, `BEAT_S`; `fencing.py`). Only the owner runs the
  session core (`Owned`, a `LiveSession`; `owner.py`) and assigns `seq`.
- **One stream per session**: the owner publishes its events to the Redis stream
  `cc:events:<id>` with the seq as entry id (`<seq>-0`), from a Lua script that first checks the
  lease and that the stream ends at the event before (fencing: a deposed owner cannot publish).
  Only then does the owner's local log (the recorder) get the events, so the log is always a
  prefix of the stream.
- **Every node follows the stream** (`Replica`, `replica.py`): it folds the events into its own
  copy of the state (for join snapshots and resume) and hands them to its fan-out, so each event
  is encoded once per audience per node. Commands and presence of its sockets go to the owner:
  directly when this node owns the session, else through the owner's Redis list
  `cc:inbox:<node>`, with the reply in the sender's own inbox (`Node`, `node.py`).
- **Durability**: a command is acknowledged once its events are in the stream and fsynced in the
  owner's log. Run Redis with `appendonly yes` and `appendfsync always`, so a stream write that
  Redis acknowledged is on Redis's disk too; then an acknowledged event survives the loss of the
  owner (its successor reads the stream) as well as a Redis restart (the AOF).
- **The beat** (`Node._beat`): every `BEAT_S` a node makes one round trip that refreshes its
  heartbeat, renews the leases it holds and reads those of the sessions it follows.
- **Failover**: every node following a session reads the lease at each beat; when it has
  lapsed (the owner died), one takes it, rebuilds the session from its log (the data directory
  is shared) and the stream's newer events, and carries on; the other nodes send their
  participants' presence to the new owner.
- **Redis unreachable**: commands are answered `temporarily_unavailable` (nothing changed;
  `connection.py`); events already decided wait in order and are published when Redis answers
  again.

The modules: `keys.py` (Redis key names), `connection.py` (the client, `unavailable`),
`fencing.py` (lease, beat and publish Lua scripts, their timing), `codec.py` (stream entries, states,
messages), `store.py` (metadata), `node.py` (the beat, inbox, RPC), `owner.py` (`Owned`,
`StreamLog`), `replica.py` (`Replica`), `sessions.py` (`ClusterSessions`, the registry).

Nothing here imports `signaling` or `recorder`: the fan-out and the log come in through
`classroom/ports.py`, plugged in by the composition root.
"""

from __future__ import annotations

from .connection import connect, unavailable
from .keys import k_lease, k_stream
from .node import Node
from .owner import Owned, StreamLog
from .replica import Replica
from .sessions import ClusterSessions
from .store import RedisStore, create_sync, find_or_create_sync

__all__ = [
    "ClusterSessions",
    "Node",
    "Owned",
    "RedisStore",
    "Replica",
    "StreamLog",
    "connect",
    "create_sync",
    "find_or_create_sync",
    "k_lease",
    "k_stream",
    "unavailable",
]
