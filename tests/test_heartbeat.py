"""The heartbeat (`signaling/websocket.py`): pings go out after each pong, and a client that stops
answering them is disconnected, its TCP connection included, even while it keeps sending other
packets. engine.io alone marks such a socket closed without writing its CLOSE packet, so the
connection stayed open (and a join sent on it went unanswered) for as long as the client talked."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from classroom.keys import HUB

from .conftest import Server

INTERVAL = 1  # engine.io ping interval and timeout for this test, in seconds


async def _frame(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> str | None:
    """The next text frame, or None once the connection is closed."""
    msg = await ws.receive(timeout=timeout)
    return msg.data if msg.type == aiohttp.WSMsgType.TEXT else None


async def test_pings_follow_pongs_and_a_silent_client_is_cut_off(server: Server):
    eio = server.app[HUB].sio.eio
    eio.ping_interval = eio.ping_timeout = INTERVAL
    info, trainer = await server.live_session()
    url = server.base_url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    ws = await server.http.ws_connect(url)
    try:
        assert (await _frame(ws, 5) or "").startswith("0")
        token = info["join_url"].split("token=")[1]
        await ws.send_str("40" + json.dumps({"token": token}))
        assert (await _frame(ws, 5) or "").startswith("40")
        await ws.send_str('420["join",{"name":"Quiet Quinn"}]')
        pid, pings = None, 0
        while pid is None or pings < 3:  # answered: the heartbeat pings one interval after each pong
            frame = await _frame(ws, INTERVAL + 5)
            assert frame is not None, "closed while answering every ping"
            if frame == "2":
                pings += 1
                await ws.send_str("3")
            elif frame.startswith("430"):
                pid = json.loads(frame[3:])[0]["you"]["id"]
        # From now on no pong, but a packet every 0.2 s (NOOP): the read loop never goes quiet.
        t0 = time.monotonic()
        closed_after = None
        while time.monotonic() - t0 < 8 * INTERVAL:
            try:
                await ws.send_str("6")
                frame = await _frame(ws, 0.2)
            except TimeoutError:
                continue
            except ConnectionResetError:  # closed between two reads
                frame = None
            if frame is None:
                closed_after = time.monotonic() - t0
                break
        assert closed_after is not None, "the connection of a client that stopped answering pings stayed open"
        # The next ping within an interval (plus a heartbeat), then the timeout (plus a heartbeat).
        assert closed_after < 2 * INTERVAL + 3
        await trainer.wait_for("participant.left", lambda e: e["data"]["id"] == pid, timeout=5)
    finally:
        await ws.close()


async def _learner(server: Server, info: dict) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    """A raw engine.io/socket.io websocket learner that has joined: (its websocket, its id)."""
    url = server.base_url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    ws = await server.http.ws_connect(url)
    assert (await _frame(ws, 5) or "").startswith("0")
    await ws.send_str("40" + json.dumps({"token": info["join_url"].split("token=")[1]}))
    assert (await _frame(ws, 5) or "").startswith("40")
    await ws.send_str('420["join",{"name":"Learner"}]')
    while True:
        frame = await _frame(ws, 5)
        assert frame is not None, "closed before the join ack"
        if frame.startswith("430"):
            return ws, json.loads(frame[3:])[0]["you"]["id"]


async def test_only_the_learners_that_stop_answering_are_cut_off(server: Server):
    """The heartbeat checks the pings awaiting a pong, not every socket: of learners pinged in the
    same seconds, those that answer stay, and one silent from its very first ping (sent by engine.io
    itself) and one that stops later are both closed within an interval and a timeout."""
    eio = server.app[HUB].sio.eio
    eio.ping_interval = eio.ping_timeout = INTERVAL
    info, trainer = await server.live_session()
    answering = [await _learner(server, info) for _ in range(4)]
    never, never_id = await _learner(server, info)
    later, later_id = await _learner(server, info)
    t0 = time.monotonic()

    async def watch(ws: aiohttp.ClientWebSocketResponse, answer_for: float) -> float | None:
        """Answer pings for `answer_for` seconds, then stay silent; when the server closed it."""
        pings = 0
        while time.monotonic() - t0 < 5 * INTERVAL + 3:
            try:
                frame = await _frame(ws, 0.2)
            except TimeoutError:
                continue
            if frame is None:
                return time.monotonic()
            if frame == "2":
                pings += 1
                if time.monotonic() - t0 < answer_for:
                    await ws.send_str("3")
        assert pings, "never pinged"
        return None

    try:
        ends = await asyncio.gather(
            *(watch(ws, 60) for ws, _ in answering), watch(never, 0), watch(later, 2 * INTERVAL + 0.5)
        )
        assert ends[:4] == [None] * 4, "a learner answering every ping was cut off"
        assert ends[4] is not None and ends[5] is not None, "a silent learner stayed connected"
        # Silent from the start: its first ping an interval after the join, then the timeout (plus
        # a heartbeat and the first ping's rounding to it).
        assert ends[4] - t0 < 2 * INTERVAL + 2.5
        # Silent from ~2.5 intervals on: its last unanswered ping within an interval, then the timeout.
        assert ends[5] - ends[4] > 0.5 * INTERVAL, "closed before its pings went unanswered"
        for pid in (never_id, later_id):
            await trainer.wait_for("participant.left", lambda e, pid=pid: e["data"]["id"] == pid, timeout=5)
        assert len(server.app[HUB].sio.eio.sockets) == 1 + 4  # the trainer and the answering learners
    finally:
        for ws in [never, later, *(ws for ws, _ in answering)]:
            await ws.close()


async def test_a_client_close_packet_ends_its_connection(server: Server):
    """engine.io closes a socket on the client's CLOSE packet but leaves its connection: the read
    loop ends it at once (before, only the next heartbeat did)."""
    info, trainer = await server.live_session()
    ws, pid = await _learner(server, info)
    try:
        await ws.send_str("1")
        t0 = time.monotonic()
        while (frame := await _frame(ws, 5)) is not None:
            assert frame != "2", f"still open: {frame}"
        assert time.monotonic() - t0 < 1
        await trainer.wait_for("participant.left", lambda e: e["data"]["id"] == pid, timeout=5)
    finally:
        await ws.close()


async def test_a_silent_long_polling_learner_is_cut_off(server: Server):
    """A socket on long-polling (no websocket here) is pinged by engine.io itself: the heartbeat's
    pass over every socket, made only while such sockets are open, still closes it once silent."""
    eio = server.app[HUB].sio.eio
    eio.ping_interval = eio.ping_timeout = INTERVAL
    info, trainer = await server.live_session()  # on a websocket
    url = server.base_url + "/socket.io/?EIO=4&transport=polling"
    async with server.http.get(url) as r:
        sid = json.loads((await r.text())[1:])["sid"]
    url += f"&sid={sid}"

    async def post(packet: str) -> None:
        async with server.http.post(url, data=packet) as r:
            assert r.status == 200

    async def get() -> list[str]:
        async with server.http.get(url) as r:
            return (await r.text()).split("\x1e")

    await post("40" + json.dumps({"token": info["join_url"].split("token=")[1]}))
    assert (await get())[0].startswith("40")
    await post('420["join",{"name":"Polly"}]')
    pid = None
    while pid is None:
        for packet in await get():
            if packet.startswith("430"):
                pid = json.loads(packet[3:])[0]["you"]["id"]
            elif packet == "2":
                await post("3")
    t0 = time.monotonic()  # from now on, no poll and no pong
    await trainer.wait_for("participant.left", lambda e: e["data"]["id"] == pid, timeout=2 * INTERVAL + 5)
    assert time.monotonic() - t0 < 2 * INTERVAL + 3
    assert sid not in eio.sockets
