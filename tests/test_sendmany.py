"""The fan-out's native write (signaling/sendmany.py, signaling/_sendmany.c): one call writes a frame
to every socket of a room, and whatever it cannot write directly (a transport holding bytes, a
full socket, a closing connection) keeps the transport's order or is left alone. Real loopback TCP
connections on uvloop, in both ways of sending, and a real server with a learner falling behind."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from classroom.keys import SESSIONS
from signaling import fanout as fanout_module
from signaling import sendmany
from signaling.sendmany import Room
from signaling.websocket import write_frame

from .conftest import Server, barrier, running_server
from .rawws import RawLearner

MODES = ["io_uring", "send"]


def test_the_native_send_is_built_and_on_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make install` builds the extension (optional at install, so a missing build would only
    show here, as a slower server)."""
    monkeypatch.delenv("CLASSCAST_SEND", raising=False)
    assert sendmany._sendmany is not None
    assert sendmany.mode() in ("io_uring", "send")
    monkeypatch.setenv("CLASSCAST_SEND", "python")
    assert sendmany.mode() == "python"


class Accepted(asyncio.Protocol):
    def __init__(self, accepted: list[asyncio.Transport]) -> None:
        self.accepted = accepted

    def connection_made(self, transport: Any) -> None:  # uvloop's are not asyncio.Transport
        self.accepted.append(transport)


async def _pairs(
    n: int, rcvbuf: int | None = None
) -> AsyncIterator[tuple[list[asyncio.Transport], list[Any]]]:
    """`n` server-side transports on the running loop and their clients' sockets."""
    loop = asyncio.get_running_loop()
    accepted: list[asyncio.Transport] = []
    server = await loop.create_server(lambda: Accepted(accepted), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clients = []
    for _ in range(n):
        c = socket.socket()
        if rcvbuf:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        c.connect(("127.0.0.1", port))
        clients.append(c)
    async with asyncio.timeout(5):
        while len(accepted) < n:
            await asyncio.sleep(0.01)
    # Accepted in any order: pair each transport with its client by port.
    by_port = {t.get_extra_info("peername")[1]: t for t in accepted}
    transports = [by_port[c.getsockname()[1]] for c in clients]
    if rcvbuf:  # and a small send buffer on the server's side: the socket fills soon
        for t in transports:
            t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, rcvbuf)
    try:
        yield transports, clients
    finally:
        for c in clients:
            c.close()
        for t in transports:
            t.abort()
        server.close()


def _room(transports: list[asyncio.Transport]) -> Room:
    members = {f"s{i}": f"e{i}" for i in range(len(transports))}
    return Room(members, {f"e{i}": t for i, t in enumerate(transports)}, 0)


def _read(client: socket.socket, n: int, timeout: float = 10) -> bytes:
    client.settimeout(timeout)
    got = b""
    while len(got) < n:
        chunk = client.recv(n - len(got))
        assert chunk, f"connection closed after {len(got)} of {n} bytes"
        got += chunk
    return got


def _run(mode: str, body: Any) -> None:
    sendmany._sendmany.set_mode(mode)
    try:
        uvloop.run(body())
    finally:
        sendmany._sendmany.set_mode("io_uring")


@pytest.mark.parametrize("mode", MODES)
def test_every_socket_gets_the_frame_once_and_skipped_ones_nothing(mode: str) -> None:
    async def body() -> None:
        async for transports, clients in _pairs(6):
            room = _room(transports)
            assert room.send(b"one", write_frame) == 6
            assert room.send(b"two", write_frame, skip={"s1", "s4"}) == 4
            for i, c in enumerate(clients):
                want = b"one" if i in (1, 4) else b"onetwo"
                assert _read(c, len(want)) == want
                c.setblocking(False)
                with pytest.raises(BlockingIOError):  # nothing more
                    c.recv(10)

    _run(mode, body)


@pytest.mark.parametrize("mode", MODES)
def test_a_transport_holding_bytes_gets_the_frame_after_them(mode: str) -> None:
    async def body() -> None:
        async for transports, clients in _pairs(4, rcvbuf=4096):
            big = bytes(range(256)) * 8192  # 2 MiB: far more than the sockets hold
            transports[2].write(big)
            assert transports[2].get_write_buffer_size() > 0
            room = _room(transports)
            assert room.send(b"frame", write_frame) == 4
            # A direct send would have overtaken the bytes still in the transport's buffer.
            assert await asyncio.to_thread(_read, clients[2], len(big) + 5) == big + b"frame"
            for i in (0, 1, 3):
                assert await asyncio.to_thread(_read, clients[i], 5) == b"frame"

    _run(mode, body)


@pytest.mark.parametrize("mode", MODES)
def test_a_full_socket_keeps_every_byte_in_order(mode: str) -> None:
    """A client that does not read: its socket fills, a send goes out in part or not at all, and
    the rest is the transport's; when the client reads, it gets every frame whole, in order."""

    async def body() -> None:
        async for transports, clients in _pairs(3, rcvbuf=4096):
            room = _room(transports)
            frames = [bytes([65 + i % 26]) * 3000 + b"|%d|" % i for i in range(400)]
            for frame in frames:  # about 1.2 MB each, more than the kernel buffers hold
                assert room.send(frame, write_frame) == 3
            assert transports[0].get_write_buffer_size() > 0  # the transports took over
            want = b"".join(frames)
            got = await asyncio.gather(*(asyncio.to_thread(_read, c, len(want)) for c in clients))
            assert got == [want] * 3

    _run(mode, body)


@pytest.mark.parametrize("mode", MODES)
def test_a_closing_transport_is_left_alone(mode: str) -> None:
    async def body() -> None:
        async for transports, clients in _pairs(4):
            transports[1].close()
            room = _room(transports)
            assert room.send(b"frame", write_frame) == 3
            clients[1].settimeout(5)
            assert await asyncio.to_thread(clients[1].recv, 10) == b""  # the close, nothing after it
            for i in (0, 2, 3):
                assert await asyncio.to_thread(_read, clients[i], 5) == b"frame"

    _run(mode, body)


async def test_a_learner_falling_behind_gets_every_event_in_order_and_the_rest_at_once(
    server: Server,
) -> None:
    """Through the server: a learner whose socket is full is written through its transport, after
    what it holds; the others keep getting each event from the native path meanwhile."""
    info, trainer = await server.live_session()
    learners = list(await asyncio.gather(*(server.client(info["join_url"], f"L{i}") for i in range(5))))
    slow = await RawLearner.connect(server.base_url, info["join_url"], "Slow", rcvbuf=4096)
    slow.pause()
    await barrier(trainer, *learners)
    # The server's side of that connection holds little too, so the stream soon backs up.
    transports = server.app[SESSIONS].fanout.registry.by_eio_sid
    eio_sid = next(sid for sid, t in transports.items() if t.get_extra_info("peername")[1] == slow.port)
    transports[eio_sid].get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    fanout = server.app[SESSIONS].fanout
    native = fanout.native
    acks = []
    for i in range(60):
        acks.append(await trainer.request("chat.send", text=f"{i:02d} " + "x" * 1900))
        if i == 10:  # the others have had everything so far while the slow one reads nothing
            await asyncio.gather(
                *(c.wait_for("chat.message", lambda e: e["seq"] == acks[10]["seq"]) for c in learners)
            )
    assert fanout.native - native >= 60
    assert transports[eio_sid].get_write_buffer_size() > 0  # it did fall behind
    slow.resume()
    events = await slow.events(acks[-1]["seq"])
    chat = [e for e in events if e["type"] == "chat.message"]
    assert [e["data"]["text"][:2] for e in chat] == [f"{i:02d}" for i in range(60)]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[-1] + 1))  # gapless
    slow.send('421["chat.send",{"text":"still here"}]')
    await trainer.wait_for("chat.message", lambda e: e["data"]["text"] == "still here")
    slow.close()


async def test_rooms_follow_joins_and_leaves(server: Server) -> None:
    """A room's list is kept between events and rebuilt when someone joins or leaves."""
    info, trainer = await server.live_session()
    learners = list(await asyncio.gather(*(server.client(info["join_url"], f"L{i}") for i in range(4))))
    await barrier(trainer, *learners)

    async def say(text: str, to: list[Any]) -> None:
        await trainer.request("chat.send", text=text)
        await asyncio.gather(*(c.wait_for("chat.message", lambda e: e["data"]["text"] == text) for c in to))

    await say("first", learners)
    late = await server.client(info["join_url"], "Late")
    await say("second", [*learners, late])
    gone = learners.pop(0)
    await gone.close()
    await say("third", [*learners, late])
    assert not any(e["data"].get("text") == "third" for e in gone.events if e["type"] == "chat.message")
    texts = [e["data"]["text"] for e in late.events if e["type"] == "chat.message"]
    assert texts[-2:] == ["second", "third"]


@pytest.mark.parametrize("way", ["python", "send"])
async def test_the_other_ways_of_writing_deliver_the_same(
    way: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`CLASSCAST_SEND=python` (the asyncio writes, as without the extension) and `send` (the C loop
    of send(2)) deliver every event as io_uring does."""
    monkeypatch.setenv("CLASSCAST_SEND", way)
    try:
        async with running_server(tmp_path) as srv:
            info, trainer = await srv.live_session()
            learners = list(await asyncio.gather(*(srv.client(info["join_url"], f"L{i}") for i in range(5))))
            await barrier(trainer, *learners)
            fanout = srv.app[SESSIONS].fanout
            for text in ("one", "two"):
                await trainer.request("chat.send", text=text)
            for c in learners:
                await c.wait_for("chat.message", lambda e: e["data"]["text"] == "two")
                texts = [e["data"]["text"] for e in c.events if e["type"] == "chat.message"]
                assert texts == ["one", "two"]
            assert (fanout.native > 0) == (way != "python")
    finally:
        sendmany._sendmany.set_mode("io_uring")


@pytest.mark.parametrize("way", ["io_uring", "python"])
async def test_a_notice_to_a_room_leaves_the_loop_free_between_slices(
    way: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large session's presence summary goes out a slice of sockets at a time, paced, so a join
    storm's commands are served in between instead of waiting for every socket (and the learners'
    own event loops get it spread out too); every member gets it once."""
    monkeypatch.setenv("CLASSCAST_SEND", way)
    monkeypatch.setattr(fanout_module, "NOTIFY_SLICE", 2)
    monkeypatch.setattr(fanout_module, "NOTIFY_PAUSE", 0.01)
    async with running_server(tmp_path) as srv:
        info, trainer = await srv.live_session()
        learners = list(await asyncio.gather(*(srv.client(info["join_url"], f"L{i}") for i in range(7))))
        await barrier(trainer, *learners)
        fanout = srv.app[SESSIONS].fanout
        turns = 0

        async def other_work() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(other_work())
        await asyncio.sleep(0)
        before = turns
        summary = {"learners": 7, "trainers": 1, "hands": [], "reactions": {}}
        assert await fanout.notify(info["id"], "learner", "presence", summary) == 7
        between = turns - before
        task.cancel()
        assert between >= 3  # 7 sockets in slices of 2: the loop ran other work in between
        for c in learners:
            await c.wait_until(lambda c=c: c.presence == summary, 10)
