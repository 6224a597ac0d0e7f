"""How features plug into the core: commands (decide), folds (apply) and projections.

Each feature module registers its pieces with the decorators below at import time; the session
core and the state fold look them up by name. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import CommandError
from .events import Audience, Event
from .validation import Payload

if TYPE_CHECKING:
    from .context import Context
    from .state import SessionState

TRAINER = "trainer"
LEARNER = "learner"
ROLES = (TRAINER, LEARNER)

Decide = Callable[["Context", Any], "dict[str, Any] | None"]
Fold = Callable[["SessionState", Event], None]
Project = Callable[[Event, Audience, bool], "dict[str, Any] | None"]


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    model: type[Payload]
    decide: Decide
    roles: frozenset[str]
    needs_live: bool


COMMANDS: dict[str, Command] = {}
FOLDS: dict[str, Fold] = {}
PROJECTIONS: dict[str, Project] = {}


def command(
    name: str, model: type[Payload], *, roles: tuple[str, ...] = ROLES, live: bool = True
) -> Callable[[Decide], Decide]:
    """Register `decide(ctx, payload) -> reply extras` for the command `name`."""

    def register(fn: Decide) -> Decide:
        assert name not in COMMANDS, name
        COMMANDS[name] = Command(name, model, fn, frozenset(roles), live)
        return fn

    return register


def folds(*types: str) -> Callable[[Fold], Fold]:
    """Register how events of these types change the state."""

    def register(fn: Fold) -> Fold:
        for t in types:
            assert t not in FOLDS, t
            FOLDS[t] = fn
        return fn

    return register


def projects(*types: str) -> Callable[[Project], Project]:
    """Register what each audience may see of these events (default: everything)."""

    def register(fn: Project) -> Project:
        for t in types:
            PROJECTIONS[t] = fn
        return fn

    return register


def project(event: Event, audience: Audience, is_actor: bool = False) -> dict[str, Any] | None:
    """The wire form of `event` for `audience`; None when that audience must not see it.

    Returns the very same dict as `event.wire()` when nothing is hidden, so callers can tell by
    identity whether an audience's copy differs from the full event.
    """
    fn = PROJECTIONS.get(event.type)
    if fn is None:
        return event.wire()
    return fn(event, audience, is_actor)


def redacted(event: Event, *, actor: str | None = None, **data: Any) -> dict[str, Any]:
    """A copy of the event's wire form with a replaced actor and data."""
    return {"seq": event.seq, "t": event.t, "type": event.type, "actor": actor, "data": data}


def require(condition: bool, code: str, message: str) -> None:
    if not condition:
        raise CommandError(code, message)
