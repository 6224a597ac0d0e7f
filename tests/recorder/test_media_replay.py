"""Recorded media in the replay, over a real server: a live session's media (fed in real time on
the session clock, as the forwarding layer will) is listed in the manifest with its anchor, lines
up with a chat message sent at a known moment, and is served with exact HTTP Range answers, to
the same tokens as the rest of the replay; deleting the recording deletes it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from classroom.api import SESSIONS
from recorder.api import LIBRARY
from recorder.media import MediaRecorder
from recorder.paths import recording_dir

from .media_helpers import FPS, decode, timeline
from .test_replay_api import call, fails, ok, token_of

SECONDS = 4.0
MARK_FRAME = 60  # the chat message is sent right after this frame is handed over (2 s in)


async def until(check, timeout: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await check()
        if got:
            return got
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def publish(server, session_id: str, trainer) -> tuple[int, int, int]:
    """Feed a publisher's camera and microphone in real time on the session clock; returns the
    session time of the first packet, the chat message's `t`, and how late (ms) this publisher
    handed MARK_FRAME over (a loaded machine may wake it late: the media keeps its capture
    times, as RTP timestamps do, so that lateness is the publisher's, not the recording's)."""
    items = timeline(SECONDS)  # encoded before the clock starts
    live = server.app[SESSIONS].live[session_id]
    rec = MediaRecorder(recording_dir(server.app[LIBRARY].root, session_id))
    first = live.now()
    cam = rec.track("pubT", "cam", "video", "vp8", first)
    mic = rec.track("pubT", "mic", "audio", "opus", first)
    chat_t = late = None
    frame = 0
    for ms, p in items:
        while live.now() < first + ms:
            await asyncio.sleep(0.002)
        (cam if p.track_kind == "video" else mic).write(p)
        if p.track_kind == "video":
            if frame == MARK_FRAME:
                late = live.now() - (first + ms)
                ack = await trainer.request("chat.send", text="look at frame sixty")
                event = await trainer.wait_for(
                    "chat.message", lambda e, seq=ack["seq"]: e["seq"] == seq, timeout=20
                )
                chat_t = event["t"]
            frame += 1

    async def listed_while_recording() -> Any:
        manifest = await ok(server, "GET", f"/api/recordings/{session_id}", server_admin(server))
        return manifest["media"]

    # Before the tracks end: listed, status `recording`, no duration yet.
    media = await until(listed_while_recording)
    assert [(m["status"], m["duration_ms"]) for m in media] == [("recording", None)], media
    cam.close()
    mic.close()
    await rec.aclose()
    assert chat_t is not None and late is not None
    return first, chat_t, late


def server_admin(server) -> str:
    return server.admin["Authorization"].split()[1]


async def test_media_lines_up_with_events_and_serves_ranges(server, tmp_path: Path) -> None:
    info, trainer = await server.live_session("Media")
    sid = info["id"]
    first, chat_t, late = await publish(server, sid, trainer)
    await trainer.request("session.end")
    trainer_token = token_of(info["trainer_url"])
    learner_token = token_of(info["join_url"])

    manifest = await ok(server, "GET", f"/api/recordings/{sid}", learner_token)
    (m,) = manifest["media"]
    assert m["status"] == "complete" and m["start_ms"] == first
    assert m["content_type"] == "video/webm" and m["publisher"] == "pubT"
    assert abs(m["duration_ms"] - SECONDS * 1000) <= 0.05 * SECONDS * 1000
    assert manifest["size_bytes"] >= m["size_bytes"]
    path = recording_dir(server.app[LIBRARY].root, sid) / "media" / m["file"]
    data = path.read_bytes()
    assert m["size_bytes"] == len(data)
    url = f"/api/recordings/{sid}/media/{m['file']}"

    # The whole file, then in three ranges (with the token in the query, as a <video> sends it).
    async with server.http.get(
        server.base_url + url, headers={"Authorization": f"Bearer {learner_token}"}
    ) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "video/webm"
        assert r.headers["Accept-Ranges"] == "bytes"
        assert "Content-Disposition" not in r.headers
        assert await r.read() == data
    pieces = []
    for rng, expect in (("bytes=0-999", (0, 999)), ("bytes=1000-", (1000, len(data) - 1))):
        async with server.http.get(
            f"{server.base_url}{url}?token={learner_token}", headers={"Range": rng}
        ) as r:
            assert r.status == 206, rng
            assert r.headers["Content-Range"] == f"bytes {expect[0]}-{expect[1]}/{len(data)}"
            body = await r.read()
            assert body == data[expect[0] : expect[1] + 1]
            pieces.append(body)
    assert b"".join(pieces) == data
    async with server.http.get(
        f"{server.base_url}{url}?token={learner_token}", headers={"Range": "bytes=-100"}
    ) as r:
        assert r.status == 206 and await r.read() == data[-100:]
    async with server.http.get(
        f"{server.base_url}{url}?token={learner_token}", headers={"Range": f"bytes=10-{len(data) + 500}"}
    ) as r:
        assert r.status == 206 and await r.read() == data[10:]
        assert r.headers["Content-Range"] == f"bytes 10-{len(data) - 1}/{len(data)}"
    for bad in (f"bytes={len(data)}-", f"bytes={len(data) + 10}-{len(data) + 20}", "bytes=abc", "bytes=5-2"):
        async with server.http.get(
            f"{server.base_url}{url}?token={learner_token}", headers={"Range": bad}
        ) as r:
            assert r.status == 416, bad
            assert r.headers["Content-Range"] == f"bytes */{len(data)}"
            assert (await r.json())["error"]["code"] == "range_not_satisfiable"
    async with server.http.head(f"{server.base_url}{url}?token={learner_token}") as r:
        assert r.status == 200 and int(r.headers["Content-Length"]) == len(data)

    # The event lines up with the media: the frame on screen when the message was sent.
    whole = tmp_path / "downloaded.webm"
    whole.write_bytes(b"".join(pieces))
    got = decode(whole)
    frame_ms = next(ms for ms, n in got["video"] if n == MARK_FRAME)
    assert abs(m["start_ms"] + frame_ms - chat_t) <= 100 + late, (m["start_ms"], frame_ms, chat_t, late)
    # Every frame exactly where its capture time puts it on the session clock.
    assert all(abs(m["start_ms"] + ms - (first + n * 1000 / FPS)) <= 1 for ms, n in got["video"])
    events = await ok(server, "GET", f"/api/recordings/{sid}/events", learner_token)
    assert any(e["type"] == "chat.message" and e["t"] == chat_t for e in events["events"])

    # Trainers download it; learners may stream it but not ask for the attachment.
    async with server.http.get(f"{server.base_url}{url}?token={trainer_token}&download=1") as r:
        assert r.status == 200
        assert r.headers["Content-Disposition"] == f'attachment; filename="{sid}-{m["file"]}"'
        assert await r.read() == data
    await fails(server, "GET", f"{url}?download=1", learner_token, 403, "forbidden")
    await fails(server, "GET", f"{url}?download=2", trainer_token, 400, "invalid_payload")
    await fails(server, "GET", url, None, 401, "unauthorized")
    await fails(server, "GET", url, "not-a-token", 401, "invalid_token")
    other = await server.create_session("Other")
    await fails(server, "GET", url, token_of(other["trainer_url"]), 403, "wrong_session")
    await fails(server, "GET", f"/api/recordings/{sid}/media/nope.webm", learner_token, 404, "not_found")
    await fails(
        server, "GET", f"/api/recordings/{sid}/media/{m['file'][:-5]}.json", learner_token, 404, "not_found"
    )
    for evil in ("..%2Fevents.log", "%2E%2E%2F%2E%2E%2Fsecret.webm", "x%00.webm"):
        status, _ = await call(
            server, "GET", f"/api/recordings/{sid}/media/{evil}", learner_token, raw_path=True
        )
        assert status == 404, evil

    # Deleting the recording deletes its media.
    await ok(server, "DELETE", f"/api/recordings/{sid}", trainer_token, 204)
    assert not path.exists()
    await fails(server, "GET", url, server_admin(server), 404, "not_found")


async def test_media_of_a_recording_off_session_is_refused(server) -> None:
    async with server.http.post(
        f"{server.base_url}/api/sessions", json={"title": "Off", "recording": False}, headers=server.admin
    ) as r:
        assert r.status == 201
        info = await r.json()
    trainer = await server.client(info["trainer_url"], "Tess")
    await trainer.request("session.start")
    await fails(
        server,
        "GET",
        f"/api/recordings/{info['id']}/media/x.webm",
        server_admin(server),
        409,
        "recording_off",
    )
