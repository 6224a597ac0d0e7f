"""Fan-out: deliver each event to every connection that may see it, encoded once per audience.

Rooms per session: one per audience, plus one per participant for the copies only the actor may
see (their own vote, their own anonymous question).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import socketio

from .core import AUDIENCES, Event, project


def audience_room(session_id: str, audience: str) -> str:
    return f"{session_id}/{audience}"


def personal_room(session_id: str, pid: str) -> str:
    return f"{session_id}/p/{pid}"


class Fanout(Protocol):
    async def deliver(
        self, session_id: str, event: Event, actor_role: str | None, actor_sids: Iterable[str]
    ) -> None: ...


class RoomFanout:
    """Fan-out through python-socketio rooms: one encode per audience (the manager encodes a
    room emit once and reuses the packet for every member)."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self.sio = sio

    async def deliver(
        self, session_id: str, event: Event, actor_role: str | None, actor_sids: Iterable[str]
    ) -> None:
        for audience in AUDIENCES:
            view = project(event, audience)
            skip = None
            if event.actor is not None and actor_role == audience:
                own = project(event, audience, True)
                if own is not view:
                    # The actor sees more of their own event than the rest of the audience.
                    skip = list(actor_sids)
                    if own is not None:
                        await self.sio.emit("event", own, room=personal_room(session_id, event.actor))
            if view is not None:
                await self.sio.emit("event", view, room=audience_room(session_id, audience), skip_sid=skip)
