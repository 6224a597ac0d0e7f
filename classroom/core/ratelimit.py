"""A token bucket on the caller's clock, so the core stays pure and testable."""

from __future__ import annotations

from .limits import Rate


class TokenBucket:
    __slots__ = ("last", "rate", "tokens")

    def __init__(self, rate: Rate, now_ms: int) -> None:
        self.rate = rate
        self.tokens = float(rate.burst)
        self.last = now_ms

    def take(self, now_ms: int) -> bool:
        elapsed = max(0, now_ms - self.last)
        self.last = now_ms
        refill = elapsed * self.rate.burst / self.rate.per_ms
        self.tokens = min(float(self.rate.burst), self.tokens + refill)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
