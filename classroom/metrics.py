"""Prometheus metrics of this node (`GET /metrics`, admin key required).

Defined once here, fed where things happen, and cheap on hot paths: counters move once per command
and once per fan-out batch (by how many deliveries it made), never per recipient. Gauges that
describe the node (connections, sessions, the recorder's backlog) are read when scraped, from
callbacks the composition root plugs in (`observe`). The Redis metrics are fed by cluster mode.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

# Latency buckets from a fraction of a millisecond (a loopback write) to seconds (a stalled disk).
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

CONNECTIONS = Gauge("classcast_connections", "Socket.IO connections open on this node")
SESSIONS = Gauge("classcast_sessions_owned", "Sessions this node serves (runs the session core of)")
COMMANDS = Counter("classcast_commands", "Commands handled on this node, by result", ["result"])
COMMANDS_OK = COMMANDS.labels("ok")
COMMANDS_ERROR = COMMANDS.labels("error")
DELIVERIES = Counter(
    "classcast_deliveries",
    "Event frames written to connections (a batch of k events to n connections counts k * n)",
)
FANOUT_SECONDS = Histogram(
    "classcast_fanout_seconds",
    "From an event queued in a session's outbox to its batch written to every connection",
    buckets=_SECONDS,
)
RECORDER_FLUSH_SECONDS = Histogram(
    "classcast_recorder_flush_seconds",
    "One recorder flush: write and fsync of every pending session",
    buckets=_SECONDS,
)
RECORDER_BACKLOG = Gauge(
    "classcast_recorder_backlog_bytes", "Bytes of events queued for the log, not yet durable"
)
REDIS_SECONDS = Histogram("classcast_redis_seconds", "Redis round trips (cluster mode)", buckets=_SECONDS)
REDIS_ERRORS = Counter("classcast_redis_errors", "Redis commands that failed (cluster mode)")
PROCESS = Gauge("classcast_process_id", "This process's id (which worker of `--workers` answered)")
DRAINING = Gauge("classcast_draining", "1 while this node drains (SIGTERM received), else 0")


def observe(
    connections: Callable[[], float], sessions: Callable[[], float], backlog: Callable[[], float]
) -> None:
    """Read these gauges from the running server when scraped (the latest server built in this
    process wins, which is the only one outside tests)."""
    PROCESS.set(os.getpid())  # here, not at import: `--workers` forks after importing this
    CONNECTIONS.set_function(connections)
    SESSIONS.set_function(sessions)
    RECORDER_BACKLOG.set_function(backlog)


def exposition() -> tuple[bytes, str]:
    """The text exposition format of every metric, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
