"""A learner on a bare websocket (no socket.io client library): the tests choose when it reads, so
it can fall behind the stream with its socket's buffers full."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any


def client_frame(text: str) -> bytes:
    """A masked websocket text frame, as a client sends it."""
    payload = text.encode()
    mask = b"\x01\x02\x03\x04"
    n = len(payload)
    head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big"))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """The payload of the next websocket frame from the server (unmasked, unfragmented)."""
    _b1, b2 = await reader.readexactly(2)
    n = b2 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    return await reader.readexactly(n)


class RawLearner:
    """One learner joined over a raw websocket with a small receive buffer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, join: dict[str, Any]):
        self.reader = reader
        self.writer = writer
        self.join = join
        self.port: int = writer.get_extra_info("sockname")[1]  # the client's side of the connection

    @classmethod
    async def connect(cls, base_url: str, join_url: str, name: str, rcvbuf: int = 64 * 1024) -> RawLearner:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        host, port = base_url.removeprefix("http://").split(":")
        sock.connect((host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**24)
        writer.write(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        await reader.readuntil(b"\r\n\r\n")
        assert (await read_frame(reader)).startswith(b"0")  # engine.io OPEN
        token = join_url.split("token=")[1]
        writer.write(client_frame("40" + json.dumps({"token": token})))
        assert (await read_frame(reader)).startswith(b"40")
        writer.write(client_frame('420["join",{"name":' + json.dumps(name) + "}]"))
        join = json.loads((await read_frame(reader))[3:])[0]
        return cls(reader, writer, join)

    def pause(self) -> None:
        """Stop reading: what the server sends piles up in the sockets' buffers, then the server's."""
        self.writer.transport.pause_reading()  # type: ignore[attr-defined]

    def resume(self) -> None:
        self.writer.transport.resume_reading()  # type: ignore[attr-defined]

    def send(self, text: str) -> None:
        self.writer.write(client_frame(text))

    async def events(self, until_seq: int, timeout: float = 20) -> list[dict[str, Any]]:
        """Read frames until the stream event `until_seq`; return the stream events read (pongs
        answered on the way, so the server keeps the connection)."""
        events: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while True:
                frame = await read_frame(self.reader)
                if frame == b"2":
                    self.writer.write(client_frame("3"))
                    continue
                if frame.startswith(b'42["event"'):
                    event = json.loads(frame[2:])[1]
                    events.append(event)
                    if event["seq"] == until_seq:
                        return events

    def close(self) -> None:
        self.writer.close()
