"""Fan-out: deliver each event to every connection that may see it.

An event is projected once per audience, its websocket frame (engine.io message + socket.io
event + JSON) is built once, and the same bytes are written to every member's transport: no task,
no encoding, no compression per recipient. Rooms per session: one per audience, plus one per
participant for the copies only the actor may see (their own vote, their own anonymous question).

Large rooms are written by the native path (`sendmany.py`: one call for the whole room, no
Python per recipient), kept per room between events and rebuilt when the room changes.
Connections not (yet) on the websocket transport fall back to python-socketio's own path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import socketio

from classroom import metrics
from classroom.core import AUDIENCES, project
from classroom.ports import Delivery
from classroom.tasks import paced

from . import sendmany, wire
from .sendmany import Room, RoomsManager
from .websocket import Transports, text_frame, write_frame

# Rooms at least this large go through the native path; smaller ones (a participant's own room,
# a class's trainers) are cheaper to walk than to keep.
NATIVE_ROOM = 4
# A notice to a room (a large session's presence summary, every second) goes out this many sockets
# at a time, NOTIFY_PAUSE seconds apart: 10,000 learners get it over 0.45 s rather than in one burst
# of 10,000 writes, which would hold up the server's event loop and the learners' own (a join storm's
# acks waited behind it: join p99 81 ms against 37 ms without the summary, docs/benchmarks.md).
# Stream events are never cut up like this.
NOTIFY_SLICE = 1000
NOTIFY_PAUSE = 0.05


def audience_room(session_id: str, audience: str) -> str:
    return f"{session_id}/{audience}"


def personal_room(session_id: str, pid: str) -> str:
    return f"{session_id}/p/{pid}"


def event_frame(view: dict[str, Any]) -> bytes:
    """The frame of socket.io event `event` with `view`: engine.io MESSAGE (4), socket.io EVENT (2)."""
    return text_frame(b"42" + wire.dumps(["event", view]))


class FrameFanout:
    """The session registry's `Fanout` (`classroom/ports.py`). Writes each batch of events once
    per audience: events that everyone in an audience sees alike go out as one write of their
    frames, back to back, to each member's transport (one system call per member for the whole
    batch). An event whose actor sees more of it than the
    rest goes out on its own, between the runs before and after it, so order is kept."""

    def __init__(self, sio: socketio.AsyncServer, transports: Transports) -> None:
        self.sio = sio
        self.registry = transports
        self.transports = transports.by_eio_sid
        manager = sio.manager
        native = isinstance(manager, RoomsManager) and sendmany.mode() != "python"
        self.cache: dict[str, Room] | None = manager.cache if native else None
        self.native = 0  # rooms written through the native path, for tests and benchmarks
        self.frames = 0  # frames built (one per audience copy), for tests and benchmarks
        self.writes = 0

    async def deliver(self, session_id: str, batch: list[Delivery]) -> None:
        rooms = self.sio.manager.rooms.get("/", {})
        fallback: list[tuple[str, dict[str, Any]]] = []
        run: list[list[dict[str, Any] | None]] = []  # per event, its view per audience
        delivered = 0  # event frames written, counted in the metrics once per batch
        for d in batch:
            event = d.event
            if d.hidden:  # a large session's presence: not for every audience
                views = [None if a in d.hidden else project(event, a) for a in AUDIENCES]
            else:
                views = [project(event, audience) for audience in AUDIENCES]
            own: dict[str, Any] | None = None
            personal = d.subject is not None
            if event.actor is not None and d.actor_role in AUDIENCES:
                own = project(event, d.actor_role, True)
                # The actor sees more of their own event (their vote) than the rest.
                personal = personal or own is not views[AUDIENCES.index(d.actor_role)]
            if not personal:
                run.append(views)
                continue
            delivered += self._write_run(rooms, session_id, run, fallback)
            run = []
            for audience, view in zip(AUDIENCES, views, strict=True):
                skip: Iterable[str] = ()
                if audience == d.actor_role:
                    skip = set(d.actor_sids)
                    if own is not None:
                        delivered += self._write(
                            rooms, personal_room(session_id, event.actor), [own], (), fallback
                        )
                if view is not None:
                    delivered += self._write(
                        rooms, audience_room(session_id, audience), [view], skip, fallback
                    )
            if d.subject is not None:
                delivered += self._write(
                    rooms, personal_room(session_id, d.subject), [event.wire()], (), fallback
                )
        delivered += self._write_run(rooms, session_id, run, fallback)
        for sid, view in fallback:
            await self.sio.emit("event", view, to=sid)
        metrics.DELIVERIES.inc(delivered + len(fallback))

    async def notify(self, session_id: str, audience: str, name: str, data: dict[str, Any]) -> int:
        """An event outside the stream (no seq) to an audience's room: one frame, written to
        every member (the large-session presence summary), `NOTIFY_SLICE` sockets at a time with
        `NOTIFY_PAUSE` between slices."""
        room = audience_room(session_id, audience)
        members = self.sio.manager.rooms.get("/", {}).get(room)
        if not members:
            return 0
        frame = text_frame(b"42" + wire.dumps([name, data]))
        slow: list[str] = []
        written = 0
        cached = self._room(room, members)
        if cached is None:
            items = list(members.items())
            async for start, stop in paced(len(items), NOTIFY_SLICE, NOTIFY_PAUSE):
                written += self._write_members(items[start:stop], frame, (), slow)
        else:
            slow.extend(cached.unattached)
            # The Room stays usable across the pauses: a member gone since is closing, left out.
            async for start, stop in paced(max(len(cached.fds), 1), NOTIFY_SLICE, NOTIFY_PAUSE):
                written += cached.send(frame, write_frame, (), start, stop)
        for sid in slow:
            await self.sio.emit(name, data, to=sid)
        metrics.DELIVERIES.inc(written + len(slow))
        return written + len(slow)

    def _write_run(
        self,
        rooms: dict[str, Any],
        session_id: str,
        run: list[list[dict[str, Any] | None]],
        fallback: list[tuple[str, dict[str, Any]]],
    ) -> int:
        delivered = 0
        for i, audience in enumerate(AUDIENCES):
            views = [v[i] for v in run if v[i] is not None]
            if views:
                delivered += self._write(rooms, audience_room(session_id, audience), views, (), fallback)
        return delivered

    def _write(
        self,
        rooms: dict[str, Any],
        room: str,
        views: list[dict[str, Any]],
        skip: Iterable[str],
        fallback: list[tuple[str, dict[str, Any]]],
    ) -> int:
        """Write `views` to every member of `room` but `skip`; return how many event frames were
        written. Members without a websocket transport are added to `fallback`."""
        frames: list[bytes] = []

        def build() -> bytes:
            if not frames:
                frames.append(b"".join(event_frame(view) for view in views))
                self.frames += len(views)
            return frames[0]

        unattached: list[str] = []
        written = self._send(rooms, room, build, skip, unattached)
        fallback.extend((sid, view) for sid in unattached for view in views)
        self.writes += written
        return written * len(views)

    def _send(
        self,
        rooms: dict[str, Any],
        room: str,
        frame: bytes | Callable[[], bytes],
        skip: Iterable[str],
        unattached: list[str],
    ) -> int:
        """Write `frame` (or what it builds, built only if someone takes it) to every member of
        `room` but `skip`; return how many took it. Members without a websocket transport go to
        `unattached`, for python-socketio's own path."""
        members = rooms.get(room)
        if not members:
            return 0
        cached = self._room(room, members)
        if cached is not None:
            unattached.extend(sid for sid in cached.unattached if sid not in skip)
            if not cached.fds and not cached.slow:
                return 0
            data = frame if isinstance(frame, bytes) else frame()
            return cached.send(data, write_frame, skip)
        return self._write_members(members.items(), frame, skip, unattached)

    def _room(self, room: str, members: dict[str, str]) -> Room | None:
        """The native path's list of `room`, kept until the room or the connections change; None
        for the Python loop (no native path, or a small room)."""
        cache = self.cache
        if cache is None or len(members) < NATIVE_ROOM:
            return None
        cached = cache.get(room)
        generation = self.registry.generation
        if cached is None or cached.generation != generation:
            cached = cache[room] = Room(members, self.transports, generation)
        self.native += 1
        return cached

    def _write_members(
        self,
        members: Iterable[tuple[str, str]],
        frame: bytes | Callable[[], bytes],
        skip: Iterable[str],
        unattached: list[str],
    ) -> int:
        """The Python loop: `frame` through each member's transport."""
        transports = self.transports
        written = 0
        for sid, eio_sid in members:
            if sid in skip:
                continue
            transport = transports.get(eio_sid)
            if transport is None:
                unattached.append(sid)
                continue
            if not isinstance(frame, bytes):
                frame = frame()
            if write_frame(transport, frame):
                written += 1
        return written
