"""Public chat: plain-text messages, deletion by trainers, refusal for muted learners."""

from __future__ import annotations

from typing import Any

from .context import Context
from .events import Audience, Event
from .limits import CHAT_LEN
from .registry import TRAINER, command, folds, require
from .state import SessionState, section
from .validation import Payload, Text


class Send(Payload):
    text: Text(CHAT_LEN)  # type: ignore[valid-type]


class Delete(Payload):
    message_id: str


@command("chat.send", Send)
def send(ctx: Context, cmd: Send) -> dict[str, Any]:
    require(not ctx.actor["muted"], "muted", "a trainer has muted you in chat")
    ctx.limit("chat", ctx.rates.chat)
    event = ctx.emit(
        "chat.message",
        {
            "id": f"m{ctx.next_seq}",
            "text": cmd.text,
            "name": ctx.actor["name"],
            "role": ctx.actor["role"],
        },
    )
    return {"id": event.data["id"]}


@command("chat.delete", Delete, roles=(TRAINER,))
def delete(ctx: Context, cmd: Delete) -> None:
    require(cmd.message_id in ctx.state.chat, "not_found", f"no message {cmd.message_id!r}")
    ctx.emit("chat.deleted", {"id": cmd.message_id})


@folds("chat.message")
def _message(state: SessionState, event: Event) -> None:
    d = event.data
    state.chat[d["id"]] = {
        "id": d["id"],
        "author": event.actor,
        "name": d["name"],
        "role": d["role"],
        "text": d["text"],
        "t": event.t,
        "seq": event.seq,
    }


@folds("chat.deleted")
def _deleted(state: SessionState, event: Event) -> None:
    state.chat.pop(event.data["id"], None)


def _view(state: SessionState, audience: Audience, viewer: str | None) -> list[dict[str, Any]]:
    return [dict(m) for m in state.chat.values()]


def _load(state: SessionState, messages: list[dict[str, Any]], viewer: str | None) -> None:
    state.chat = {m["id"]: dict(m) for m in messages}


section("chat", _view, _load)
