"""The fan-out's native write: one frame to every socket of a room in one call, no Python per recipient.

`FrameFanout` (`fanout.py`) writes the same bytes to thousands of connections per event. Through
asyncio that is a Python loop of checks and `transport.write` calls; here it is one call into the
C extension `signaling._sendmany` with the room's transports and their socket descriptors, which
submits the sends in batches through io_uring (or loops over send(2)) without blocking. A
connection whose transport already holds buffered bytes, or whose socket is full, is handed back
and written through `write` (`websocket.write_frame`: the transport's write, in order after what it
holds, with the cut-off for connections far behind). A closing transport is never written to
directly: its descriptor may already be closed and its number given to another file.

A TLS connection (or any transport without a socket) is always written through its transport:
its bytes must be encrypted.

`CLASSCAST_SEND` chooses the way: `io_uring` (the default; send(2) where the kernel refuses a
ring), `send`, or `python` (no native path: the transports' own writes, as when the extension was
not built, say without a C compiler).
"""

from __future__ import annotations

import asyncio
import errno
import os
from array import array
from collections.abc import Callable, Iterable

import socketio

try:
    from . import _sendmany
except ImportError:  # not built: the transports' own writes
    _sendmany = None

MODES = ("io_uring", "send", "python")


def mode() -> str:
    """How the fan-out writes in this process: `io_uring`, `send` or `python` (`CLASSCAST_SEND`)."""
    want = os.environ.get("CLASSCAST_SEND", "io_uring")
    if _sendmany is None or want == "python":
        return "python"
    _sendmany.set_mode("send" if want == "send" else "io_uring")
    return str(_sendmany.mode())


def socket_fd(transport: asyncio.Transport) -> int | None:
    """The descriptor the native path may write to for `transport`, or None (TLS, no socket)."""
    if transport.get_extra_info("sslcontext") is not None:
        return None
    sock = transport.get_extra_info("socket")
    return None if sock is None else int(sock.fileno())


class Room:
    """One room's members as the native path needs them, kept between events and rebuilt when the
    room or the set of connections changes: transports and descriptors side by side, and the
    members written another way."""

    __slots__ = ("by_sid", "fds", "generation", "slow", "transports", "unattached")

    def __init__(
        self, members: dict[str, str], by_eio_sid: dict[str, asyncio.Transport], generation: int
    ) -> None:
        self.generation = generation
        self.fds = array("i")
        self.transports: list[asyncio.Transport] = []
        self.by_sid: dict[str, int] = {}
        self.slow: list[tuple[str, asyncio.Transport]] = []  # written through their transport
        self.unattached: list[str] = []  # no websocket transport (long-polling): python-socketio's emit
        for sid, eio_sid in members.items():
            transport = by_eio_sid.get(eio_sid)
            if transport is None:
                self.unattached.append(sid)
                continue
            fd = socket_fd(transport)
            if fd is None or fd < 0:
                self.slow.append((sid, transport))
                continue
            self.by_sid[sid] = len(self.fds)
            self.fds.append(fd)
            self.transports.append(transport)

    def send(
        self,
        frame: bytes,
        write: Callable[[asyncio.Transport, bytes], bool],
        skip: Iterable[str] = (),
        start: int = 0,
        stop: int | None = None,
    ) -> int:
        """Write `frame` to every member but `skip`'s (those of the native list from `start` to
        `stop`, and the others with the first slice); return how many took it."""
        assert _sendmany is not None
        whole = start == 0 and (stop is None or stop >= len(self.fds))
        fds = self.fds if whole else self.fds[start:stop]
        transports = self.transports if whole else self.transports[start:stop]
        mask = None
        if skip:
            mask = bytearray(len(fds))
            for sid in skip:
                i = self.by_sid.get(sid)
                if i is not None and start <= i < start + len(fds):
                    mask[i - start] = 1
        written, short = _sendmany.send_many(transports, fds, frame, mask)
        for i, result in short:
            transport = transports[i]
            if result > 0:  # part of it went out: the rest is the transport's, in order
                transport.write(frame[result:])
                written += 1
            elif result == -errno.EAGAIN:  # buffered bytes first, or a full socket
                written += write(transport, frame)
            # Any other error: the connection is gone, and its read side closes it.
        if start == 0:
            for sid, transport in self.slow:
                if sid not in skip:
                    written += write(transport, frame)
        return written


class RoomsManager(socketio.AsyncManager):
    """python-socketio's manager, forgetting a room's `Room` when its membership changes, so the
    fan-out keeps each room's list between events instead of walking the members for each."""

    def __init__(self) -> None:
        super().__init__()
        self.cache: dict[str, Room] = {}

    def basic_enter_room(self, sid: str, namespace: str, room: str, eio_sid: str | None = None) -> None:
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self.cache.pop(room, None)

    def basic_leave_room(self, sid: str, namespace: str, room: str) -> None:
        super().basic_leave_room(sid, namespace, room)
        self.cache.pop(room, None)
