"""Fan-out: deliver each event to every connection that may see it.

An event is projected once per audience, its websocket frame (engine.io message + socket.io
event + JSON) is built once, and the same bytes are written to every member's transport: no task,
no encoding, no compression per recipient. Rooms per session: one per audience, plus one per
participant for the copies only the actor may see (their own vote, their own anonymous question).

Connections not (yet) on the websocket transport fall back to python-socketio's own path.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Iterable
from typing import Any, Protocol

import socketio
from aiohttp.web import WebSocketResponse
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp

from . import wire
from .core import AUDIENCES, Event, project
from .heap import HeapTrimmer

log = logging.getLogger(__name__)

# A client this far behind on reading (bytes queued in its transport) is cut off; it reconnects
# and resumes from its last seq instead of holding the server's memory hostage.
MAX_BUFFERED = 8 * 1024 * 1024
LARGE_PACKET = 16 * 1024


def audience_room(session_id: str, audience: str) -> str:
    return f"{session_id}/{audience}"


def personal_room(session_id: str, pid: str) -> str:
    return f"{session_id}/p/{pid}"


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final, uncompressed websocket text frame (server to client)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


def event_frame(view: dict[str, Any]) -> bytes:
    """The frame of socket.io event `event` with `view`: engine.io MESSAGE (4), socket.io EVENT (2)."""
    return text_frame(b"42" + wire.dumps(["event", view]))


class Transports:
    """The asyncio transport of every connection on the websocket transport, by engine.io sid.

    It replaces engine.io's aiohttp websocket driver for one server: the same driver, but
    without permessage-deflate (compressing every frame for every connection costs more than
    everything else together), registering each connection's transport while it is open, and
    letting go of large packets (join snapshots) as soon as they are written."""

    def __init__(self, heap: HeapTrimmer | None = None) -> None:
        self.by_eio_sid: dict[str, asyncio.Transport] = {}
        self.heap = heap

    def install(self, sio: socketio.AsyncServer) -> None:
        registry = self.by_eio_sid
        heap = self.heap

        class WebSocket(eio_aiohttp.WebSocket):
            async def send(self, message: str | bytes) -> None:
                await super().send(message)
                if len(message) >= LARGE_PACKET:
                    # engine.io's writer holds on to the last packet it sent until the next one
                    # comes, a ping interval later when idle: for each learner who just joined,
                    # a whole snapshot. A no-op packet (ignored by clients) takes its place now.
                    await self.handler.__self__.send(eio_packet.Packet(eio_packet.NOOP))
                    if heap is not None:
                        heap.note(len(message))

            async def __call__(self, environ: dict) -> WebSocketResponse:
                request = environ["aiohttp.request"]
                self._sock = WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
                await self._sock.prepare(request)
                self.environ = environ
                eio_sid = self.handler.__self__.sid  # the engine.io socket this websocket serves
                registry[eio_sid] = self._sock._writer.transport  # type: ignore[union-attr]
                try:
                    await self.handler(self)
                finally:
                    registry.pop(eio_sid, None)
                return self._sock

        sio.eio._async = {**sio.eio._async, "websocket": WebSocket}


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
            if transport.is_closing():
                continue
            if transport.get_write_buffer_size() > MAX_BUFFERED:
                log.warning("connection %s is too far behind; closing it so it resumes", sid)
                transport.abort()
                continue
            if frame is None:
                frame = event_frame(view)
                self.frames += 1
            transport.write(frame)
            self.writes += 1
