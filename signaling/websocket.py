"""engine.io's websocket transport, lean enough for thousands of learners in one process.

`Transports` replaces engine.io's aiohttp websocket driver for one server. It speaks the same
engine.io and socket.io protocols (socket.io-client connects unchanged), but:

- negotiates no permessage-deflate: compressing every frame for every connection costs more than
  everything else together;
- registers each connection's asyncio transport while it is open, so the fan-out can write one
  prebuilt frame to every member of a room (`fanout.py`);
- serves a connection with one loop that reads and dispatches packets, and writes what engine.io
  sends (acks, pings) straight to the transport, in order with the fan-out's frames: engine.io's
  own handler adds a writer task, a task per received message and a queue per connection;
- lets go of large packets (join snapshots) as soon as they are written, and tells the heap
  trimmer about them;
- keeps every connection alive from one heartbeat task a second: engine.io pings each socket from
  a task of its own per ping, and its service task checks one socket per `wait_for` (a task and a
  timer each), which at thousands of idle learners cost more than a chat message to all of them.
  Here a pong is handled in the read loop, the pings due are written from buckets of one second,
  and the same pass closes the sockets whose pong is overdue, with their connections, from buckets
  of the second each ping's timeout is up: no look at every socket each second (only while some are
  on long-polling, whose pings engine.io sends itself).

A connection that started on long-polling and upgrades keeps engine.io's own handler.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import weakref
from typing import Any

import socketio
from aiohttp import WSMsgType
from aiohttp.web import WebSocketResponse
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from engineio.async_socket import AsyncSocket

from classroom.heap import HeapTrimmer
from classroom.tasks import paced, until_tick
from classroom.throttle import LogThrottle

from .guard import Guard
from .sendqueue import SendQueue

log = logging.getLogger(__name__)
throttled = LogThrottle(log)

# A client this far behind on reading (bytes queued in its transport) is cut off; it reconnects
# and resumes from its last seq instead of holding the server's memory hostage.
MAX_BUFFERED = 8 * 1024 * 1024
LARGE_PACKET = 16 * 1024
# A connection's own large replies (its join snapshot, the history pages it asked for) do not count
# towards that bound, up to this many bytes of them: they are not a sign of falling behind the stream.
MAX_OWN = 8 * 1024 * 1024
# Bytes of own large replies written since the connection's buffer was last seen empty.
_own: weakref.WeakKeyDictionary[asyncio.Transport, int] = weakref.WeakKeyDictionary()


def _frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + payload


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final, uncompressed websocket text frame (server to client)."""
    return _frame(0x1, payload)


# engine.io's PING and CLOSE packets as websocket frames, written by the heartbeat.
PING_FRAME = text_frame(b"2")
CLOSE_FRAME = text_frame(b"1")
# Seconds between two passes of the heartbeat (pings due, overdue pongs, closed sockets).
HEARTBEAT_S = 1.0
# The pings due in a pass go out this many at a time, PING_PAUSE seconds apart (1,000 a second at
# 10,000 learners over 0.45 s): written at once, their pongs came back at once, and the burst of
# reads held up the joins of a storm for tens of milliseconds every second.
PING_SLICE = 100
PING_PAUSE = 0.05


def write_frame(transport: asyncio.Transport, frame: bytes, *, own: bool = False) -> bool:
    """Write a frame unless the connection is closing or hopelessly behind (then cut it off).
    `own`: a reply to this connection (not the shared stream), which the bound does not count."""
    if transport.is_closing():
        return False
    buffered = transport.get_write_buffer_size()
    replies = _own.get(transport, 0) if buffered else 0
    if buffered - min(replies, MAX_OWN) > MAX_BUFFERED:
        throttled.log(logging.WARNING, "behind", "a connection is too far behind; closing it so it resumes")
        transport.abort()
        return False
    transport.write(frame)
    if own and len(frame) >= LARGE_PACKET:
        _own[transport] = replies + len(frame)
    elif not buffered and _own and transport in _own:
        del _own[transport]
    return True


class Transports:
    """The asyncio transport of every connection on the websocket transport, by engine.io sid."""

    def __init__(self, heap: HeapTrimmer | None = None, guard: Guard | None = None) -> None:
        self.by_eio_sid: dict[str, asyncio.Transport] = {}
        # Bumped whenever a transport comes or goes: the fan-out's room lists (`sendmany.Room`)
        # are rebuilt at their next use.
        self.generation = 0
        self.heap = heap
        self.guard = guard or Guard()
        self.sio: socketio.AsyncServer | None = None
        # Sockets served here whose next ping is due in a second (time.time(), whole seconds).
        self._pings: dict[int, list[AsyncSocket]] = {}
        # Pings awaiting their pong, by the second their timeout is up: (the ping's time, the
        # sockets pinged then). A socket whose `last_ping` is still that time by then is gone.
        self._timeouts: dict[int, list[tuple[float, list[AsyncSocket]]]] = {}

    def install(self, sio: socketio.AsyncServer) -> None:
        transports = self
        self.sio = sio

        class WebSocket(eio_aiohttp.WebSocket):
            async def send(self, message: str | bytes) -> None:
                # Only on engine.io's own handler (connections upgraded from long-polling).
                await super().send(message)
                if message == "2":  # engine.io's own ping: its timeout is checked by the heartbeat
                    transports.pinged(self.handler.__self__)
                elif len(message) >= LARGE_PACKET:
                    # That handler's writer holds on to the last packet it sent until the next
                    # one, a ping interval later when idle: a no-op packet takes its place now.
                    await self.handler.__self__.send(eio_packet.Packet(eio_packet.NOOP))
                    transports.note_large(len(message))

            async def __call__(self, environ: dict) -> WebSocketResponse:
                request = environ["aiohttp.request"]
                self._sock = WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
                await self._sock.prepare(request)
                self.environ = environ
                socket: AsyncSocket = self.handler.__self__  # the engine.io socket this serves
                address = transports.guard.address(environ)
                refused, shared = await transports.guard.admit_everywhere(address)
                if refused is not None:
                    # Closed at once, so it holds no file descriptor: 1013 is "try again later".
                    throttled.log(
                        logging.WARNING, "refused", "refused a websocket from %s: %s", address, refused
                    )
                    await socket.close(wait=False, abort=True, reason=self.server.reason.SERVER_DISCONNECT)
                    closing = self._sock._writer.transport  # type: ignore[union-attr]
                    # No closing handshake to wait for: a silent client would hold the descriptor.
                    closing.write(_frame(0x8, struct.pack("!H", 1013) + refused.encode()[:120]))
                    closing.close()
                    return self._sock
                transport = self._sock._writer.transport  # type: ignore[union-attr]
                transports.by_eio_sid[socket.sid] = transport
                transports.generation += 1
                if socket.last_ping:  # a ping sent while long-polling, not answered yet
                    transports.pinged(socket)
                try:
                    if socket.connected:
                        await self.handler(self)  # an upgrade from long-polling
                    else:
                        await transports.serve(socket, self._sock, transport)
                finally:
                    transports.by_eio_sid.pop(socket.sid, None)
                    transports.generation += 1
                    transports.guard.release(address, shared)
                return self._sock

        sio.eio._async = {**sio.eio._async, "websocket": WebSocket}
        sio.eio.create_queue = SendQueue  # type: ignore[method-assign]
        # engine.io starts its service task at the first connection: this one instead.
        sio.eio._service_task = self._heartbeat  # type: ignore[method-assign]

    async def _heartbeat(self) -> None:
        """engine.io's service task, one pass a second: write the pings due, close the sockets
        whose pong is overdue and forget closed ones (engine.io's own checks one socket per timed
        wait, N of them per ping timeout)."""
        assert self.sio is not None
        eio = self.sio.eio
        stop = eio.service_task_event = eio.create_event()
        while not stop.is_set():
            try:
                # On the loop's shared grid (`classroom.tasks.next_tick`): the process's periodic
                # work wakes up once, and the pongs to the last pass's pings are read together.
                await asyncio.wait_for(stop.wait(), until_tick(HEARTBEAT_S))
                break
            except TimeoutError:
                pass
            try:
                await self.beat(time.time())
            except Exception:
                log.exception("the heartbeat failed")

    async def beat(self, now: float) -> None:
        """One pass of the heartbeat at time `now` (time.time(), as engine.io's `last_ping`): its
        cost follows the pings due and the pings whose timeout is up, not the sockets open."""
        assert self.sio is not None
        eio = self.sio.eio
        timeout = eio.ping_timeout
        due = [s for t in [t for t in self._pings if t <= now] for s in self._pings.pop(t)]
        loop = asyncio.get_running_loop()
        begun = loop.time()
        async for start, stop in paced(len(due), PING_SLICE, PING_PAUSE):
            sent = now + (loop.time() - begun)
            pinged = []
            for socket in due[start:stop]:
                transport = self.by_eio_sid.get(socket.sid)
                if transport is None or socket.closing or socket.closed:
                    continue
                socket.last_ping = sent
                write_frame(transport, PING_FRAME, own=True)
                pinged.append(socket)
            if pinged:
                self._expect(sent, pinged, timeout)
        for second in [t for t in self._timeouts if t <= now]:
            for sent, sockets in self._timeouts.pop(second):
                late = []
                for socket in sockets:
                    if socket.last_ping != sent or socket.closed or socket.closing:
                        continue  # answered (or pinged again since), or already closed
                    if now - sent <= timeout:
                        late.append(socket)  # not overdue yet (the clock was set back): the next pass
                        continue
                    await socket.check_ping_timeout()  # closes it: the client is gone
                    if socket.closed:
                        self._forget(socket.sid)
                if late:
                    self._timeouts.setdefault(int(now) + 1, []).append((sent, late))
        if len(eio.sockets) > len(self.by_eio_sid):
            # Sockets not on a websocket here (long-polling ones) or closed ones not yet removed:
            # engine.io's own check, socket by socket. Not the steady state of a websocket class.
            for sid, socket in list(eio.sockets.items()):
                overdue = socket.last_ping and now - socket.last_ping > timeout
                if overdue and not socket.closed and not socket.closing:
                    await socket.check_ping_timeout()
                if socket.closed:
                    self._forget(sid)

    def _expect(self, sent: float, sockets: list[AsyncSocket], timeout: float) -> None:
        """`sockets` were pinged at `sent`: check for their pongs once the timeout is up (the first
        pass in the whole second after it: engine.io's "more than the timeout")."""
        self._timeouts.setdefault(int(sent + timeout) + 1, []).append((sent, sockets))

    def pinged(self, socket: AsyncSocket) -> None:
        """engine.io itself pinged `socket` (its first ping, or on engine.io's own handler)."""
        assert self.sio is not None
        if socket.last_ping:
            self._expect(socket.last_ping, [socket], self.sio.eio.ping_timeout)

    def _forget(self, sid: str) -> None:
        """A closed socket: out of engine.io's table, and its connection ended."""
        assert self.sio is not None
        self.sio.eio.sockets.pop(sid, None)
        transport = self.by_eio_sid.get(sid)
        if transport is not None and not transport.is_closing():
            # engine.io closed it without a word: say so (its CLOSE packet), and end the
            # connection too, at once if the client is not even reading.
            write_frame(transport, CLOSE_FRAME, own=True)
            if transport.get_write_buffer_size():
                transport.abort()
            else:
                transport.close()

    def _next_ping(self, socket: AsyncSocket) -> None:
        """A pong came: the next ping in a ping interval (engine.io's `schedule_ping`, without
        a task per ping)."""
        if socket.last_ping:
            socket.last_ping = None
            due = int(time.time() + socket.server.ping_interval)
            pings = self._pings.get(due)
            if pings is None:
                self._pings[due] = [socket]
            else:
                pings.append(socket)

    def note_large(self, nbytes: int) -> None:
        if self.heap is not None:
            self.heap.note(nbytes)

    async def serve(self, socket: AsyncSocket, ws: WebSocketResponse, transport: asyncio.Transport) -> None:
        """Run one websocket connection from its start to its end (engine.io's handler, lean)."""
        server = socket.server
        queue = socket.queue
        assert isinstance(queue, SendQueue)

        def send(pkt: Any) -> None:
            if pkt is None:  # engine.io's "no more packets"
                transport.close()
                return
            data = pkt.encode()
            if isinstance(data, str):
                data = data.encode()
                write_frame(transport, text_frame(data), own=True)
            else:
                write_frame(transport, _frame(0x2, data), own=True)
            if len(data) >= LARGE_PACKET:
                self.note_large(len(data))
            if pkt.packet_type == eio_packet.CLOSE:
                transport.close()  # the server closed the socket: free the connection now
            elif pkt.packet_type == eio_packet.PING:  # engine.io's first ping, from its own task
                self.pinged(socket)

        def unjoined() -> None:
            # Still no socket.io session: a socket that never joins must not hold a descriptor
            # (the hub closes those that connected but did not `join`, with a reason).
            if self.sio is not None and self.sio.manager.sid_from_eio_sid(socket.sid, "/") is None:
                transport.close()

        deadline = asyncio.get_running_loop().call_later(self.guard.join_timeout, unjoined)
        socket.connected = True
        socket.upgraded = True
        queue.attach(send)  # the OPEN packet first, then every packet as it is sent
        # No timeout per read (a timer per packet): a client that stops answering pings is closed
        # by the heartbeat, connection included.
        try:
            while True:
                try:
                    msg = await ws.receive()
                except OSError:
                    break
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break  # closed, closing or a protocol error (too large, say)
                if msg.data == "3":  # engine.io PONG, the most frequent packet of an idle class
                    self._next_ping(socket)
                    continue
                try:
                    pkt = eio_packet.Packet(encoded_packet=msg.data)
                except Exception:
                    break  # not engine.io
                try:
                    await socket.receive(pkt)
                    if socket.closed:
                        break  # the client's CLOSE packet: engine.io closed the socket, not the connection
                except eio_exceptions.UnknownPacketError:
                    pass
                except eio_exceptions.SocketIsClosedError:
                    break
                except Exception as exc:
                    throttled.log(
                        logging.ERROR,
                        type(exc).__name__,
                        "engine.io packet from %s failed",
                        socket.sid,
                        exc_info=True,
                    )
        finally:
            deadline.cancel()
            queue.detach()
            try:
                # First engine.io's close (the disconnect handler: the participant leaves), so it
                # runs even when the server is shutting down and cancels this in `ws.close`.
                await socket.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
            finally:
                await ws.close()
