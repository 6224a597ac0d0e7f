"""Guards of the real-time edge against one hostile or broken client: connections per network
address, new identities per address and per link, and file descriptors (the log-line throttle they
share with the HTTP side is `classroom/throttle.py`).

A learner link is shared by a whole class, so it proves nothing about who holds it: the person is
the participant token a browser keeps, and the next best thing is the network address. Limits per
address are configurable (environment, below) because a school behind one NAT shows many people
at one address, and a reverse proxy on the same host shows everyone at loopback.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from classroom.core.limits import Rate
from classroom.core.ratelimit import TokenBucket

log = logging.getLogger(__name__)

LOOPBACK = frozenset({"127.0.0.1", "::1"})
JOINS_PER_ADDRESS = Rate(30, 60_000)
# The backstop of new identities per session link (`--joins-per-link`): that many, refilled over a
# minute (a large class joins within a minute).
JOINS_PER_LINK = Rate(10_000, 60_000)
# The garbage budget of one connection (`--bad-packets`): that many packets that do not decode,
# refilled over 10 s.
BAD_PACKETS = Rate(20, 10_000)


def rate_setting(n: int, per_ms: int) -> Rate | None:
    """A budget from its setting (classroom/config.py): `n`, refilled over `per_ms` (the window of
    the budget's default above); 0 or less: no limit."""
    return Rate(n, per_ms) if n > 0 else None


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def _env_addresses(name: str, default: frozenset[str]) -> frozenset[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return frozenset(a.strip() for a in value.split(",") if a.strip())


class SharedLimits(Protocol):
    """Per-address counts shared by the nodes of a cluster (`classroom.cluster.limits`); each
    call answers None when they cannot be reached, and the local count alone decides."""

    async def open(self, address: str, limit: int) -> bool | None: ...

    def close(self, address: str) -> None: ...

    async def mint(self, session_id: str, address: str, burst: int, per_ms: int) -> bool | None: ...

    async def link(self, session_id: str, burst: int, per_ms: int) -> bool | None: ...


@dataclass
class Guard:
    """Per-address bookkeeping of the socket edge. Every bound is an attribute, read from the
    environment at start (documented in docs/protocol.md, section 8)."""

    # Open websocket connections from one address (0: no limit).
    connections_per_address: int = field(
        default_factory=lambda: _env_int("CLASSCAST_MAX_CONNECTIONS_PER_IP", 200)
    )
    # Addresses no per-address limit applies to: by default loopback, where a reverse proxy on the
    # same host would put every client. Empty it (CLASSCAST_UNLIMITED_IPS="") to limit loopback too.
    unlimited: frozenset[str] = field(
        default_factory=lambda: _env_addresses("CLASSCAST_UNLIMITED_IPS", LOOPBACK)
    )
    # New identities (a `join` with a link token) per address and session, and per session (link;
    # None: no limit; the server sets it from `--joins-per-link` / CLASSCAST_JOINS_PER_LINK).
    joins_per_address: Rate = JOINS_PER_ADDRESS
    joins_per_link: Rate | None = JOINS_PER_LINK
    # A connected socket that has not joined after this many seconds is closed.
    join_timeout: float = field(default_factory=lambda: float(_env_int("CLASSCAST_JOIN_TIMEOUT", 10)))
    # Packets that do not decode, per connection, before it is closed (None: never closed); the
    # server sets it from `--bad-packets` / CLASSCAST_BAD_PACKETS (classroom/config.py).
    bad_packets: Rate | None = BAD_PACKETS
    # File descriptors kept free: new websockets are refused beyond the soft limit minus this, so
    # the health check, the log and the replay always have some.
    fd_reserve: int = 64
    # Cluster mode: the same per-address budgets counted across the nodes, checked after the
    # local ones (which stay the fast first line, and the only one in embedded mode).
    shared: SharedLimits | None = None

    def __post_init__(self) -> None:
        self.open: dict[str, int] = {}  # address -> open websockets
        self.total = 0
        self._joins: dict[str, TokenBucket] = {}
        self.fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

    @staticmethod
    def address(environ: dict[str, Any]) -> str:
        """The peer's address (engine.io's aiohttp driver leaves REMOTE_ADDR at a fixed value)."""
        request = environ.get("aiohttp.request")
        peer = request.transport.get_extra_info("peername") if request and request.transport else None
        return str(peer[0]) if peer else "?"

    def limited(self, address: str) -> bool:
        return address not in self.unlimited

    def admit(self, address: str) -> str | None:
        """Count a new websocket, or say why it is refused."""
        if self._fds_left() <= self.fd_reserve:
            return "the server is at its limit of open connections; try again shortly"
        n = self.open.get(address, 0)
        if self.connections_per_address and n >= self.connections_per_address and self.limited(address):
            return f"too many connections from your address (at most {self.connections_per_address})"
        self.open[address] = n + 1
        self.total += 1
        return None

    async def admit_everywhere(self, address: str) -> tuple[str | None, bool]:
        """`admit`, then the cluster's count of the address (if any): why it is refused (None:
        admitted), and whether the cluster counted it (then `release` it with `shared=True`)."""
        refused = self.admit(address)
        if refused is not None or self.shared is None or not self.connections_per_address:
            return refused, False
        if not self.limited(address):
            return None, False
        counted = await self.shared.open(address, self.connections_per_address)
        if counted is False:
            self.release(address)
            return f"too many connections from your address (at most {self.connections_per_address})", False
        return None, bool(counted)

    def _fds_left(self) -> int:
        """Descriptors still free: counted (files, logs and listeners included) only once the
        connections alone fill half of the limit, so a roomy limit costs nothing per connect."""
        if self.fd_limit == resource.RLIM_INFINITY or self.total < self.fd_limit // 2:
            return self.fd_limit
        try:
            used = len(os.listdir("/proc/self/fd"))
        except OSError:
            used = self.total + self.fd_reserve
        return self.fd_limit - used

    def release(self, address: str, shared: bool = False) -> None:
        if shared and self.shared is not None:
            self.shared.close(address)
        n = self.open.get(address, 0) - 1
        if n > 0:
            self.open[address] = n
        else:
            self.open.pop(address, None)
        self.total = max(0, self.total - 1)

    def may_mint(self, session_id: str, address: str | None) -> bool:
        """Spend a token for a new identity from `address` (None: not counted) on `session_id`'s
        link, both or none."""
        now = int(time.monotonic() * 1000)
        keys = [(f"l:{session_id}", self.joins_per_link)] if self.joins_per_link is not None else []
        if address is not None and self.limited(address):
            keys.append((f"a:{session_id}:{address}", self.joins_per_address))
        buckets = []
        for key, rate in keys:
            bucket = self._joins.get(key)
            if bucket is None:
                if len(self._joins) > 100_000:
                    self._joins.clear()  # a bound on memory; full buckets are the default anyway
                bucket = self._joins[key] = TokenBucket(rate, now)
            if not bucket.can(now):
                return False
            buckets.append(bucket)
        for bucket in buckets:
            bucket.take(now)
        return True

    async def may_mint_everywhere(self, session_id: str, address: str | None) -> bool:
        """`may_mint`, then the cluster's counts: new identities from `address` on the link (a
        round trip), then on the link from anywhere (usually none: `shared.link` spends tokens
        this node was granted in a batch). The address first, so one address refused for its own
        joins spends nothing of the class's link."""
        if not self.may_mint(session_id, address):
            return False
        if self.shared is None:
            return True
        if address is not None and self.limited(address):
            rate = self.joins_per_address
            if await self.shared.mint(session_id, address, rate.burst, rate.per_ms) is False:
                return False
        link = self.joins_per_link
        return link is None or await self.shared.link(session_id, link.burst, link.per_ms) is not False


def raise_nofile() -> tuple[int, int]:
    """Raise the soft limit of open files to the hard limit where allowed (a class is one socket
    per learner, and 1024, a common default, is a small class); returns (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and (hard == resource.RLIM_INFINITY or soft < hard):
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open files limit from %s to %s: %s", soft, target, exc)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        log.warning("open files limit is %s: at most about %s connections", soft, max(0, soft - 100))
    return soft, hard
