"""Packets that do not decode get an `invalid_payload` ack (when they ask for one) instead of a
logged traceback; a client that keeps sending them is disconnected, with one log line for all."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import pytest

from classroom.keys import SESSIONS

from .conftest import Server


class RawSocket:
    """A socket.io client on a bare websocket: sends exactly the bytes a test wants."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.frames: list[str] = []
        self.next_id = 1

    @classmethod
    async def open(cls, server: Server, link: str, join: dict[str, Any] | None = None) -> RawSocket:
        token = link.split("token=")[1]
        url = server.base_url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        sock = cls(await server.http.ws_connect(url))
        assert (await sock.ws.receive_str()).startswith("0")
        await sock.ws.send_str("40" + json.dumps({"token": token}))
        assert (await sock.ws.receive_str()).startswith("40")
        if join is not None:
            ack = await sock.call("join", join)
            assert ack["ok"], ack
        return sock

    async def call(self, name: str, payload: Any = None, raw: str | None = None) -> dict[str, Any]:
        """Send an event with an ack id (or `raw` after the id) and return the ack's payload."""
        n = self.next_id
        self.next_id += 1
        body = raw if raw is not None else json.dumps([name, payload] if payload is not None else [name])
        await self.ws.send_str(f"42{n}{body}")
        prefix = f"43{n}"
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), 10)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"closed: {msg.type}")
            self.frames.append(msg.data)
            if msg.data.startswith(prefix):
                return json.loads(msg.data[len(prefix) :])[0]

    async def until_closed(self, timeout: float = 10) -> list[str]:
        """Every text frame until the server closes the connection."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return self.frames
                self.frames.append(msg.data)


DEEP = "[" * 1000 + "]" * 1000


@pytest.mark.parametrize(
    "raw, why",
    [
        ('["chat.send",{"text":"\\ud800"}]', "lone surrogate"),
        ('["chat.send",{"text":' + DEEP + "}]", "1000-deep JSON"),
        ('["chat.send",{"text":' + "[" * 17 + "]" * 17 + "}]", "17-deep JSON"),
        ('["chat.send",{"text":1' + "0" * 5000 + "}]", "5001-digit integer"),
        ('["chat.send",', "truncated JSON"),
        ('{"name":"chat.send"}', "not a list"),
        ("[42]", "a name that is not a string"),
    ],
)
async def test_a_packet_that_does_not_decode_gets_invalid_payload(
    server: Server, caplog: pytest.LogCaptureFixture, raw: str, why: str
):
    info, _trainer = await server.live_session()
    sock = await RawSocket.open(server, info["join_url"], {"name": "Mal"})
    live = server.app[SESSIONS].live[info["id"]]
    seq = live.state.seq
    with caplog.at_level(logging.INFO):
        ack = await sock.call("", raw=raw)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload", (why, ack)
    assert ack["error"]["message"]
    assert live.state.seq == seq
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], why
    # The connection is still usable.
    assert (await sock.call("chat.send", {"text": "fine"}))["ok"]


async def test_a_client_that_keeps_sending_garbage_is_disconnected_and_logged_once(
    server: Server, caplog: pytest.LogCaptureFixture
):
    info, trainer = await server.live_session()
    sock = await RawSocket.open(server, info["join_url"], {"name": "Mal"})
    garbage = ["42[", "4x", '42{"a":1}', "49", "44{}", '421["chat.send",{"text":"\\udfff"}]']
    sent = 0
    with caplog.at_level(logging.INFO):
        try:
            for i in range(2_000):
                await sock.ws.send_str(garbage[i % len(garbage)])
                sent += 1
        except ConnectionError:
            pass
        frames = await sock.until_closed()
    closing = [json.loads(f[2:]) for f in frames if f.startswith('42["closing"')]
    assert closing and closing[0][1]["code"] == "bad_packets", frames[-3:]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], errors[:2]
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) <= 2, [r.getMessage() for r in lines]
    # Others are not disturbed.
    assert (await trainer.request("chat.send", text="still here"))["ok"]
