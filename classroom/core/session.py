"""The session core: validates and authorises commands, turns them into events, folds them.

Pure and synchronous: no I/O, no clocks of its own (the caller passes `t`), no randomness beyond
ids the caller supplies. The transport, the recorder and the replay all wrap this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

# Importing the feature modules registers their commands, folds, projections and views.
# `history` bounds their snapshot sections and answers the read-only history commands.
from . import chat, history, lifecycle, media, polls, presence, qa, whiteboard  # noqa: F401
from .context import Context
from .errors import CommandError
from .events import Event
from .limits import NAME_LEN, Rates
from .ratelimit import TokenBucket
from .registry import COMMANDS, ROLES
from .state import SessionState, apply
from .validation import Name, parse

_NAME = TypeAdapter(Name(NAME_LEN))


def clean_name(name: Any) -> str:
    """A display name as the core accepts it, or CommandError."""
    if not isinstance(name, str):
        raise CommandError("invalid_payload", "name: must be a string")
    try:
        return _NAME.validate_python(name)
    except ValidationError as exc:
        msg = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
        code = "too_long" if exc.errors()[0]["type"] in ("string_too_long",) else "invalid_payload"
        raise CommandError(code, f"name: {msg}") from None


@dataclass
class Outcome:
    """What one command produced: its events (already folded) and the extra fields of its ack."""

    events: list[Event]
    reply: dict[str, Any] = field(default_factory=dict)


class SessionCore:
    def __init__(
        self,
        session_id: str,
        title: str,
        rates: Rates | None = None,
        *,
        recording: bool = True,
        state: SessionState | None = None,
    ) -> None:
        self.state = state or SessionState(session_id, title, recording="on" if recording else "off")
        self.rates = rates or Rates()
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        # Where participants connect from, as the edge tells (never in the state or the log).
        self._addresses: dict[str, str] = {}
        self._at: dict[str, set[str]] = {}  # address -> participants seen there

    def place(self, pid: str, address: str | None) -> None:
        """Say where `pid` connects from (None: nowhere worth counting, e.g. an exempt address).
        Learners at one address share rate buckets, and a new identity at an address where a
        learner is muted starts muted."""
        old = self._addresses.pop(pid, None)
        if old is not None:
            self._at.get(old, set()).discard(pid)
        if address is not None:
            self._addresses[pid] = address
            self._at.setdefault(address, set()).add(pid)

    # -- participants come and go through the transport, not through commands ------------------

    def join(self, pid: str, name: str, role: str, t: int) -> list[Event]:
        """A participant's first connection opened (or reopened after being offline)."""
        if role not in ROLES:
            raise CommandError("invalid_payload", f"role must be one of {ROLES}")
        known = self.state.participants.get(pid)
        if known is not None and known["online"] and known["name"] == name:
            return []
        ctx = self._context({"id": pid, "role": role, "name": name}, t)
        ctx.emit("participant.joined", {"id": pid, "name": name, "role": role})
        if known is None and role == "learner" and self._muted_nearby(pid):
            # A muted learner opening the link again as someone new stays muted.
            ctx.emit("participant.muted", {"id": pid}, actor=None)
        return ctx.events

    def _muted_nearby(self, pid: str) -> bool:
        address = self._addresses.get(pid)
        people = self.state.participants
        return address is not None and any(
            p != pid and people.get(p, {}).get("muted") for p in self._at.get(address, ())
        )

    def leave(self, pid: str, t: int) -> list[Event]:
        """A participant's last connection closed."""
        known = self.state.participants.get(pid)
        if known is None or not known["online"]:
            return []
        ctx = self._context(known, t)
        ctx.emit("participant.left", {"id": pid})
        return ctx.events

    def end(self, reason: str, t: int) -> list[Event]:
        """End the session on the server's own initiative (idle timeout, shutdown by an admin)."""
        if self.state.status == "ended":
            return []
        ctx = self._server(t)
        lifecycle.end_media(ctx)
        ctx.emit("session.ended", {"reason": reason}, actor=None)
        return ctx.events

    def media_tracks(self, tracks: Any, t: int) -> list[Event]:
        """The server's media layer says which tracks are live now (`media.tracks`). Nothing
        while the session is not live, or when the list is what the state already holds."""
        clean = media.clean_tracks(tracks)
        if self.state.status != "live" or clean == self.state.media["tracks"]:
            return []
        ctx = self._server(t)
        ctx.emit("media.tracks", {"tracks": clean}, actor=None)
        return ctx.events

    def _server(self, t: int) -> Context:
        return self._context({"id": None, "role": "trainer", "name": "server"}, t)

    # -- commands ------------------------------------------------------------------------------

    def execute(self, pid: str, name: str, payload: Any, t: int) -> Outcome:
        """Run one command for participant `pid`, or raise CommandError having changed nothing."""
        reply = history.run_query(self.state, pid, name, payload) if isinstance(name, str) else None
        if reply is not None:  # a read-only command (history paging): no events
            return Outcome([], reply)
        cmd = COMMANDS.get(name) if isinstance(name, str) else None
        if cmd is None:
            raise CommandError("unknown_command", f"unknown command {str(name)[:60]!r}")
        actor = self.state.participants.get(pid)
        if actor is None:
            raise CommandError("not_joined", "join the session first")
        if actor["role"] not in cmd.roles:
            raise CommandError("forbidden", f"a {actor['role']} may not use {name}")
        status = self.state.status
        if status == "ended":
            raise CommandError("session_ended", "the session has ended")
        if cmd.needs_live and status != "live":
            raise CommandError("session_not_live", "the session has not started yet")
        body = parse(cmd.model, payload)
        ctx = self._context(actor, t)
        reply = cmd.decide(ctx, body) or {}
        return Outcome(ctx.events, reply)

    def apply(self, event: Event) -> None:
        """Fold an event from the log (rebuilding after a restart)."""
        apply(self.state, event)

    def _context(self, actor: dict[str, Any], t: int) -> Context:
        address = self._addresses.get(actor["id"]) if actor.get("id") is not None else None
        return Context(self.state, actor, t, self._buckets, self.rates, address)
