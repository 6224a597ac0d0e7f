"""Operating a node: readiness (`GET /readyz`), draining, and the Prometheus metrics (`GET /metrics`).

`NodeState` (the app key `NODE`) is where other parts plug in: `ready_checks` are async checks
that must pass for the node to take traffic (cluster mode registers a Redis ping), `on_drain` are
async hooks run when the node drains (cluster mode hands its sessions over there). `/healthz`
stays the liveness probe (the process answers); `/readyz` says whether to send it traffic.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import metrics
from .auth import same_secret
from .core import CommandError
from .http import bearer
from .keys import ADMIN_KEY

log = logging.getLogger(__name__)

# A readiness check returns normally when fine; False or an exception means "not ready".
ReadyCheck = Callable[[], Awaitable[Any]]
DrainHook = Callable[[], Awaitable[None]]

CHECK_TIMEOUT = 2.0  # seconds a readiness check may take before it counts as failed


DRAIN_MESSAGE = "This server is stopping; reconnecting you to another one."


@dataclass
class NodeState:
    draining: bool = False
    ready_checks: list[tuple[str, ReadyCheck]] = field(default_factory=list)
    on_drain: list[DrainHook] = field(default_factory=list)
    # Plugged in by the composition root: tell every socket to reconnect elsewhere (returns how
    # many), and how many sockets are still connected.
    tell_clients: Callable[[str], Awaitable[int]] | None = None
    refuse_new: Callable[[], None] | None = None  # from the drain's start: no new sockets
    connections: Callable[[], int] = lambda: 0

    async def problems(self) -> dict[str, str]:
        """What keeps the node from taking traffic, by name (empty: ready). Checks run at once,
        each bounded by CHECK_TIMEOUT."""
        out: dict[str, str] = {}
        if self.draining:
            out["draining"] = "the node is draining (stopping); use another"
        names = [name for name, _ in self.ready_checks]
        results = await asyncio.gather(
            *(asyncio.wait_for(check(), CHECK_TIMEOUT) for _, check in self.ready_checks),
            return_exceptions=True,
        )
        for name, result in zip(names, results, strict=True):
            if isinstance(result, TimeoutError):
                out[name] = f"no answer within {CHECK_TIMEOUT:g} s"
            elif isinstance(result, BaseException):
                out[name] = f"{type(result).__name__}: {result}"[:200]
            elif result is False:
                out[name] = "failed"
        return out

    def start_draining(self) -> None:
        self.draining = True
        metrics.DRAINING.set(1)
        if self.refuse_new is not None:
            self.refuse_new()

    async def drain(self, notice: float, grace: float) -> None:
        """SIGTERM: `/readyz` says 503 at once (and new sockets are refused); after `notice`
        seconds (time for a load balancer to take the node out), every socket is told to
        reconnect elsewhere and closed, the `on_drain` hooks run, and the sockets' leaving is
        awaited; the hooks and the wait together take at most `grace` seconds. Then the
        caller stops the server (its log flushed as in any stop)."""
        self.start_draining()
        log.info("draining: /readyz answers 503; clients are told to reconnect in %g s", notice)
        if notice > 0:
            await asyncio.sleep(notice)
        told = await self.tell_clients(DRAIN_MESSAGE) if self.tell_clients is not None else 0
        deadline = asyncio.get_running_loop().time() + grace
        try:
            await asyncio.wait_for(self.run_drain_hooks(), grace)
        except TimeoutError:
            log.warning("draining: the drain hooks did not finish within %g s", grace)
        while self.connections() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        log.info("drained: %d connections told to reconnect, %d still open", told, self.connections())

    async def run_drain_hooks(self) -> None:
        """Every `on_drain` hook, in order; one that fails is logged and the rest still run."""
        for hook in self.on_drain:
            try:
                await hook()
            except Exception:
                log.exception("a drain hook failed")


NODE = web.AppKey("node", NodeState)


async def readyz(request: web.Request) -> web.Response:
    problems = await request.app[NODE].problems()
    if problems:
        return web.json_response({"status": "unavailable", "problems": problems}, status=503)
    return web.json_response({"status": "ready"})


async def metrics_route(request: web.Request) -> web.Response:
    """The Prometheus exposition of this node, for the admin key only: the figures (sessions,
    connections) are the operator's, and a scraper sends the key as a bearer token."""
    token = bearer(request)
    if token is None:
        raise CommandError("unauthorized", "send the admin key as 'Authorization: Bearer <key>'")
    if not same_secret(token, request.app[ADMIN_KEY]):
        raise CommandError("forbidden", "the admin key is wrong")
    body, content_type = metrics.exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def setup_operations(app: web.Application) -> NodeState:
    node = app[NODE] = NodeState()
    metrics.DRAINING.set(0)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_route)
    return node
