"""Fan-out: deliver each event to every connection that may see it.

An event is projected once per audience, its websocket frame (engine.io message + socket.io
event + JSON) is built once, and the same bytes are written to every member's transport: no task,
no encoding, no compression per recipient. Rooms per session: one per audience, plus one per
participant for the copies only the actor may see (their own vote, their own anonymous question).

Connections not (yet) on the websocket transport fall back to python-socketio's own path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import socketio

from . import wire
from .core import AUDIENCES, Event, project
from .websocket import Transports, text_frame, write_frame


def audience_room(session_id: str, audience: str) -> str:
    return f"{session_id}/{audience}"


def personal_room(session_id: str, pid: str) -> str:
    return f"{session_id}/p/{pid}"


def event_frame(view: dict[str, Any]) -> bytes:
    """The frame of socket.io event `event` with `view`: engine.io MESSAGE (4), socket.io EVENT (2)."""
    return text_frame(b"42" + wire.dumps(["event", view]))


class Fanout(Protocol):
    async def deliver(
        self, session_id: str, event: Event, actor_role: str | None, actor_sids: Iterable[str]
    ) -> None: ...


class FrameFanout:
    def __init__(self, sio: socketio.AsyncServer, transports: Transports) -> None:
        self.sio = sio
        self.transports = transports.by_eio_sid
        self.frames = 0  # frames built (one per audience copy), for tests and benchmarks
        self.writes = 0

    async def deliver(
        self, session_id: str, event: Event, actor_role: str | None, actor_sids: Iterable[str]
    ) -> None:
        rooms = self.sio.manager.rooms.get("/", {})
        fallback: list[tuple[str, dict[str, Any]]] = []
        for audience in AUDIENCES:
            view = project(event, audience)
            skip: Iterable[str] = ()
            if event.actor is not None and actor_role == audience:
                own = project(event, audience, True)
                if own is not view:
                    # The actor sees more of their own event than the rest of the audience.
                    skip = set(actor_sids)
                    if own is not None:
                        self._write(rooms.get(personal_room(session_id, event.actor)), own, (), fallback)
            if view is not None:
                self._write(rooms.get(audience_room(session_id, audience)), view, skip, fallback)
        for sid, view in fallback:
            await self.sio.emit("event", view, to=sid)

    def _write(
        self,
        members: Any,
        view: dict[str, Any],
        skip: Iterable[str],
        fallback: list[tuple[str, dict[str, Any]]],
    ) -> None:
        if not members:
            return
        frame = None
        transports = self.transports
        for sid, eio_sid in members.items():
            if sid in skip:
                continue
            transport = transports.get(eio_sid)
            if transport is None:
                fallback.append((sid, view))
                continue
            if frame is None:
                frame = event_frame(view)
                self.frames += 1
            if write_frame(transport, frame):
                self.writes += 1
