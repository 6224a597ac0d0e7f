"""`media.leave` (a participant's media ends: their viewer connection closes, their tracks end) and
the STUN/TURN servers the server hands to browsers in the join ack (docs/protocol.md, 3 and 5.8)."""

from __future__ import annotations

from pathlib import Path

from classroom.keys import HUB
from tests.conftest import Server, running_server
from tests.served import run_classroom
from tests.webrtc.helpers import eventually
from tests.webrtc.socket_peers import SocketPublisher, SocketViewer

STUN = "stun:stun.example.org:3478"
TURN = "turn:class%40cast:s3cret@turn.example.org:3478?transport=udp"


def viewers(server: Server, session_id: str) -> set[str]:
    room = server.app[HUB].media.rooms.get(session_id)
    return set(room.media.stats()["viewers"]) if room else set()


async def test_media_leave_ends_viewing_and_publishing(server: Server) -> None:
    info, trainer = await server.live_session("Leave")
    ada = await server.client(info["join_url"], "Ada")
    publisher = SocketPublisher(trainer)
    viewer = SocketViewer(ada)
    try:
        # Nothing yet: leaving is fine and says nothing was ended.
        ack = await ada.request("media.leave")
        assert (ack["viewing"], ack["publishing"]) == (False, False)
        assert (await publisher.publish())["ok"]
        await viewer.start()
        await viewer.wait_video(10, timeout=20)
        assert len(viewers(server, info["id"])) == 1
        # Bad input is refused and changes nothing.
        for payload in ({"extra": 1}, 5, "x", [1]):
            bad = await ada.send("media.leave", payload)
            assert bad["error"]["code"] == "invalid_payload", (payload, bad)
            assert bad["error"]["message"]
        assert len(viewers(server, info["id"])) == 1
        await viewer.wait_video(5)
        # The learner stops receiving: its server-side connection is closed; the tracks stay.
        ack = await ada.request("media.leave")
        assert (ack["viewing"], ack["publishing"]) == (True, False)
        assert viewers(server, info["id"]) == set()
        await eventually(lambda: viewer.pc.connectionState in ("closed", "failed"), 60, "viewer closed")
        assert len(trainer.state.media["tracks"]) == 2
        # The trainer leaves: all their tracks end for everyone, and the session's media closes.
        ack = await trainer.request("media.leave")
        assert (ack["viewing"], ack["publishing"]) == (False, True)
        for client in (trainer, ada):
            await client.wait_until(lambda c=client: c.state.media["tracks"] == [], 10)
        await eventually(lambda: not server.app[HUB].media.rooms, 10, "the media closed")
        # Viewing again afterwards works.
        again = SocketViewer(ada)
        try:
            await again.start()
            assert len(viewers(server, info["id"])) == 1
        finally:
            await again.close()
    finally:
        await publisher.close()
        await viewer.close()


async def test_the_join_ack_carries_the_ice_servers(tmp_path: Path) -> None:
    async with running_server(tmp_path / "none") as server:
        _info, trainer = await server.live_session()
        assert trainer.last_join["ice_servers"] == []
    async with running_server(tmp_path / "given", ice_servers=[STUN, TURN]) as server:
        info, trainer = await server.live_session()
        ada = await server.client(info["join_url"], "Ada")
        expected = [
            {"urls": STUN},
            {
                "urls": "turn:turn.example.org:3478?transport=udp",
                "username": "class@cast",
                "credential": "s3cret",
            },
        ]
        assert trainer.last_join["ice_servers"] == expected
        assert ada.last_join["ice_servers"] == expected
        await ada.drop()  # a resume carries them too
        await ada.wait_until(lambda: ada.joins >= 2, 10)
        assert "events" in ada.last_join and ada.last_join["ice_servers"] == expected


async def test_bad_ice_servers_in_the_environment_stop_serve_with_one_line(tmp_path: Path) -> None:
    code, _out, err = await run_classroom(
        "serve", "--data-dir", str(tmp_path), env={"CLASSCAST_ICE_SERVERS": f"{STUN},turn:user:pw@"}
    )
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: CLASSCAST_ICE_SERVERS: 'turn:user:pw@' is not a STUN/TURN URL"), line
