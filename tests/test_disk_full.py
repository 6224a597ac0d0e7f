"""A full disk at the server's edges, on a real small tmpfs: creating a session is a JSON 503
`storage_full` that creates nothing, the first connection to a session is refused with that code,
and a session's status written while the disk is full reaches the store once space returns."""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest

from classroom.client import ClassroomClient, ClassroomError
from classroom.keys import SESSIONS

from .conftest import running_server
from .test_shutdown import fill, small_disk  # noqa: F401 - the fixture


def _stored_status(data_dir, session_id: str) -> str:
    db = sqlite3.connect(data_dir / "classcast.db")
    try:
        return db.execute("SELECT status FROM sessions WHERE id = ?", (session_id,)).fetchone()[0]
    finally:
        db.close()


async def test_creating_a_session_on_a_full_disk_is_a_503_and_creates_nothing(small_disk):  # noqa: F811
    data = small_disk / "data"
    async with running_server(data) as server:
        before = await server.create_session("Before")
        filler = fill(small_disk)
        url = f"{server.base_url}/api/sessions"
        for i in range(20):  # the database's last page may take a row or two
            async with server.http.post(
                url, json={"title": f"Full {i} " + "x" * 190}, headers=server.admin
            ) as r:
                status, ctype, body = r.status, r.content_type, await r.read()
                if status != 201:
                    break
        assert status == 503 and ctype == "application/json", (status, body)
        error = json.loads(body)["error"]
        assert error["code"] == "storage_full" and error["message"]
        created = await server.app[SESSIONS].store.list()
        filler.unlink()
        assert [s.title for s in await server.app[SESSIONS].store.list()] == [s.title for s in created]
        assert before["id"] in {s.id for s in created}
        after = await server.create_session("After")
        assert after["title"] == "After"


async def test_first_connect_on_a_full_disk_is_refused_with_a_code(small_disk):  # noqa: F811
    data = small_disk / "data"
    async with running_server(data) as server:
        info = await server.create_session()
        filler = fill(small_disk)
        client = ClassroomClient(info["trainer_url"], reconnect=False)
        with pytest.raises(ClassroomError) as refused:
            await client.connect()
        await client.close()
        assert getattr(refused.value, "code", None) == "storage_full", repr(refused.value)
        filler.unlink()
        trainer = await server.client(info["trainer_url"])
        assert (await trainer.request("session.start"))["ok"]


async def test_a_status_written_on_a_full_disk_is_saved_when_space_returns(small_disk):  # noqa: F811
    data = small_disk / "data"
    async with running_server(data) as server:
        info = await server.create_session()
        trainer = await server.client(info["trainer_url"])
        filler = fill(small_disk)
        ack = await trainer.send("session.start", {})
        assert ack["ok"] or ack["error"]["code"] == "storage_failed", ack
        await asyncio.sleep(0.5)
        assert _stored_status(data, info["id"]) == "created"  # the write failed
        filler.unlink()
        for _ in range(100):
            if _stored_status(data, info["id"]) == "live":
                break
            await asyncio.sleep(0.1)
        assert _stored_status(data, info["id"]) == "live"
        assert (await trainer.request("session.end"))["ok"]
        for _ in range(50):
            if _stored_status(data, info["id"]) == "ended":
                break
            await asyncio.sleep(0.1)
        assert _stored_status(data, info["id"]) == "ended"


async def test_a_status_lost_before_a_restart_is_read_again_from_the_log(tmp_path):
    data = tmp_path / "data"
    async with running_server(data) as server:
        info, trainer = await server.live_session()
        await trainer.request("session.end")
    # What a status write lost to a full disk (or a crash) leaves: the log says ended.
    db = sqlite3.connect(data / "classcast.db")
    with db:
        db.execute("UPDATE sessions SET status = 'live', ended_at = NULL WHERE id = ?", (info["id"],))
    db.close()
    async with running_server(data) as server:
        assert _stored_status(data, info["id"]) == "live"
        async with server.http.get(
            f"{server.base_url}/api/recordings/{info['id']}", headers=server.admin
        ) as r:
            assert r.status == 200
        link = server.base_url + "/s/" + info["trainer_url"].split("/s/")[1]  # this server's port
        client = ClassroomClient(link, reconnect=False)
        await client.connect()
        await client.close()
        assert _stored_status(data, info["id"]) == "ended"
        sessions = await server.app[SESSIONS].store.list()
        assert sessions[0].status == "ended" and sessions[0].ended_at is not None
