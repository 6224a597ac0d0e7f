"""Media signaling on the socket.io connection: the `media.*` commands, one `Media` per live session.

The hub hands every `media.*` command here (they never reach the session core, whose commands
they do not slow down: no await of theirs is on another command's way). A session's `Media`
(`signaling.webrtc`) is made on its first publish or view and closed once nobody publishes or views,
when the session ends, and when the server stops. Who may publish is the core's call
(`classroom.core.media.may_publish`: trainers, and learners holding the floor); which tracks are
live goes into the stream as `media.tracks` (`LiveSession.media_tracks`), and the composition root's
`MediaRecording` records them. Protocol: docs/protocol.md, section 5.8.

Viewer connections are per socket (each tab has its own RTCPeerConnection); publishers are per
participant (their tracks are `<participant id>:<label>`), tied to the socket that published: when
it disconnects, the tracks end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from classroom.core import CommandError
from classroom.core.limits import Rate
from classroom.core.media import LABELS, may_publish
from classroom.core.ratelimit import TokenBucket
from classroom.core.validation import Payload, parse
from classroom.live import LiveSession
from classroom.ports import MediaRecording, MediaTap

from .webrtc import Media, MediaError, parse_ice_servers

log = logging.getLogger(__name__)

COMMANDS = frozenset(
    {"media.publish", "media.unpublish", "media.view", "media.answer", "media.candidate", "media.leave"}
)
SDP_LEN = 32 * 1024  # characters of an offer or answer (a browser's is 3-10 KiB)
CANDIDATE_LEN = 1024
LABELS_MAX = 8
# Per participant: peer connections are dear (sockets, DTLS, threads), candidates cheap.
NEGOTIATION_RATE = Rate(20, 10_000)  # publish, unpublish, view, answer, leave
CANDIDATE_RATE = Rate(200, 10_000)

Label = Literal["mic", "camera", "screen"]


class Publish(Payload):
    sdp: str = Field(max_length=SDP_LEN)
    labels: dict[str, Label] = Field(default_factory=dict, max_length=LABELS_MAX)


class Empty(Payload):
    pass


class Answer(Payload):
    sdp: str = Field(max_length=SDP_LEN)


class Candidate(Payload):
    to: Literal["publish", "view"]
    candidate: str = Field(max_length=CANDIDATE_LEN)
    sdpMid: str | None = Field(default=None, max_length=64)  # noqa: N815 - the browser's name


MODELS: dict[str, type[Payload]] = {
    "media.publish": Publish,
    "media.unpublish": Empty,
    "media.view": Empty,
    "media.answer": Answer,
    "media.candidate": Candidate,
    "media.leave": Empty,
}

# MediaError codes that are the client's input, not a refusal of the media layer.
_INPUT = {"bad_label", "nothing_published", "bad_candidate"}


def _ms() -> int:
    return int(time.monotonic() * 1000)


def client_ice_server(server: Any) -> dict[str, str]:
    """An aiortc RTCIceServer as a browser's RTCPeerConnection takes it: ``{urls, username?,
    credential?}``."""
    out = {"urls": server.urls}
    if server.username is not None:
        out["username"] = server.username
    if server.credential is not None:
        out["credential"] = server.credential
    return out


@dataclass
class _Room:
    session: LiveSession
    media: Media
    tap: MediaTap | None = None
    publishers: dict[str, str] = field(default_factory=dict)  # pid -> socket that published
    viewers: set[str] = field(default_factory=set)  # socket ids
    busy: int = 0  # commands under way (the room is not closed under them)
    closed: bool = False


class MediaRooms:
    """The media of every live session this process serves."""

    def __init__(self, sio: Any, ice_servers: Any = None, recording: MediaRecording | None = None) -> None:
        self.sio = sio
        self.ice_servers = parse_ice_servers(ice_servers)  # checked once, at start
        # The same servers as browsers take them (RTCConfiguration.iceServers), sent in the join ack.
        self.client_ice_servers = [client_ice_server(s) for s in self.ice_servers]
        self.recording = recording
        self.rooms: dict[str, _Room] = {}
        self._locks: dict[str, asyncio.Lock] = {}  # per socket: its media commands in order
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}  # (session, pid, kind)
        self._tasks: set[asyncio.Task[None]] = set()

    # -- commands ---------------------------------------------------------------------------------

    async def command(self, sid: str, session: LiveSession, pid: str, name: str, payload: Any) -> dict:
        """Run one `media.*` command; returns the ack's extra fields or raises CommandError."""
        self._check_live(session)
        body = parse(MODELS[name], payload)
        self._limit(session.id, pid, "candidate" if name == "media.candidate" else "negotiation")
        lock = self._locks.get(sid)
        if lock is None:
            lock = self._locks[sid] = asyncio.Lock()
        async with lock:
            self._check_live(session)  # it may have ended while this waited
            if name == "media.publish" and not any(may_publish(session.state, pid, x) for x in LABELS):
                raise CommandError("forbidden", "only trainers and learners given the floor may publish")
            room = (
                self._room(session) if name in ("media.publish", "media.view") else self.rooms.get(session.id)
            )
            if room is None:
                if name == "media.unpublish":
                    return {}
                if name == "media.leave":
                    return {"viewing": False, "publishing": False}
                raise CommandError("media_failed", "no media connection: publish or view first")
            room.busy += 1
            try:
                return await self._run(room, sid, pid, name, body)
            except MediaError as exc:
                code = "media_failed"
                if exc.code == "forbidden":
                    code = "forbidden"
                elif exc.code in _INPUT:
                    code = "invalid_payload"
                raise CommandError(code, exc.message) from None
            finally:
                room.busy -= 1
                if room.closed:  # the session ended meanwhile: what this command opened goes too
                    await room.media.close()
                await self._close_if_empty(room)

    async def _run(self, room: _Room, sid: str, pid: str, name: str, body: Any) -> dict:
        if name == "media.publish":
            state = room.session.state
            allowed = [label for label in LABELS if may_publish(state, pid, label)]
            sdp = await room.media.publish(pid, body.sdp, body.labels, allowed)
            room.publishers[pid] = sid
            if await self._enforce(room, pid):  # the floor was taken while this was negotiated
                raise CommandError("forbidden", "the floor was taken meanwhile")
            return {"sdp": sdp}
        if name == "media.view":
            sdp = await room.media.view(sid)
            room.viewers.add(sid)
            return {"sdp": sdp, "mids": room.media.mids(sid)}
        if name == "media.unpublish":
            if room.publishers.get(pid) is not None:
                del room.publishers[pid]
            await room.media.unpublish(pid)
            return {}
        if name == "media.leave":
            # Everything this participant has in the session's media ends: this socket's viewer
            # connection and the tracks they publish (from whichever socket).
            viewing = sid in room.viewers
            if viewing:
                room.viewers.discard(sid)
                await room.media.leave(sid)
            room.publishers.pop(pid, None)
            publishing = await room.media.unpublish(pid)
            return {"viewing": viewing, "publishing": publishing}
        if name == "media.answer":
            await room.media.answer(sid, body.sdp)
            return {}
        # media.candidate
        if body.to == "view":
            await room.media.candidate(sid, body.candidate, body.sdpMid, viewer=True)
        else:
            await room.media.candidate(pid, body.candidate, body.sdpMid)
        return {}

    def _check_live(self, session: LiveSession) -> None:
        status = session.state.status
        if status == "ended":
            raise CommandError("session_ended", "the session has ended")
        if status != "live":
            raise CommandError("session_not_live", "the session has not started yet")

    def _limit(self, session_id: str, pid: str, kind: str) -> None:
        key = (session_id, pid, kind)
        bucket = self._buckets.get(key)
        if bucket is None:
            rate = CANDIDATE_RATE if kind == "candidate" else NEGOTIATION_RATE
            bucket = self._buckets[key] = TokenBucket(rate, _ms())
        if not bucket.take(_ms()):
            raise CommandError("rate_limited", f"too many media {kind} commands; try again shortly")

    # -- the session's side -----------------------------------------------------------------------

    def _room(self, session: LiveSession) -> _Room:
        room = self.rooms.get(session.id)
        if room is not None:
            return room
        sid_of = session.id
        media = Media(self.ice_servers)
        room = _Room(session, media)

        async def on_offer(viewer_sid: str, sdp: str) -> None:
            # The server's re-offer to one viewer: personal, not in the stream.
            if viewer_sid in room.viewers:
                await self.sio.emit(
                    "media.offer", {"sdp": sdp, "mids": media.mids(viewer_sid)}, to=viewer_sid
                )

        def on_tracks(tracks: list[dict[str, str]]) -> None:
            try:
                session.media_tracks(tracks)
            except CommandError:
                log.exception("session %s: media tracks refused", sid_of)
            if room.tap is not None:
                room.tap.tracks(tracks)

        media.on_tracks = on_tracks
        media.on_offer = on_offer
        if self.recording is not None:
            try:
                room.tap = self.recording.attach(session, media)
            except Exception:
                log.exception("session %s: cannot record its media", session.id)
        if self._ended not in session.on_ended:
            session.on_ended.append(self._ended)
        self.rooms[session.id] = room
        return room

    def _ended(self, session_id: str) -> None:
        for key in [k for k in self._buckets if k[0] == session_id]:
            del self._buckets[key]
        self._spawn(self.close_room(session_id))

    async def floor_changed(self, session: LiveSession, events: list[Any]) -> None:
        """After `floor.take` / `floor.give`: a learner's tracks the floor no longer covers end."""
        room = self.rooms.get(session.id)
        if room is None:
            return
        for event in events:
            if event.type not in ("floor.taken", "floor.given"):
                continue
            pid = event.data["id"]
            sid = room.publishers.get(pid)
            lock = self._locks.get(sid) if sid is not None else None
            async with lock or contextlib.nullcontext():
                await self._enforce(room, pid)
        await self._close_if_empty(room)

    async def _enforce(self, room: _Room, pid: str) -> bool:
        """End `pid`'s tracks if the floor no longer covers one of them; True if it did."""
        state = room.session.state
        published = {t["label"] for t in room.media.tracks() if t["publisher"] == pid}
        if all(may_publish(state, pid, label) for label in published):
            return False
        room.publishers.pop(pid, None)
        await room.media.unpublish(pid)
        return True

    async def gone(self, sid: str, session: LiveSession, pid: str | None) -> None:
        """A socket disconnected: its viewer connection closes, its published tracks end."""
        lock = self._locks.pop(sid, None)
        room = self.rooms.get(session.id)
        if room is None:
            return
        if lock is not None:
            async with lock:
                await self._drop(room, sid, pid)
        else:
            await self._drop(room, sid, pid)
        await self._close_if_empty(room)

    async def _drop(self, room: _Room, sid: str, pid: str | None) -> None:
        if sid in room.viewers:
            room.viewers.discard(sid)
            await room.media.leave(sid)
        if pid is not None and room.publishers.get(pid) == sid:
            del room.publishers[pid]
            await room.media.unpublish(pid)

    async def _close_if_empty(self, room: _Room) -> None:
        if not room.busy and room.media.empty() and self.rooms.get(room.session.id) is room:
            await self.close_room(room.session.id)

    async def close_room(self, session_id: str) -> None:
        room = self.rooms.pop(session_id, None)
        if room is None or room.closed:
            return
        room.closed = True
        try:
            await room.media.close()
        except Exception:
            log.exception("session %s: closing its media failed", session_id)
        if room.tap is not None:
            await room.tap.close()

    async def close(self) -> None:
        """Server stop: every session's media ends."""
        for session_id in list(self.rooms):
            await self.close_room(session_id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
