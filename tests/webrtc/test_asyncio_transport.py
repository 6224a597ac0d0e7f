"""Fails when asyncio's datagram transport no longer matches the fan-out's UDP GSO path
(`signaling/webrtc/forward.py`, `send_datagrams`).

That path reads private attributes of asyncio's `_SelectorDatagramTransport`: `_sock` (the socket
it sends on, for `sendmsg` with UDP_SEGMENT), `_buffer` (its send queue: while it holds anything,
new datagrams must queue behind it), `_extra` (`peername`: a connected socket takes no address)
and `_protocol` (told of send errors). These tests pin what each means on the running Python, with
real sockets, and that the path really takes the kernel's GSO (one call for a run of datagrams,
each still its own datagram on arrival) or, refused, sends one datagram at a time.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from signaling.webrtc import forward

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="UDP GSO is Linux's")

SO_NO_CHECK = 11  # asm-generic/socket.h: no UDP checksum, and then the kernel refuses GSO (EINVAL)

# Runs of a frame's packets: full ones and a shorter last one, a single packet, growing sizes, and
# more than UDP_MAX_SEGMENTS equal ones.
FRAMES = [
    [bytes([1]) * 1200] * 5 + [bytes([2]) * 700],
    [bytes([3]) * 300],
    [bytes([4]) * 1000, bytes([5]) * 1200, bytes([6]) * 1200, bytes([7]) * 90],
    [bytes([8 + i % 3]) * 500 for i in range(70)],
]


class Sink(asyncio.DatagramProtocol):
    """Collects the datagrams a real UDP socket receives."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.changed = asyncio.Event()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append(data)
        self.changed.set()

    async def wait(self, n: int, timeout: float = 5) -> list[bytes]:
        async with asyncio.timeout(timeout):
            while len(self.got) < n:
                self.changed.clear()
                await self.changed.wait()
        return self.got


class Source(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.errors: list[Exception] = []

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)


@dataclass
class Endpoints:
    """A real UDP socket on loopback sending to another one that collects what it receives."""

    source: Source
    transport: Any  # the source's asyncio transport (a `_SelectorDatagramTransport`)
    sink: Sink
    addr: tuple[str, int]  # the sink's


@pytest.fixture
async def endpoints() -> AsyncIterator[Endpoints]:
    loop = asyncio.get_running_loop()
    sink = Sink()
    sink_transport, _ = await loop.create_datagram_endpoint(lambda: sink, local_addr=("127.0.0.1", 0))
    source = Source()
    transport, _ = await loop.create_datagram_endpoint(lambda: source, local_addr=("127.0.0.1", 0))
    try:
        yield Endpoints(source, transport, sink, sink_transport.get_extra_info("sockname"))
    finally:
        transport.close()
        sink_transport.close()


@pytest.fixture
def gso(monkeypatch: pytest.MonkeyPatch) -> None:
    """GSO on, as the process starts (the fan-out turns it off for good when the kernel refuses)."""
    monkeypatch.setattr(forward, "GSO", True)


def count_sendto(transport: Any) -> list[int]:
    """Count the datagrams that go through `transport.sendto` (asyncio's one-at-a-time path)."""
    calls: list[int] = []
    sendto = transport.sendto

    def counted(data: bytes, addr: Any = None) -> None:
        calls.append(len(data))
        sendto(data, addr)

    transport.sendto = counted
    return calls


async def send_frames(e: Endpoints) -> tuple[list[bytes], list[int]]:
    """Send FRAMES through the fan-out's path and wait until all arrive: (the datagrams sent, in
    order, and the sizes of those that went through asyncio's `sendto`)."""
    one_by_one = count_sendto(e.transport)
    for frame in FRAMES:
        forward.send_datagrams(e.transport, e.addr, frame)
    sent = [d for frame in FRAMES for d in frame]
    await e.sink.wait(len(sent))
    return sent, one_by_one


async def test_the_private_attributes_mean_what_the_gso_path_reads(endpoints: Endpoints) -> None:
    loop = asyncio.get_running_loop()
    transport, sink, addr = endpoints.transport, endpoints.sink, endpoints.addr
    connected, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=addr)
    try:
        assert type(transport).__name__ == "_SelectorDatagramTransport"
        # `_sock`: the endpoint's own socket, a real one (sendmsg with ancillary data).
        sock = transport._sock
        assert isinstance(sock, socket.socket)
        assert sock.fileno() == transport.get_extra_info("socket").fileno()
        assert sock.getsockname() == transport.get_extra_info("sockname")
        # `_buffer`: the send queue, empty while the kernel takes every datagram at once.
        assert isinstance(transport._buffer, collections.deque) and not transport._buffer
        transport.sendto(b"x" * 100, addr)
        assert not transport._buffer and transport.get_write_buffer_size() == 0
        assert await sink.wait(1) == [b"x" * 100]
        # `_extra["peername"]`: set only for a connected endpoint.
        assert transport._extra.get("peername") is None
        assert connected._extra.get("peername") == connected.get_extra_info("peername") == addr
        # `_protocol`: the endpoint's protocol, where send errors go.
        assert transport._protocol is endpoints.source
    finally:
        connected.close()


@pytest.mark.usefixtures("gso")
async def test_the_buffer_is_the_send_queue_when_the_kernel_pushes_back(tmp_path: Path) -> None:
    """A Unix datagram socket whose peer does not read pushes back (EAGAIN) once the peer's queue is
    full: asyncio keeps the rest in `_buffer`, in order; `send_datagrams` then queues behind it
    rather than overtaking it, and everything arrives in order once the peer reads."""
    loop = asyncio.get_running_loop()
    peer = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    peer.bind(str(tmp_path / "peer"))
    peer.setblocking(False)
    mine = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    mine.bind(str(tmp_path / "mine"))
    transport, _ = await loop.create_datagram_endpoint(Source, sock=mine)
    addr = str(tmp_path / "peer")
    try:
        sent: list[bytes] = []
        for i in range(10_000):
            sent.append(i.to_bytes(4, "big") * 50)
            transport.sendto(sent[-1], addr)
            if transport._buffer:
                break
        assert transport._buffer, "the kernel never pushed back"
        queued = len(transport._buffer)
        assert [d for d, _ in transport._buffer] == sent[-queued:]
        assert transport.get_write_buffer_size() == sum(len(d) for d, _ in transport._buffer)
        more = [bytes([200 + i]) * 200 for i in range(3)]
        forward.send_datagrams(transport, addr, more)
        assert [d for d, _ in transport._buffer] == sent[-queued:] + more
        got: list[bytes] = []
        async with asyncio.timeout(5):
            while len(got) < len(sent) + len(more):
                try:
                    got.append(peer.recv(4096))
                except BlockingIOError:
                    await asyncio.sleep(0.001)  # asyncio sends the queue as the peer makes room
        assert got == sent + more
        assert not transport._buffer
    finally:
        transport.close()
        peer.close()


@pytest.mark.usefixtures("gso")
async def test_gso_sends_runs_in_one_call_and_they_arrive_as_the_datagrams(endpoints: Endpoints) -> None:
    sent, one_by_one = await send_frames(endpoints)
    got = endpoints.sink.got
    # Every datagram on its own, its size kept (the segment boundaries), in order ...
    assert [len(d) for d in got] == [len(d) for d in sent]
    assert got == sent
    # ... and only the one-packet frame through asyncio's one-at-a-time path: the kernel took
    # the runs on `_sock`.
    assert one_by_one == [300]
    assert forward.GSO and endpoints.source.errors == []


@pytest.mark.usefixtures("gso")
async def test_a_refused_gso_falls_back_to_one_datagram_per_call(endpoints: Endpoints) -> None:
    """The kernel refuses UDP_SEGMENT on a socket without UDP checksums (EINVAL): GSO goes off for
    good, and that frame and the next go out one datagram at a time, all of them arriving."""
    endpoints.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    sent, one_by_one = await send_frames(endpoints)
    assert endpoints.sink.got == sent
    assert forward.GSO is False  # the refusal came from the real `_sock`
    assert one_by_one == [len(d) for d in sent]
    assert endpoints.source.errors == []
