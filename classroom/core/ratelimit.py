"""A token bucket on the caller's clock, so the core stays pure and testable."""

from __future__ import annotations

from .limits import Rate


class TokenBucket:
    __slots__ = ("last", "rate", "tokens")

    def __init__(self, rate: Rate, now_ms: int) -> None:
        self.rate = rate
        self.tokens = float(rate.burst)
        self.last = now_ms

    def _refill(self, now_ms: int) -> None:
        elapsed = max(0, now_ms - self.last)
        self.last = max(self.last, now_ms)
        refill = elapsed * self.rate.burst / self.rate.per_ms
        self.tokens = min(float(self.rate.burst), self.tokens + refill)

    def can(self, now_ms: int, n: int = 1) -> bool:
        """Whether `n` tokens are there now (takes none)."""
        self._refill(now_ms)
        return self.tokens >= n

    def take(self, now_ms: int, n: int = 1) -> bool:
        self._refill(now_ms)
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False
