"""Session lifecycle: created -> live -> ended, and trainer-marked moments (chapters)."""

from __future__ import annotations

from typing import Any

from .context import Context
from .errors import CommandError
from .events import Audience, Event
from .limits import TITLE_LEN
from .registry import TRAINER, command, folds, require
from .state import SessionState, section
from .validation import Payload, Text


class Empty(Payload):
    pass


class Mark(Payload):
    title: Text(TITLE_LEN)  # type: ignore[valid-type]


@command("session.start", Empty, roles=(TRAINER,), live=False)
def start(ctx: Context, _: Empty) -> None:
    if ctx.state.status == "live":
        raise CommandError("already_live", "the session is already live")
    ctx.emit("session.started", {})


@command("session.end", Empty, roles=(TRAINER,), live=False)  # also cancels one never started
def end(ctx: Context, _: Empty) -> None:
    end_media(ctx)
    ctx.emit("session.ended", {"reason": "trainer"})


def end_media(ctx: Context) -> None:
    """Live tracks end with the session: the stream says so before `session.ended`."""
    if ctx.state.media["tracks"]:
        ctx.emit("media.tracks", {"tracks": []}, actor=None)


@command("session.mark", Mark, roles=(TRAINER,))
def mark(ctx: Context, cmd: Mark) -> dict[str, Any]:
    event = ctx.emit("chapter.marked", {"id": f"c{ctx.next_seq}", "title": cmd.title})
    return {"id": event.data["id"]}


@command("recording.pause", Empty, roles=(TRAINER,))
def pause(ctx: Context, _: Empty) -> None:
    require(ctx.state.recording != "off", "recording_off", "this session is not recorded")
    if ctx.state.recording == "on":
        ctx.emit("recording.paused", {})


@command("recording.resume", Empty, roles=(TRAINER,))
def resume(ctx: Context, _: Empty) -> None:
    require(ctx.state.recording != "off", "recording_off", "this session is not recorded")
    if ctx.state.recording == "paused":
        ctx.emit("recording.resumed", {})


@folds("recording.paused", "recording.resumed")
def _recording(state: SessionState, event: Event) -> None:
    state.recording = "paused" if event.type == "recording.paused" else "on"


@folds("session.started")
def _started(state: SessionState, event: Event) -> None:
    state.status = "live"


@folds("session.ended")
def _ended(state: SessionState, event: Event) -> None:
    state.status = "ended"
    for p in state.participants.values():
        p["hand"] = False


@folds("chapter.marked")
def _marked(state: SessionState, event: Event) -> None:
    state.chapters.append({"id": event.data["id"], "title": event.data["title"], "t": event.t})


def _view(state: SessionState, audience: Audience, viewer: str | None) -> list[dict[str, Any]]:
    return [dict(c) for c in state.chapters]


def _load(state: SessionState, chapters: list[dict[str, Any]], viewer: str | None) -> None:
    state.chapters = [dict(c) for c in chapters]


section("chapters", _view, _load)
