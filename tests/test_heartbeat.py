"""The heartbeat (`signaling/websocket.py`): pings go out after each pong, and a client that stops
answering them is disconnected, its TCP connection included, even while it keeps sending other
packets. engine.io alone marks such a socket closed without writing its CLOSE packet, so the
connection stayed open (and a join sent on it went unanswered) for as long as the client talked."""

from __future__ import annotations

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
