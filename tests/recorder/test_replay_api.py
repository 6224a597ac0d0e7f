"""The replay HTTP API over a real server: bad input and access rules (each a JSON error with a
stable code, changing nothing), ids that look like paths, corrupted logs, listing and deleting."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from yarl import URL

from recorder.api import LIBRARY
from recorder.logfile import iter_records
from recorder.replay import Recording

from ..conftest import ADMIN_KEY, barrier, running_server


def token_of(url: str) -> str:
    return url.split("token=")[1]


async def call(
    server, method: str, path: str, token: str | None = None, *, json: Any = None, raw_path: bool = False
) -> tuple[int, Any]:
    """One request; returns (status, JSON body or raw bytes)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    url: Any = URL(server.base_url + path, encoded=True) if raw_path else server.base_url + path
    async with server.http.request(method, url, headers=headers, json=json) as r:
        if r.content_type == "application/json":
            return r.status, await r.json()
        return r.status, await r.read()


async def fails(server, method: str, path: str, token: str | None, status: int, code: str, **kw) -> str:
    got, body = await call(server, method, path, token, **kw)
    assert got == status, (method, path, got, body)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    assert body["error"]["code"] == code, (method, path, body)
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]["message"]


async def ok(server, method: str, path: str, token: str | None, status: int = 200, **kw) -> Any:
    got, body = await call(server, method, path, token, **kw)
    assert got == status, (method, path, got, body)
    return body


async def create(server, title: str, **options: Any) -> dict[str, Any]:
    async with server.http.post(
        f"{server.base_url}/api/sessions", json={"title": title, **options}, headers=server.admin
    ) as r:
        assert r.status == 201, await r.text()
        return await r.json()


async def recorded_session(server, title: str = "Recorded", end: bool = True):
    """A started session with a trainer, two learners, chat and a quiz; ended unless told not to."""
    info, trainer = await server.live_session(title)
    ada = await server.client(info["join_url"], "Ada")
    bob = await server.client(info["join_url"], "Bob")
    await ada.request("chat.send", text=f"hello from {title}")
    quiz = await trainer.request("poll.open", question="2+2?", options=["3", "4"], correct=[1])
    await ada.request("poll.vote", poll_id=quiz["id"], choices=[1])
    await bob.request("poll.vote", poll_id=quiz["id"], choices=[0])
    await trainer.request("poll.close", poll_id=quiz["id"])
    await bob.request("chat.send", text="bye")
    await barrier(trainer, ada, bob)
    if end:
        await trainer.request("session.end")
        await ada.wait_for("session.ended")
    return info, trainer, ada, bob


def _root(server) -> Path:
    """data/recordings of this server."""
    return server.app[LIBRARY].root


ADMIN = ADMIN_KEY


# -- bad input ------------------------------------------------------------------------------------


async def test_unknown_recording_is_404_for_every_route(server):
    for method, path in [
        ("GET", "/api/recordings/NoSuchRecording"),
        ("GET", "/api/recordings/NoSuchRecording/events"),
        ("GET", "/api/recordings/NoSuchRecording/state?t=0"),
        ("GET", "/api/recordings/NoSuchRecording/export/chat.txt"),
        ("DELETE", "/api/recordings/NoSuchRecording"),
        ("POST", "/api/recordings/NoSuchRecording/viewers"),
        ("GET", "/api/recordings/NoSuchRecording/questions"),
        ("GET", "/api/recordings/NoSuchRecording/quiz"),
    ]:
        message = await fails(server, method, path, ADMIN, 404, "not_found")
        assert "NoSuchRecording" in message


async def test_existence_cannot_be_probed_without_a_token(server):
    info, *_ = await recorded_session(server)
    other, *_ = await recorded_session(server, "Other")
    for rid in (info["id"], "NoSuchRecording"):
        await fails(server, "GET", f"/api/recordings/{rid}", None, 401, "unauthorized")
        await fails(server, "GET", f"/api/recordings/{rid}/events", "forged", 401, "invalid_token")
        await fails(
            server, "GET", f"/api/recordings/{rid}", token_of(other["replay_url"]), 403, "wrong_session"
        )


async def test_path_like_ids_never_reach_outside_the_recordings(server):
    info, *_ = await recorded_session(server)
    rid = info["id"]
    root = _root(server)
    data_dir = root.parent
    real = root / rid / "events.log"
    manifest = await ok(server, "GET", f"/api/recordings/{rid}", ADMIN)
    # Valid-looking logs wherever a naive join of the id would land.
    long_id = "a" * 65
    planted = [
        data_dir / "events.log",  # recordings/../events.log
        root / "a" / "b" / "events.log",  # recordings/a/b/events.log
        data_dir / "x" / "events.log",  # recordings/../x/events.log
        root / long_id / "events.log",
    ]
    for p in planted:
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real, p)
    ids = [
        "..",
        "%2e%2e",
        "%2e%2e%2f",
        "..%2f",
        "%2e%2e%2fx",
        "..%2Fx",
        "a%2Fb",
        "a%2fb",
        ".",
        "%2e",
        long_id,
        "b" * 2000,
        f"{rid}%00",
        f"{rid}%0A",
        f"{rid}%2F..",
    ]
    for bad in ids:
        for method, suffix in [
            ("GET", ""),
            ("GET", "/events"),
            ("GET", "/state?t=0"),
            ("GET", "/export/chat.txt"),
            ("DELETE", ""),
        ]:
            message = await fails(
                server, method, f"/api/recordings/{bad}{suffix}", ADMIN, 404, "not_found", raw_path=True
            )
            assert message.startswith("no recording"), (bad, message)  # refused by the replay API itself
    for p in planted:
        assert p.read_bytes() == real.read_bytes()
    assert await ok(server, "GET", f"/api/recordings/{rid}", ADMIN) == manifest


async def test_events_and_state_parameters(server):
    info, *_ = await recorded_session(server)
    rid, replay = info["id"], token_of(info["replay_url"])
    manifest = await ok(server, "GET", f"/api/recordings/{rid}", replay)
    duration = manifest["duration_ms"]
    assert duration > 0
    base = f"/api/recordings/{rid}"
    cases = [
        ("/events?from=5&to=2", 400, "out_of_range"),
        ("/events?from=-1", 400, "out_of_range"),
        ("/events?to=-5", 400, "out_of_range"),
        ("/events?from=abc", 400, "invalid_payload"),
        ("/events?to=1.5", 400, "invalid_payload"),
        ("/events?from=", 400, "invalid_payload"),
        ("/events?audience=everyone", 400, "invalid_payload"),
        ("/state", 400, "invalid_payload"),
        ("/state?t=", 400, "invalid_payload"),
        ("/state?t=abc", 400, "invalid_payload"),
        ("/state?t=-1", 400, "out_of_range"),
        (f"/state?t={duration + 1}", 400, "out_of_range"),
        ("/state?t=0&audience=nobody", 400, "invalid_payload"),
    ]
    for suffix, status, code in cases:
        await fails(server, "GET", base + suffix, replay, status, code)
    # The edges themselves are fine.
    body = await ok(server, "GET", f"{base}/events?from=2&to=2", replay)
    assert body["from"] == 2 and body["to"] == 2
    assert all(e["t"] == 2 for e in body["events"])
    state = await ok(server, "GET", f"{base}/state?t={duration}", replay)
    assert state["t"] == duration and state["status"] == "ended"
    assert await ok(server, "GET", base, replay) == manifest


async def test_tokens_and_roles(server):
    info, trainer, ada, _bob = await recorded_session(server, "First")
    other, *_ = await recorded_session(server, "Second")
    rid = info["id"]
    base = f"/api/recordings/{rid}"
    log = _root(server) / rid / "events.log"
    before_log = log.read_bytes()
    manifest = await ok(server, "GET", base, ADMIN)
    viewer = await ok(server, "POST", f"{base}/viewers", token_of(info["replay_url"]), 201, json={})
    assert viewer["role"] == "replay" and viewer["name"] == "Viewer"

    readable = [
        ("GET", base),
        ("GET", f"{base}/events"),
        ("GET", f"{base}/state?t=0"),
        ("GET", f"{base}/export/chat.txt"),
        ("GET", f"{base}/questions"),
    ]
    everything = [
        *readable,
        ("DELETE", base),
        ("POST", f"{base}/viewers"),
        ("GET", f"{base}/quiz"),
        ("POST", f"{base}/questions/rX/answer"),
    ]
    for method, path in everything:
        await fails(server, method, path, None, 401, "unauthorized")
        await fails(server, method, path, "not-a-token", 401, "invalid_token")
        # Tokens of another session, of every kind.
        for url in ("replay_url", "join_url", "trainer_url"):
            await fails(server, method, path, token_of(other[url]), 403, "wrong_session")

    learner_like = {
        "replay link": token_of(info["replay_url"]),
        "learner link": token_of(info["join_url"]),
        "learner participant": ada.last_join["token"],
        "replay viewer": viewer["token"],
    }
    for who, token in learner_like.items():
        for method, path in readable:
            status, _ = await call(server, method, path, token)
            assert status == 200, (who, path)
        await fails(server, "DELETE", base, token, 403, "forbidden")
        for name in ("recording.json", "recording.msgpack", "polls.csv", "questions.csv"):
            await fails(server, "GET", f"{base}/export/{name}", token, 403, "forbidden")
        await fails(server, "GET", f"{base}/events?audience=trainer", token, 403, "forbidden")
        await fails(server, "GET", f"{base}/state?t=0&audience=trainer", token, 403, "forbidden")
        await fails(
            server, "POST", f"{base}/questions/rX/answer", token, 403, "forbidden", json={"text": "x"}
        )
        await fails(server, "GET", f"{base}/export/secrets.txt", token, 404, "not_found")
        await fails(server, "GET", f"{base}/export/..%2F..%2Fclasscast.db", token, 404, "not_found")
    for token in (ADMIN, token_of(info["trainer_url"]), trainer.last_join["token"]):
        await fails(server, "GET", f"{base}/export/secrets.txt", token, 404, "not_found")
        assert (await call(server, "GET", f"{base}/events?audience=trainer", token))[0] == 200
        assert (await call(server, "GET", f"{base}/export/polls.csv", token))[0] == 200
    # Nothing above changed anything.
    assert await ok(server, "GET", base, ADMIN) == manifest
    assert log.read_bytes() == before_log
    listed = await ok(server, "GET", "/api/recordings", ADMIN)
    assert sorted(r["id"] for r in listed["recordings"]) == sorted([rid, other["id"]])


async def test_listing_recordings(server):
    first, *_ = await recorded_session(server, "First")
    second, *_ = await recorded_session(server, "Second", end=False)
    # A session nobody ever joined has no log yet, and is not listed.
    await create(server, "Never joined")
    everything = await ok(server, "GET", "/api/recordings", ADMIN)
    by_id = {r["id"]: r for r in everything["recordings"]}
    assert set(by_id) == {first["id"], second["id"]}
    assert by_id[first["id"]]["title"] == "First" and by_id[first["id"]]["status"] == "ended"
    assert by_id[second["id"]]["status"] == "live"
    assert by_id[first["id"]]["participants"] == 2
    assert all("damage" not in r for r in everything["recordings"])

    mine = await ok(server, "GET", "/api/recordings", token_of(first["trainer_url"]))
    assert [r["id"] for r in mine["recordings"]] == [first["id"]]
    mine = await ok(server, "GET", "/api/recordings", token_of(second["trainer_url"]))
    assert [r["id"] for r in mine["recordings"]] == [second["id"]]
    await fails(server, "GET", "/api/recordings", None, 401, "unauthorized")
    for url in ("replay_url", "join_url"):
        await fails(server, "GET", "/api/recordings", token_of(first[url]), 403, "forbidden")


# -- corrupted logs -------------------------------------------------------------------------------


def _event_records(path: Path) -> list[tuple[int, int]]:
    """(offset, end) of every record after the header."""
    return [(off, end) for off, end, _ in iter_records(path.read_bytes())][1:]


async def _two_ended_recordings(data_dir: Path) -> tuple[dict, dict, dict]:
    async with running_server(data_dir) as server:
        damaged, *_ = await recorded_session(server, "Damaged")
        healthy, *_ = await recorded_session(server, "Healthy")
    # Read once the server has stopped: everyone has left and every writer is closed.
    recording = Recording(data_dir / "recordings", healthy["id"])
    events = recording.window(0, 2**62, "learner")
    expected = {"manifest": recording.manifest(), "events": {"from": 0, "to": 2**62, "events": events}}
    assert expected["manifest"]["status"] == "ended" and len(events) > 10
    # Everyone's leave is in both logs, every time (the tests below count on it being stable).
    for info in (damaged, healthy):
        trainer_view = Recording(data_dir / "recordings", info["id"]).window(0, 2**62, "trainer")
        joined = {e["data"]["id"] for e in trainer_view if e["type"] == "participant.joined"}
        left = {e["data"]["id"] for e in trainer_view if e["type"] == "participant.left"}
        assert len(joined) == 3 and left == joined, (joined, left)
    return damaged, healthy, expected


async def _check_healthy(server, healthy: dict, expected: dict) -> None:
    rid, replay = healthy["id"], token_of(healthy["replay_url"])
    manifest = await ok(server, "GET", f"/api/recordings/{rid}", replay)
    assert "damage" not in manifest
    assert manifest.pop("you") == {"role": "replay", "manages": False}
    assert manifest == expected["manifest"]
    assert await ok(server, "GET", f"/api/recordings/{rid}/events", replay) == expected["events"]
    state = await ok(server, "GET", f"/api/recordings/{rid}/state?t={manifest['duration_ms']}", replay)
    assert state["status"] == "ended"
    assert [m["text"] for m in state["chat"]] == ["hello from Healthy", "bye"]


async def test_corrupted_log_reports_damage_and_spares_the_others(tmp_path: Path):
    data_dir = tmp_path / "data"
    damaged, healthy, expected = await _two_ended_recordings(data_dir)
    log = data_dir / "recordings" / damaged["id"] / "events.log"
    records = _event_records(log)
    middle = len(records) // 2
    off, end = records[middle]
    raw = bytearray(log.read_bytes())
    size = len(raw)
    payload_mid = off + 8 + (end - off - 8) // 2
    raw[payload_mid : payload_mid + 4] = bytes(b ^ 0xA5 for b in raw[payload_mid : payload_mid + 4])
    log.write_bytes(bytes(raw))

    async with running_server(data_dir) as server:
        rid, replay = damaged["id"], token_of(damaged["replay_url"])
        manifest = await ok(server, "GET", f"/api/recordings/{rid}", replay)
        assert manifest["damage"] == {"error": f"checksum mismatch at byte {off}", "recovered_events": middle}
        assert manifest["counts"]["events"] == middle
        # What was recovered is still served.
        events = await ok(server, "GET", f"/api/recordings/{rid}/events?audience=trainer", ADMIN)
        assert [e["seq"] for e in events["events"]] == list(range(1, middle + 1))
        state = await ok(server, "GET", f"/api/recordings/{rid}/state?t={manifest['duration_ms']}", replay)
        assert state["seq"] == middle
        await _check_healthy(server, healthy, expected)
        listed = await ok(server, "GET", "/api/recordings", ADMIN)
        by_id = {r["id"]: r for r in listed["recordings"]}
        assert set(by_id) == {rid, healthy["id"]}
        assert by_id[rid]["damage"] == manifest["damage"]
        assert "damage" not in by_id[healthy["id"]]
        # Reading does not repair (or cut) the log.
        assert log.stat().st_size == size


async def test_corrupted_length_field_is_damage_too(tmp_path: Path):
    data_dir = tmp_path / "data"
    damaged, healthy, expected = await _two_ended_recordings(data_dir)
    log = data_dir / "recordings" / damaged["id"] / "events.log"
    records = _event_records(log)
    middle = len(records) // 2
    off, _end = records[middle]
    raw = bytearray(log.read_bytes())
    raw[off : off + 4] = b"\xff\xff\xff\x7f"  # a length far beyond the file
    log.write_bytes(bytes(raw))

    async with running_server(data_dir) as server:
        await _check_healthy(server, healthy, expected)
        manifest = await ok(server, "GET", f"/api/recordings/{damaged['id']}", ADMIN)
        assert manifest["counts"]["events"] == middle
        assert manifest["damage"] == {"error": f"truncated record at byte {off}", "recovered_events": middle}


# -- deleting -------------------------------------------------------------------------------------


async def test_delete_by_trainer(server):
    info, trainer, ada, _bob = await recorded_session(server, end=False)
    other, *_ = await recorded_session(server, "Other")
    rid = info["id"]
    base = f"/api/recordings/{rid}"
    directory = _root(server) / rid
    trainer_token = token_of(info["trainer_url"])
    await fails(server, "DELETE", base, trainer_token, 409, "session_live")
    await fails(server, "DELETE", base, ADMIN, 409, "session_live")
    await fails(server, "DELETE", base, token_of(other["trainer_url"]), 403, "wrong_session")
    assert directory.is_dir()
    manifest = await ok(server, "GET", base, trainer_token)
    assert manifest["status"] == "live"
    # Still live: commands go on and are recorded.
    await ada.request("chat.send", text="still here")

    viewer = await ok(
        server, "POST", f"{base}/viewers", token_of(info["replay_url"]), 201, json={"name": "V"}
    )
    await trainer.request("session.end")
    await ada.wait_for("session.ended")
    await ok(server, "POST", f"{base}/questions", viewer["token"], 201, json={"t": 0, "text": "Why?"})

    got, body = await call(server, "DELETE", base, trainer_token)
    assert got == 204 and body == b""
    assert not directory.exists()
    for path in (base, f"{base}/events", f"{base}/state?t=0", f"{base}/questions"):
        await fails(server, "GET", path, trainer_token, 404, "not_found")
    await fails(server, "DELETE", base, trainer_token, 404, "not_found")
    await fails(server, "GET", f"/api/sessions/{rid}", ADMIN, 404, "not_found")
    listed = await ok(server, "GET", "/api/recordings", ADMIN)
    assert [r["id"] for r in listed["recordings"]] == [other["id"]]
    # The other recording is untouched.
    assert (await ok(server, "GET", f"/api/recordings/{other['id']}", ADMIN))["status"] == "ended"


async def test_delete_by_admin_of_a_session_never_started(server):
    info = await create(server, "Not started")
    trainer = await server.client(info["trainer_url"], "Tess")
    await trainer.wait_until(lambda: trainer.state.participants)
    rid = info["id"]
    directory = _root(server) / rid
    manifest = await ok(server, "GET", f"/api/recordings/{rid}", ADMIN)
    assert manifest["id"] == rid and manifest["trainers"] == ["Tess"]
    assert (directory / "events.log").is_file()
    # Not started: it can be deleted as it is (its connections are closed; issue 9).
    got, _ = await call(server, "DELETE", f"/api/recordings/{rid}", ADMIN)
    assert got == 204
    assert not directory.exists()
    await fails(server, "GET", f"/api/recordings/{rid}", ADMIN, 404, "not_found")


async def test_delete_refused_for_a_live_session_after_a_restart(tmp_path: Path):
    data_dir = tmp_path / "data"
    async with running_server(data_dir) as server:
        info, *_ = await recorded_session(server, end=False)
    directory = data_dir / "recordings" / info["id"]
    async with running_server(data_dir) as server:
        session = await ok(server, "GET", f"/api/sessions/{info['id']}", ADMIN)
        assert session["status"] == "live"
        got, body = await call(
            server, "DELETE", f"/api/recordings/{info['id']}", token_of(info["trainer_url"])
        )
        assert directory.is_dir()
        assert got == 409 and body["error"]["code"] == "session_live"
