"""`ClassroomClient` keeps the personal Socket.IO events (outside the stream) it has no handler of
its own for, against a real server: `closing` when the server stops, here."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from classroom.client import ClassroomClient

from .conftest import running_server


async def test_personal_events_are_kept_and_waited_for(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data") as server:
        info, _trainer = await server.live_session()
        ada = ClassroomClient(info["join_url"], "Ada", reconnect=False)
        bob = ClassroomClient(info["join_url"], "Bob", reconnect=False)
        await ada.connect()
        await bob.connect()
        await ada.request("chat.send", text="stream events are not personal")
        await ada.wait_for("chat.message")
        handled: list[Any] = []
        ada.on_personal("closing", handled.append)
        own: list[Any] = []
        bob.sio.on("closing", own.append)  # Bob's own handler takes the event
        waiting = asyncio.create_task(
            ada.wait_personal("closing", lambda d: d["code"] == "server_closing", 10)
        )
        await asyncio.sleep(0.1)
        assert not waiting.done() and ada.personal == []
    closing = await waiting  # the server stopped: it told every socket why
    assert closing["code"] == "server_closing", closing
    assert ada.personal == [("closing", closing)]
    assert handled == [closing]
    assert await ada.wait_personal("closing", timeout=0.1) == closing  # found among those received
    assert bob.personal == [] and own == [closing]
    for c in (ada, bob):
        await c.close()
