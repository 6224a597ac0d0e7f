"""Q&A: questions (optionally anonymous to other learners), upvotes, and trainer moderation."""

from __future__ import annotations

from typing import Any

from .context import Context
from .errors import CommandError
from .events import Audience, Event
from .limits import ANSWER_LEN, QUESTION_LEN
from .registry import LEARNER, TRAINER, command, folds, projects, redacted, require
from .state import SessionState, section
from .validation import Payload, Text


class Ask(Payload):
    text: Text(QUESTION_LEN)  # type: ignore[valid-type]
    anonymous: bool = False


class Target(Payload):
    question_id: str


class Answer(Payload):
    question_id: str
    text: Text(ANSWER_LEN) | None = None  # type: ignore[valid-type]


def _question(ctx: Context, question_id: str) -> dict[str, Any]:
    q = ctx.state.questions.get(question_id)
    if q is None:
        raise CommandError("not_found", f"no question {question_id!r}")
    return q


@command("qa.ask", Ask)
def ask(ctx: Context, cmd: Ask) -> dict[str, Any]:
    ctx.limit("question", ctx.rates.question)
    qid = f"q{ctx.next_seq}"
    ctx.emit(
        "qa.asked",
        {"id": qid, "text": cmd.text, "anonymous": cmd.anonymous, "name": ctx.actor["name"]},
    )
    return {"id": qid}


def _vote(ctx: Context, cmd: Target, up: bool) -> dict[str, Any]:
    q = _question(ctx, cmd.question_id)
    require(q["author"] != ctx.actor_id, "forbidden", "you cannot vote on your own question")
    require(q["status"] == "open", "question_closed", "the question is no longer open")
    voted = ctx.actor_id in q["upvoters"]
    if voted != up:
        votes = q["votes"] + (1 if up else -1)
        ctx.emit("qa.upvoted" if up else "qa.unvoted", {"id": q["id"], "votes": votes})
    return {"votes": q["votes"]}


@command("qa.upvote", Target)
def upvote(ctx: Context, cmd: Target) -> dict[str, Any]:
    return _vote(ctx, cmd, True)


@command("qa.unvote", Target)
def unvote(ctx: Context, cmd: Target) -> dict[str, Any]:
    return _vote(ctx, cmd, False)


@command("qa.answer", Answer, roles=(TRAINER,))
def answer(ctx: Context, cmd: Answer) -> None:
    q = _question(ctx, cmd.question_id)
    if q["status"] == "answered" and q["answer"] == cmd.text:
        return
    ctx.emit("qa.answered", {"id": q["id"], "answer": cmd.text, "by": ctx.actor["name"]})


@command("qa.dismiss", Target, roles=(TRAINER,))
def dismiss(ctx: Context, cmd: Target) -> None:
    q = _question(ctx, cmd.question_id)
    if q["status"] != "dismissed":
        ctx.emit("qa.dismissed", {"id": q["id"]})


@command("qa.reopen", Target, roles=(TRAINER,))
def reopen(ctx: Context, cmd: Target) -> None:
    q = _question(ctx, cmd.question_id)
    if q["status"] != "open":
        ctx.emit("qa.reopened", {"id": q["id"]})


@projects("qa.asked")
def _project_asked(event: Event, audience: Audience, is_actor: bool) -> dict[str, Any] | None:
    if audience == TRAINER or is_actor or not event.data["anonymous"]:
        return event.wire()
    return redacted(event, actor=None, **{**event.data, "name": None})


@projects("qa.upvoted", "qa.unvoted")
def _project_vote(event: Event, audience: Audience, is_actor: bool) -> dict[str, Any] | None:
    # Learners see the new count, and only their own upvotes.
    if audience == TRAINER or is_actor:
        return event.wire()
    return redacted(event, actor=None, **event.data)


@folds("qa.asked")
def _asked(state: SessionState, event: Event) -> None:
    d = event.data
    state.questions[d["id"]] = {
        "id": d["id"],
        "text": d["text"],
        "anonymous": d["anonymous"],
        "author": event.actor,
        "name": d["name"],
        "status": "open",
        "votes": 0,
        "upvoters": set(),
        "answer": None,
        "answered_by": None,
        "t": event.t,
        "seq": event.seq,
    }


@folds("qa.upvoted", "qa.unvoted")
def _voted(state: SessionState, event: Event) -> None:
    q = state.questions.get(event.data["id"])
    if q is None:
        return
    q["votes"] = event.data["votes"]
    if event.actor is not None:
        if event.type == "qa.upvoted":
            q["upvoters"].add(event.actor)
        else:
            q["upvoters"].discard(event.actor)


@folds("qa.answered")
def _answered(state: SessionState, event: Event) -> None:
    q = state.questions.get(event.data["id"])
    if q is None:
        return
    q.update(status="answered", answer=event.data["answer"], answered_by=event.data["by"])


@folds("qa.dismissed", "qa.reopened")
def _status(state: SessionState, event: Event) -> None:
    q = state.questions.get(event.data["id"])
    if q is not None:
        q["status"] = "dismissed" if event.type == "qa.dismissed" else "open"


_STATUS_ORDER = {"open": 0, "answered": 1, "dismissed": 2}


def order_key(q: dict[str, Any]) -> tuple[int, int, int]:
    """Open questions first, most votes first, then oldest first."""
    return (_STATUS_ORDER[q["status"]], -q["votes"] if q["status"] == "open" else 0, q["seq"])


def _view(state: SessionState, audience: Audience, viewer: str | None) -> list[dict[str, Any]]:
    out = []
    for q in sorted(state.questions.values(), key=order_key):
        hidden = audience == LEARNER and q["anonymous"] and q["author"] != viewer
        out.append(
            {
                "id": q["id"],
                "text": q["text"],
                "anonymous": q["anonymous"],
                "author": None if hidden else q["author"],
                "name": None if hidden else q["name"],
                "status": q["status"],
                "votes": q["votes"],
                "upvoted": viewer in q["upvoters"],
                "answer": q["answer"],
                "answered_by": q["answered_by"],
                "t": q["t"],
                "seq": q["seq"],
            }
        )
    return out


def _load(state: SessionState, questions: list[dict[str, Any]], viewer: str | None) -> None:
    state.questions = {}
    for q in sorted(questions, key=lambda q: q["seq"]):
        upvoters = {viewer} if q["upvoted"] and viewer else set()
        state.questions[q["id"]] = {
            **{k: v for k, v in q.items() if k != "upvoted"},
            "upvoters": upvoters,
        }


section("questions", _view, _load)
