"""DELETE /api/recordings/{id} for sessions not yet started (with or without a log), and the
clear `recording_off` answer of every replay route for a session recorded off (issue 9)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from classroom.client import ClassroomError
from recorder.api import ASSIGNMENTS

from ..conftest import ADMIN_KEY
from .test_replay_api import call, create, fails, ok, token_of


async def _sessions(server) -> list[str]:
    return [s["id"] for s in (await ok(server, "GET", "/api/sessions", ADMIN_KEY))["sessions"]]


async def test_a_session_nobody_opened_can_be_deleted(server):
    first = await create(server, "Never opened")
    second = await create(server, "Never opened either")
    await fails(
        server, "DELETE", f"/api/recordings/{first['id']}", token_of(first["join_url"]), 403, "forbidden"
    )
    got, body = await call(server, "DELETE", f"/api/recordings/{first['id']}", ADMIN_KEY)
    assert (got, body) == (204, b"")
    got, _ = await call(server, "DELETE", f"/api/recordings/{second['id']}", token_of(second["trainer_url"]))
    assert got == 204
    assert first["id"] not in await _sessions(server) and second["id"] not in await _sessions(server)
    await fails(server, "DELETE", f"/api/recordings/{first['id']}", ADMIN_KEY, 404, "not_found")
    await fails(server, "GET", f"/api/sessions/{first['id']}", ADMIN_KEY, 404, "not_found")


async def test_a_session_opened_but_not_started_can_be_deleted(server):
    info = await create(server, "Opened")
    trainer = await server.client(info["trainer_url"], "Tess")
    learner = await server.client(info["join_url"], "Ada")
    assert trainer.view()["status"] == "created"
    got, _ = await call(server, "DELETE", f"/api/recordings/{info['id']}", token_of(info["trainer_url"]))
    assert got == 204
    assert info["id"] not in await _sessions(server)
    # Nobody stays connected to the deleted session, and nothing of it comes back.
    for client in (trainer, learner):
        for _ in range(200):
            if not client.sio.connected:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("still connected")
    await client.close()
    try:
        await server.client(info["join_url"], "Bob")
    except ClassroomError as exc:
        assert exc.code == "not_found"
    else:
        raise AssertionError("joined a deleted session")
    assert info["id"] not in await _sessions(server)


async def test_a_live_session_cannot_be_deleted_an_ended_one_can(server):
    info, trainer = await server.live_session("Live")
    await fails(server, "DELETE", f"/api/recordings/{info['id']}", ADMIN_KEY, 409, "session_live")
    await trainer.request("session.end")
    got, _ = await call(server, "DELETE", f"/api/recordings/{info['id']}", ADMIN_KEY)
    assert got == 204 and info["id"] not in await _sessions(server)


async def test_recording_off_answers_a_clear_error_everywhere(server):
    info = await create(server, "Off the record", recording=False)
    rid = info["id"]
    trainer = await server.client(info["trainer_url"], "Tess")
    await trainer.request("session.start")
    await trainer.request("chat.send", text="not kept")
    replay = token_of(info["replay_url"])
    routes = [
        ("GET", f"/api/recordings/{rid}", None),
        ("GET", f"/api/recordings/{rid}/events", None),
        ("GET", f"/api/recordings/{rid}/state?t=0", None),
        ("GET", f"/api/recordings/{rid}/export/chat.txt", None),
        ("POST", f"/api/recordings/{rid}/viewers", {"name": "V"}),
        ("GET", f"/api/recordings/{rid}/questions", None),
        ("GET", f"/api/recordings/{rid}/quiz", None),
        ("POST", f"/api/recordings/{rid}/questions", {"t": 0, "text": "Why?"}),
        ("POST", f"/api/recordings/{rid}/quiz/p1", {"choices": [0]}),
        ("POST", f"/api/recordings/{rid}/questions/q1/answer", {"text": "Because"}),
    ]
    for ended in (False, True):
        for method, path, body in routes:
            message = await fails(server, method, path, replay, 409, "recording_off", json=body)
            assert "recording off" in message
            # Still no probing without a token.
            await fails(server, method, path, None, 401, "unauthorized", json=body)
        listed = await ok(server, "GET", "/api/recordings", token_of(info["trainer_url"]))
        assert listed == {"recordings": [{"id": rid, "error": "recording_off"}]}
        if not ended:
            await trainer.request("session.end")
            await trainer.wait_for("session.ended")
    await fails(server, "GET", "/api/recordings/NoSuchOne/questions", replay, 403, "wrong_session")
    got, _ = await call(server, "DELETE", f"/api/recordings/{rid}", ADMIN_KEY)
    assert got == 204 and rid not in await _sessions(server)


async def test_deleting_a_recording_deletes_its_assignments(server):
    info, trainer = await server.live_session("Assigned, then deleted")
    await trainer.request("session.end")
    await trainer.wait_for("session.ended")
    rid = info["id"]
    body = {"deadline": (datetime.now(UTC) + timedelta(days=1)).isoformat(), "assignees": [{"name": "Ada"}]}
    made = await ok(server, "POST", f"/api/sessions/{rid}/assignments", ADMIN_KEY, 201, json=body)
    stored = server.app[ASSIGNMENTS].root / f"{rid}.json"
    assert stored.exists()
    got, _ = await call(server, "DELETE", f"/api/recordings/{rid}", ADMIN_KEY)
    assert got == 204 and not stored.exists()
    link = made["assignees"][0]["link"]
    await fails(server, "GET", f"/api/recordings/{rid}/assignment", token_of(link), 404, "not_found")
    await fails(server, "GET", f"/api/sessions/{rid}/assignments", ADMIN_KEY, 404, "not_found")
