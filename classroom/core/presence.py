"""Presence: who is here (role, name, online), raised hands, reactions, and chat mutes."""

from __future__ import annotations

from typing import Any, Literal

from .context import Context
from .errors import CommandError
from .events import Audience, Event
from .limits import REACTIONS
from .registry import LEARNER, TRAINER, command, folds, require
from .state import SessionState, section
from .validation import Payload

# Large sessions (`classroom/live.py`): above a size, learners get none of these events of other
# people, but a coalesced summary (counts of people online, hands, reactions per emoji) at most once a
# second. The stream, the log and trainers keep every one of them.
COALESCED = frozenset({"participant.joined", "participant.left", "hand.raised", "hand.lowered", "reaction"})


def subject(event: Event) -> str | None:
    """Who an event of COALESCED is about, when not its actor: a learner whose hand a trainer
    lowered must still hear of it in a large session."""
    target = event.data.get("id")
    return target if event.type == "hand.lowered" and target != event.actor else None


class Target(Payload):
    participant_id: str | None = None


class Empty(Payload):
    pass


class Reaction(Payload):
    emoji: Literal[REACTIONS]  # type: ignore[valid-type]


def _target(ctx: Context, participant_id: str | None) -> dict[str, Any]:
    target = ctx.state.participants.get(participant_id or ctx.actor_id)
    if target is None:
        raise CommandError("not_found", f"no participant {participant_id!r}")
    return target


@command("hand.raise", Target, roles=(LEARNER,))
def raise_hand(ctx: Context, cmd: Target) -> None:
    require(cmd.participant_id in (None, ctx.actor_id), "forbidden", "you can raise only your own hand")
    if ctx.actor["hand"]:
        return
    ctx.limit("hand", ctx.rates.hand)
    ctx.emit("hand.raised", {"id": ctx.actor_id})


@command("hand.lower", Target)
def lower_hand(ctx: Context, cmd: Target) -> None:
    target = _target(ctx, cmd.participant_id)
    require(
        target["id"] == ctx.actor_id or ctx.is_trainer,
        "forbidden",
        "only a trainer can lower someone else's hand",
    )
    if target["hand"]:
        ctx.emit("hand.lowered", {"id": target["id"]})


@command("hand.lower_all", Empty, roles=(TRAINER,))
def lower_all_hands(ctx: Context, cmd: Empty) -> dict[str, Any]:
    """One click for the trainer moving on: every raised hand lowered, one `hand.lowered` each (the
    same event as one by one, so every client and the replay fold it unchanged)."""
    raised = [pid for pid, p in ctx.state.participants.items() if p["hand"]]
    for pid in raised:
        ctx.emit("hand.lowered", {"id": pid})
    return {"lowered": len(raised)}


@command("reaction.send", Reaction)
def react(ctx: Context, cmd: Reaction) -> None:
    ctx.limit("reaction", ctx.rates.reaction)
    ctx.emit("reaction", {"id": ctx.actor_id, "emoji": cmd.emoji})


def _set_muted(ctx: Context, cmd: Target, muted: bool) -> None:
    require(cmd.participant_id is not None, "invalid_payload", "participant_id: field required")
    target = _target(ctx, cmd.participant_id)
    require(target["role"] == LEARNER, "forbidden", "only learners can be muted")
    if target["muted"] != muted:
        ctx.emit("participant.muted" if muted else "participant.unmuted", {"id": target["id"]})


@command("participant.mute", Target, roles=(TRAINER,))
def mute(ctx: Context, cmd: Target) -> None:
    _set_muted(ctx, cmd, True)


@command("participant.unmute", Target, roles=(TRAINER,))
def unmute(ctx: Context, cmd: Target) -> None:
    _set_muted(ctx, cmd, False)


@folds("participant.joined")
def _joined(state: SessionState, event: Event) -> None:
    d = event.data
    p = state.participants.get(d["id"])
    if p is None:
        state.participants[d["id"]] = {
            "id": d["id"],
            "name": d["name"],
            "role": d["role"],
            "online": True,
            "hand": False,
            "muted": False,
        }
    else:
        p.update(name=d["name"], online=True)


@folds("participant.left")
def _left(state: SessionState, event: Event) -> None:
    p = state.participants.get(event.data["id"])
    if p is not None:
        p["online"] = False


@folds("hand.raised", "hand.lowered")
def _hand(state: SessionState, event: Event) -> None:
    p = state.participants.get(event.data["id"])
    if p is not None:
        p["hand"] = event.type == "hand.raised"


@folds("participant.muted", "participant.unmuted")
def _muted(state: SessionState, event: Event) -> None:
    p = state.participants.get(event.data["id"])
    if p is not None:
        p["muted"] = event.type == "participant.muted"


def _view(state: SessionState, audience: Audience, viewer: str | None) -> list[dict[str, Any]]:
    return [dict(p) for p in state.participants.values()]


def _load(state: SessionState, people: list[dict[str, Any]], viewer: str | None) -> None:
    state.participants = {p["id"]: dict(p) for p in people}


section("participants", _view, _load)
