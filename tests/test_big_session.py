"""Large sessions stay joinable: a history far over 4 MiB (the stock python-socketio client's
message limit) and over the 8 MiB slow-consumer bound is joined with a bounded snapshot, by the
bundled client and by a stock `socketio.AsyncClient`, before and after a restart; older history
comes page by page on demand."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import socketio

from classroom.client import ClassroomClient
from classroom.core.history import SNAPSHOT_BYTES
from classroom.keys import SESSIONS

from .conftest import Server, running_server
from .rawws import RawLearner, client_frame, read_frame

MESSAGES = 6000  # 2,000-character messages: about 12 MB of chat
TEXT = "x" * 1990


async def _big_session(server: Server) -> tuple[dict[str, Any], ClassroomClient, list[str]]:
    """A live session with MESSAGES long chat messages and a second, busy board page, written
    through the session core directly (no rate limits, no round trips) and so to the log."""
    info, trainer = await server.live_session("Big")
    live = await server.app[SESSIONS].get(info["id"])
    assert live is not None
    pid = trainer.you["id"]
    ids = []
    for i in range(MESSAGES):
        out = live.execute(pid, "chat.send", {"text": f"{i:05d} {TEXT}"})
        ids.append(out.reply["id"])
        if i % 500 == 0:
            await live.durable(out)
    first_page = live.state.board["current"]
    page = live.execute(pid, "wb.page.add", {}).reply["id"]
    live.execute(pid, "wb.page.switch", {"page_id": page})
    for i in range(50):
        live.execute(pid, "wb.shape", {"kind": "rect", "x1": i, "y1": i, "x2": i + 5, "y2": i + 5})
    out = live.execute(pid, "wb.page.switch", {"page_id": first_page})
    await live.durable(out)
    await live.drain()
    return info, trainer, ids


async def _stock_join(server: Server, link: str, name: str) -> dict[str, Any]:
    """Join with python-socketio's own client and its defaults (4 MiB messages at most)."""
    token = link.split("token=")[1]
    sio = socketio.AsyncClient(reconnection=False)
    got: list[Any] = []
    sio.on("event", lambda e: got.append(e))
    await sio.connect(server.base_url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
    try:
        ack = await sio.call("join", {"name": name}, timeout=20)
        assert ack["ok"], ack
        # Still connected and served after the snapshot: a command round trip works.
        more = await sio.call("chat.history", {"before": ack["snapshot"]["chat"][0]["seq"]}, timeout=20)
        assert more["ok"], more
        return ack
    finally:
        await sio.disconnect()


async def _check_joinable(server: Server, info: dict[str, Any], ids: list[str]) -> None:
    link = server.base_url + "/" + info["join_url"].split("/", 3)[3]  # this server's port
    learner = await server.client(link, "Lea")
    size = len(json.dumps(learner.last_join, separators=(",", ":")).encode())
    assert size < SNAPSHOT_BYTES, size
    snap = learner.last_join["snapshot"]
    assert [m["id"] for m in snap["chat"]] == ids[-len(snap["chat"]) :]
    assert snap["more"]["chat"] == len(ids) - len(snap["chat"])
    # Only the current page's elements come with the snapshot; the other page is fetched.
    pages = {p["id"]: p["elements"] for p in snap["board"]["pages"]}
    assert [pid for pid, els in pages.items() if els is None] != []
    # The connection stays up after the snapshot: live events still arrive.
    ack = await learner.request("chat.send", text="still here")
    await learner.wait_for("chat.message", lambda e: e["seq"] == ack["seq"], timeout=10)
    ids.append(ack["id"])
    stock = await _stock_join(server, link, "Stock")
    assert len(stock["snapshot"]["chat"]) == len(snap["chat"])


async def test_a_session_far_over_4_mib_is_joinable_and_after_a_restart_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with running_server(data) as server:
        info, _trainer, ids = await _big_session(server)
        await _check_joinable(server, info, ids)
    async with running_server(data) as server:
        await _check_joinable(server, info, ids)


async def test_paging_returns_every_older_message_once_in_order_and_board_pages_load(server: Server) -> None:
    info, trainer, ids = await _big_session(server)
    learner = await server.client(info["join_url"], "Lea")
    snap = learner.last_join["snapshot"]
    seen = [m["id"] for m in snap["chat"]]
    pages = 0
    while True:
        ack = await learner.history("chat.history", limit=100)
        pages += 1
        got = [m["id"] for m in ack["messages"]]
        seen = got + seen
        if not ack["more"]:
            break
    assert seen == ids
    assert pages == -(-(MESSAGES - len(snap["chat"])) // 100)
    # The client folded every page in: its chat is the whole history, in order.
    assert list(learner.state.chat) == ids
    # A page not in the snapshot loads on demand, with every element.
    other = next(p["id"] for p in snap["board"]["pages"] if p["elements"] is None)
    ack = await learner.request("board.page.get", page_id=other)
    assert ack["page"]["id"] == other and len(ack["page"]["elements"]) == 50
    assert len(learner.state.board["pages"][other]) == 50
    # A client that never fetched a page gets it when the trainer switches to it.
    late = await server.client(info["join_url"], "Leo")
    assert late.state.board["unloaded"] == {other}
    await trainer.request("wb.page.switch", page_id=other)
    await late.wait_until(lambda: len(late.view()["board"]["pages"][1]["elements"] or []) == 50, timeout=10)
    assert late.view()["board"] == (await server.client(info["join_url"], "Fresh")).view()["board"]


async def test_own_replies_do_not_count_as_falling_behind(server: Server) -> None:
    """A client that asks for many history pages and reads them slowly is not cut off as "too far
    behind" when the next event is broadcast: its own replies are not the stream it fell behind on."""
    info, trainer, _ids = await _big_session(server)
    slow = await RawLearner.connect(server.base_url, info["join_url"], "Slow")
    reader, writer, join = slow.reader, slow.writer, slow.join
    before = join["snapshot"]["chat"][0]["seq"]
    # About 14 MB of history pages asked for and not read yet.
    for i in range(70):
        writer.write(client_frame(f'42{i + 1}["chat.history",{{"before":{before},"limit":100}}]'))
    await writer.drain()
    await asyncio.sleep(1.0)  # the server writes the replies; the client reads none of them
    ack = await trainer.request("chat.send", text="after the pages")
    await asyncio.sleep(0.2)
    # Now read everything: the pages, then the broadcast message; the connection is still up.
    async with asyncio.timeout(20):
        while True:
            frame = await read_frame(reader)
            if frame.startswith(b'42["event"') and json.loads(frame[2:])[1]["seq"] == ack["seq"]:
                break
    writer.close()
