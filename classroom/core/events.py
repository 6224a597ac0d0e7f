"""Events: the facts in a session's one ordered stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Audience = Literal["trainer", "learner"]
AUDIENCES: tuple[Audience, ...] = ("trainer", "learner")


@dataclass(slots=True)
class Event:
    """`seq` counts from 1 without gaps; `t` is ms since the session went live."""

    seq: int
    t: int
    type: str
    actor: str | None
    data: dict[str, Any]
    _wire: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def wire(self) -> dict[str, Any]:
        """The full event as sent on the wire and written to the log (built once)."""
        if self._wire is None:
            self._wire = {
                "seq": self.seq,
                "t": self.t,
                "type": self.type,
                "actor": self.actor,
                "data": self.data,
            }
        return self._wire

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Event:
        return cls(d["seq"], d["t"], d["type"], d.get("actor"), d.get("data") or {})
