"""The Redis client of a node, and the answer when Redis (or a node) cannot be reached."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ConstantBackoff

from ..core import CommandError


def connect(url: str) -> aioredis.Redis:
    """An asyncio client that fails fast (one quick retry) so callers can say
    `temporarily_unavailable` instead of hanging while Redis is away."""
    return aioredis.from_url(
        url,
        socket_timeout=3,
        socket_connect_timeout=2,
        retry=Retry(ConstantBackoff(0.05), 1),
    )


def unavailable(what: str = "the cluster's Redis cannot be reached") -> CommandError:
    return CommandError(
        "temporarily_unavailable", f"{what}; the command was not acknowledged, try again shortly"
    )
