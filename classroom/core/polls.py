"""Polls and quizzes: open, vote (and change one's vote), close, share results; and drafts, polls a
trainer prepares (before the start too) and opens later.

Learners never see live counts, and nobody but the voter sees an anonymous poll's individual votes;
the projections below enforce both on the stream, the view enforces them on snapshots. Drafts live
in their own section (`state.drafts`), never among the polls: their events go to trainers only, and
opening one emits the same `poll.opened` as a new poll, with the draft's id.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from .context import Context
from .errors import CommandError
from .events import Audience, Event
from .limits import POLL_DRAFTS_MAX, POLL_OPTION_LEN, POLL_OPTIONS_MAX, POLL_OPTIONS_MIN, POLL_QUESTION_LEN
from .registry import LEARNER, TRAINER, command, folds, projects, redacted, require
from .state import SessionState, section
from .validation import Payload, Text

Choice = int


class Open(Payload):
    question: Text(POLL_QUESTION_LEN)  # type: ignore[valid-type]
    options: list[Text(POLL_OPTION_LEN)] = Field(  # type: ignore[valid-type]
        min_length=POLL_OPTIONS_MIN, max_length=POLL_OPTIONS_MAX
    )
    multiple: bool = False
    anonymous: bool = False
    correct: list[Choice] | None = Field(default=None, max_length=POLL_OPTIONS_MAX)

    @model_validator(mode="after")
    def _check_correct(self) -> Open:
        if self.correct is not None:
            _check_choices(self.correct, len(self.options), self.multiple, "correct")
        return self


class Vote(Payload):
    poll_id: str
    choices: list[Choice] = Field(max_length=POLL_OPTIONS_MAX)


class Target(Payload):
    poll_id: str


def _check_choices(choices: list[int], n: int, multiple: bool, what: str) -> None:
    if not choices:
        raise CommandError("out_of_range", f"{what}: choose at least one option")
    if not multiple and len(choices) != 1:
        raise CommandError("out_of_range", f"{what}: this poll takes exactly one choice")
    if len(set(choices)) != len(choices):
        raise CommandError("invalid_payload", f"{what}: an option is chosen twice")
    for c in choices:
        if not 0 <= c < n:
            raise CommandError("out_of_range", f"{what}: option {c} does not exist (0..{n - 1})")


def _poll(ctx: Context, poll_id: str) -> dict[str, Any]:
    poll = ctx.state.polls.get(poll_id)
    if poll is None:
        raise CommandError("not_found", f"no poll {poll_id!r}")
    return poll


def _definition(poll_id: str, cmd: Open) -> dict[str, Any]:
    """What `poll.opened` and `poll.drafted` carry: the poll as the trainer wrote it."""
    return {
        "id": poll_id,
        "question": cmd.question,
        "options": list(cmd.options),
        "multiple": cmd.multiple,
        "anonymous": cmd.anonymous,
        "quiz": cmd.correct is not None,
        "correct": sorted(cmd.correct) if cmd.correct is not None else None,
    }


DEFINITION = ("id", "question", "options", "multiple", "anonymous", "quiz", "correct")


@command("poll.open", Open, roles=(TRAINER,))
def open_poll(ctx: Context, cmd: Open) -> dict[str, Any]:
    poll_id = f"p{ctx.next_seq}"
    ctx.emit("poll.opened", _definition(poll_id, cmd))
    return {"id": poll_id}


@command("poll.draft", Open, roles=(TRAINER,), live=False)
def draft(ctx: Context, cmd: Open) -> dict[str, Any]:
    """Prepare a poll without opening it: before the start too. Learners see nothing of it."""
    require(
        len(ctx.state.drafts) < POLL_DRAFTS_MAX,
        "limit_reached",
        f"at most {POLL_DRAFTS_MAX} draft polls: open or discard one first",
    )
    poll_id = f"p{ctx.next_seq}"
    ctx.emit("poll.drafted", _definition(poll_id, cmd))
    return {"id": poll_id}


def _draft(ctx: Context, poll_id: str) -> dict[str, Any]:
    found = ctx.state.drafts.get(poll_id)
    if found is None:
        opened = " (it is opened already)" if poll_id in ctx.state.polls else ""
        raise CommandError("not_found", f"no draft poll {poll_id[:60]!r}{opened}")
    return found


@command("poll.open_draft", Target, roles=(TRAINER,))
def open_draft(ctx: Context, cmd: Target) -> dict[str, Any]:
    """Open a prepared poll: learners get the same `poll.opened` as for a new one."""
    found = _draft(ctx, cmd.poll_id)
    ctx.emit("poll.opened", {k: found[k] for k in DEFINITION})
    return {"id": found["id"]}


@command("poll.discard", Target, roles=(TRAINER,), live=False)
def discard(ctx: Context, cmd: Target) -> None:
    found = _draft(ctx, cmd.poll_id)
    ctx.emit("poll.discarded", {"poll_id": found["id"]})


@command("poll.vote", Vote, roles=(LEARNER,))
def vote(ctx: Context, cmd: Vote) -> dict[str, Any]:
    poll = _poll(ctx, cmd.poll_id)
    require(poll["status"] == "open", "poll_closed", "the poll is closed")
    _check_choices(cmd.choices, len(poll["options"]), poll["multiple"], "choices")
    choices = sorted(cmd.choices)
    previous = poll["votes"].get(ctx.actor_id)
    if previous == choices:
        return {"choices": choices}
    counts = list(poll["counts"])
    for c in previous or ():
        counts[c] -= 1
    for c in choices:
        counts[c] += 1
    voters = poll["voters"] + (previous is None)
    ctx.emit(
        "poll.voted",
        {
            "poll_id": poll["id"],
            "anonymous": poll["anonymous"],
            "choices": choices,
            "previous": previous,
            "counts": counts,
            "voters": voters,
        },
    )
    return {"choices": choices}


@command("poll.close", Target, roles=(TRAINER,))
def close(ctx: Context, cmd: Target) -> None:
    poll = _poll(ctx, cmd.poll_id)
    require(poll["status"] == "open", "poll_closed", "the poll is already closed")
    ctx.emit("poll.closed", {"poll_id": poll["id"], "counts": poll["counts"], "voters": poll["voters"]})


@command("poll.share", Target, roles=(TRAINER,))
def share(ctx: Context, cmd: Target) -> None:
    poll = _poll(ctx, cmd.poll_id)
    require(poll["status"] == "closed", "poll_open", "close the poll before sharing its results")
    if poll["shared"]:
        return
    ctx.emit(
        "poll.shared",
        {
            "poll_id": poll["id"],
            "counts": poll["counts"],
            "voters": poll["voters"],
            "correct": poll["correct"],
        },
    )


@projects("poll.opened")
def _project_opened(event: Event, audience: Audience, is_actor: bool) -> dict[str, Any] | None:
    if audience == TRAINER or event.data["correct"] is None:
        return event.wire()
    return redacted(event, actor=event.actor, **{**event.data, "correct": None})


@projects("poll.drafted", "poll.discarded")
def _project_draft(event: Event, audience: Audience, is_actor: bool) -> dict[str, Any] | None:
    return event.wire() if audience == TRAINER else None


@projects("poll.voted")
def _project_voted(event: Event, audience: Audience, is_actor: bool) -> dict[str, Any] | None:
    d = event.data
    if audience == LEARNER:
        # A learner learns only their own vote; counts wait until the trainer shares them.
        if is_actor:
            return redacted(event, actor=event.actor, poll_id=d["poll_id"], choices=d["choices"])
        return None
    if d["anonymous"]:
        return redacted(event, actor=None, poll_id=d["poll_id"], counts=d["counts"], voters=d["voters"])
    return event.wire()


@projects("poll.closed")
def _project_closed(event: Event, audience: Audience, is_actor: bool) -> dict[str, Any] | None:
    if audience == TRAINER:
        return event.wire()
    return redacted(event, actor=event.actor, poll_id=event.data["poll_id"])


@folds("poll.drafted")
def _drafted(state: SessionState, event: Event) -> None:
    state.drafts[event.data["id"]] = {**event.data, "t": event.t, "seq": event.seq}


@folds("poll.discarded")
def _discarded(state: SessionState, event: Event) -> None:
    state.drafts.pop(event.data["poll_id"], None)


@folds("poll.opened")
def _opened(state: SessionState, event: Event) -> None:
    d = event.data
    state.drafts.pop(d["id"], None)  # an opened draft is a poll like any other from now on
    state.polls[d["id"]] = {
        **d,
        "status": "open",
        "shared": False,
        "counts": [0] * len(d["options"]),
        "voters": 0,
        "votes": {},
        "t": event.t,
        "seq": event.seq,
    }


@folds("poll.voted")
def _voted(state: SessionState, event: Event) -> None:
    poll = state.polls.get(event.data["poll_id"])
    if poll is None:
        return
    if "counts" in event.data:
        poll["counts"] = list(event.data["counts"])
        poll["voters"] = event.data["voters"]
    if event.actor is not None and "choices" in event.data:
        poll["votes"][event.actor] = list(event.data["choices"])


@folds("poll.closed")
def _closed(state: SessionState, event: Event) -> None:
    poll = state.polls.get(event.data["poll_id"])
    if poll is None:
        return
    poll["status"] = "closed"
    if "counts" in event.data:
        poll["counts"] = list(event.data["counts"])
        poll["voters"] = event.data["voters"]


@folds("poll.shared")
def _shared(state: SessionState, event: Event) -> None:
    poll = state.polls.get(event.data["poll_id"])
    if poll is None:
        return
    poll.update(
        shared=True,
        counts=list(event.data["counts"]),
        voters=event.data["voters"],
        correct=event.data["correct"],
    )


def _view_one(poll: dict[str, Any], audience: Audience, viewer: str | None) -> dict[str, Any]:
    trainer = audience == TRAINER
    visible = trainer or poll["shared"]
    return {
        "id": poll["id"],
        "question": poll["question"],
        "options": list(poll["options"]),
        "multiple": poll["multiple"],
        "anonymous": poll["anonymous"],
        "quiz": poll["quiz"],
        "correct": list(poll["correct"]) if visible and poll["correct"] is not None else None,
        "status": poll["status"],
        "shared": poll["shared"],
        "counts": list(poll["counts"]) if visible else None,
        "voters": poll["voters"] if visible else None,
        "votes": (
            {k: list(v) for k, v in poll["votes"].items()} if trainer and not poll["anonymous"] else None
        ),
        "my_choices": list(poll["votes"][viewer]) if viewer in poll["votes"] else None,
        "t": poll["t"],
        "seq": poll["seq"],
    }


def _view(state: SessionState, audience: Audience, viewer: str | None) -> list[dict[str, Any]]:
    return [_view_one(p, audience, viewer) for p in state.polls.values()]


def _load(state: SessionState, polls: list[dict[str, Any]], viewer: str | None) -> None:
    state.polls = {}
    for p in polls:
        votes = dict(p["votes"] or {})
        if viewer and p["my_choices"] is not None:
            votes[viewer] = list(p["my_choices"])
        counts = p["counts"] if p["counts"] is not None else [0] * len(p["options"])
        state.polls[p["id"]] = {
            **{k: v for k, v in p.items() if k != "my_choices"},
            "counts": list(counts),
            "voters": p["voters"] or 0,
            "votes": votes,
        }


section("polls", _view, _load)


def _view_drafts(state: SessionState, audience: Audience, viewer: str | None) -> list[dict[str, Any]]:
    if audience != TRAINER:
        return []
    return [_copy(d) for d in state.drafts.values()]


def _copy(d: dict[str, Any]) -> dict[str, Any]:
    correct = d["correct"]
    return {**d, "options": list(d["options"]), "correct": None if correct is None else list(correct)}


def _load_drafts(state: SessionState, drafts: list[dict[str, Any]], viewer: str | None) -> None:
    state.drafts = {d["id"]: _copy(d) for d in drafts}


section("drafts", _view_drafts, _load_drafts)
