"""The context a command's `decide` runs in: who asks, when, and where its events go."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import CommandError
from .events import Event
from .limits import ADDRESS_SHARE, Rate, Rates
from .ratelimit import TokenBucket

if TYPE_CHECKING:
    from .state import SessionState


class Context:
    """Collects the events one command produces, folding each into the state as it is made.

    Folding immediately means a command that yields several events sees its own earlier effects,
    and the state after `decide` is exactly the fold of the stream.
    """

    def __init__(
        self,
        state: SessionState,
        actor: dict[str, Any],
        t: int,
        buckets: dict[tuple[str, str], TokenBucket],
        rates: Rates,
        address: str | None = None,
    ) -> None:
        self.state = state
        self.actor = actor
        self.t = t
        self.events: list[Event] = []
        self._buckets = buckets
        self.rates = rates
        self.address = address  # where the actor connects from, if the edge says so

    @property
    def actor_id(self) -> str:
        return self.actor["id"]

    @property
    def is_trainer(self) -> bool:
        return self.actor["role"] == "trainer"

    @property
    def next_seq(self) -> int:
        return self.state.seq + 1

    def emit(self, type_: str, data: dict[str, Any], *, actor: str | None = "") -> Event:
        from .state import apply

        event = Event(self.next_seq, self.t, type_, self.actor_id if actor == "" else actor, data)
        apply(self.state, event)
        self.events.append(event)
        return event

    def limit(self, kind: str, rate: Rate, n: int = 1) -> None:
        """Spend `n` tokens of the learner's `kind` bucket or refuse with `rate_limited`.

        Trainers are exempt: they hold the trainer link and are bounded by the transport's
        per-connection flood guard instead."""
        self.limits((kind, rate, n))

    def limits(self, *spends: tuple[str, Rate, int]) -> None:
        """Spend from several buckets at once: all or none (a refusal spends nothing). Each kind
        has a bucket per participant and, when the actor's address is known, one per address
        shared by the learners there (ADDRESS_SHARE times as large)."""
        if self.is_trainer:
            return
        buckets = []
        owners = [self.actor_id] if self.address is None else [self.actor_id, "@" + self.address]
        for kind, rate, n in spends:
            for owner in owners:
                key = (owner, kind)
                bucket = self._buckets.get(key)
                if bucket is None:
                    shared = Rate(rate.burst * ADDRESS_SHARE, rate.per_ms) if owner[0] == "@" else rate
                    bucket = self._buckets[key] = TokenBucket(shared, self.t)
                if not bucket.can(self.t, n):
                    what = "whiteboard points" if kind == "points" else f"{kind} commands"
                    where = " from your network address" if owner[0] == "@" else ""
                    raise CommandError("rate_limited", f"too many {what}{where}; try again shortly")
                buckets.append((bucket, n))
        for bucket, n in buckets:
            bucket.take(self.t, n)
