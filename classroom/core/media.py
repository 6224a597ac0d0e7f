"""Live media in the stream: which tracks are live (`media.tracks`, told by the server when its
WebRTC layer's set of tracks changes) and who besides the trainers may publish (the floor).

The media itself never passes through the core: `signaling/` forwards it and asks
`may_publish` whether someone may send a track with a given label.
"""

from __future__ import annotations

from typing import Any

from .context import Context
from .errors import CommandError
from .events import Audience, Event
from .registry import TRAINER, command, folds, require
from .state import SessionState, section
from .validation import Payload

LABELS = ("mic", "camera", "screen")
KINDS = {"mic": "audio", "camera": "video", "screen": "video"}
CODECS = ("vp8", "h264", "opus")
TRACKS_MAX = 60  # live tracks in one session (20 publishers with mic, camera and screen)
ID_LEN = 64


class Give(Payload):
    id: str
    camera: bool = False


class Take(Payload):
    id: str


@command("floor.give", Give, roles=(TRAINER,))
def give(ctx: Context, cmd: Give) -> None:
    target = ctx.state.participants.get(cmd.id)
    require(target is not None, "not_found", f"no participant {cmd.id[:ID_LEN]!r}")
    assert target is not None
    require(target["role"] != TRAINER, "invalid_payload", "id: trainers may always publish")
    held = ctx.state.media["floor"].get(cmd.id)
    if held is None or held["camera"] != cmd.camera:
        ctx.emit("floor.given", {"id": cmd.id, "camera": cmd.camera})


@command("floor.take", Take)
def take(ctx: Context, cmd: Take) -> None:
    """Trainers take the floor from anyone; a learner gives their own back."""
    require(ctx.is_trainer or cmd.id == ctx.actor_id, "forbidden", "only a trainer can take someone's floor")
    require(cmd.id in ctx.state.participants, "not_found", f"no participant {cmd.id[:ID_LEN]!r}")
    if cmd.id in ctx.state.media["floor"]:
        ctx.emit("floor.taken", {"id": cmd.id})


def may_publish(state: SessionState, pid: str, label: str) -> bool:
    """Whether participant `pid` may publish a track labelled `label` now."""
    person = state.participants.get(pid)
    if person is None or state.status != "live":
        return False
    if person["role"] == TRAINER:
        return label in LABELS
    held = state.media["floor"].get(pid)
    if held is None:
        return False
    return label == "mic" or (label == "camera" and held["camera"])


def clean_tracks(tracks: Any) -> list[dict[str, str]]:
    """The server's list of live tracks in the event's shape, or CommandError."""
    if not isinstance(tracks, list) or len(tracks) > TRACKS_MAX:
        raise CommandError("invalid_payload", f"tracks: a list of at most {TRACKS_MAX}")
    out = []
    for t in tracks:
        if not isinstance(t, dict):
            raise CommandError("invalid_payload", "tracks: items must be objects")
        publisher, label, kind, codec = (t.get(k) for k in ("publisher", "label", "kind", "codec"))
        if (
            not isinstance(publisher, str)
            or not 0 < len(publisher) <= ID_LEN
            or label not in LABELS
            or kind != KINDS[label]
            or codec not in CODECS
            or t.get("id") != f"{publisher}:{label}"
        ):
            raise CommandError("invalid_payload", f"tracks: not a track {t!r:.200}")
        out.append({"id": t["id"], "publisher": publisher, "label": label, "kind": kind, "codec": codec})
    return out


@folds("media.tracks")
def _tracks(state: SessionState, event: Event) -> None:
    state.media["tracks"] = [dict(t) for t in event.data["tracks"]]


@folds("floor.given")
def _given(state: SessionState, event: Event) -> None:
    state.media["floor"][event.data["id"]] = {"camera": bool(event.data["camera"])}


@folds("floor.taken")
def _taken(state: SessionState, event: Event) -> None:
    state.media["floor"].pop(event.data["id"], None)


def _view(state: SessionState, audience: Audience, viewer: str | None) -> dict[str, Any]:
    media = state.media
    return {
        "tracks": [dict(t) for t in media["tracks"]],
        "floor": {pid: dict(f) for pid, f in media["floor"].items()},
    }


def _load(state: SessionState, view: dict[str, Any], viewer: str | None) -> None:
    state.media = {
        "tracks": [dict(t) for t in view.get("tracks", [])],
        "floor": {pid: dict(f) for pid, f in view.get("floor", {}).items()},
    }


section("media", _view, _load)
