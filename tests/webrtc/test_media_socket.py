"""Media through the socket commands of a real server on loopback: real socket.io clients, real
aiortc publishers and viewers with synthetic tracks (docs/protocol.md, section 5.8)."""

from __future__ import annotations

from signaling.media import MediaRooms
from tests.conftest import Server
from tests.webrtc.helpers import eventually
from tests.webrtc.socket_peers import (
    SocketPublisher,
    SocketViewer,
    increasing,
    late_join,
    live_tracks,
    receive_all,
)


def rooms(server: Server) -> MediaRooms:
    from classroom.keys import HUB

    return server.app[HUB].media


async def test_a_trainer_publishes_and_two_learners_decode_in_order(server: Server) -> None:
    info, trainer = await server.live_session("Media")
    ada = await server.client(info["join_url"], "Ada")
    bob = await server.client(info["join_url"], "Bob")
    publisher = SocketPublisher(trainer)
    viewers = [SocketViewer(ada), SocketViewer(bob)]
    try:
        ack = await publisher.publish()
        assert ack["ok"] and ack["sdp"].startswith("v=0"), ack
        tid = trainer.you["id"]
        for client in (trainer, ada, bob):
            await client.wait_until(lambda c=client: live_tracks(c) == [(tid, "camera"), (tid, "mic")], 10)
        event = await ada.wait_for("media.tracks")
        assert event["actor"] is None
        assert {t["id"]: (t["kind"], t["codec"]) for t in event["data"]["tracks"]} == {
            f"{tid}:mic": ("audio", "opus"),
            f"{tid}:camera": ("video", "vp8"),
        }
        await receive_all(viewers, tid, 20)
        # Unpublishing ends the tracks for everyone.
        assert (await trainer.request("media.unpublish"))["ok"]
        for client in (trainer, ada, bob):
            await client.wait_until(lambda c=client: live_tracks(c) == [], 10)
    finally:
        await publisher.close()
        for viewer in viewers:
            await viewer.close()


async def test_learners_publish_only_what_the_floor_allows(server: Server) -> None:
    info, trainer = await server.live_session("Floor")
    ada = await server.client(info["join_url"], "Ada")
    aid = ada.you["id"]
    peers = []

    def publisher(**kw) -> SocketPublisher:
        peers.append(SocketPublisher(ada, **kw))
        return peers[-1]

    viewer = SocketViewer(trainer)
    try:
        refused = await publisher(video=False).publish()
        assert refused["error"]["code"] == "forbidden", refused
        assert not rooms(server).rooms  # refused before any media is set up
        await trainer.request("floor.give", id=aid)
        await ada.wait_until(lambda: aid in ada.state.media["floor"], 10)
        refused = await publisher().publish()  # mic and camera: the camera is not allowed
        assert refused["error"]["code"] == "forbidden", refused
        assert "camera" in refused["error"]["message"]
        assert ada.state.media["tracks"] == []
        mic = publisher(video=False)
        assert (await mic.publish())["ok"]
        await trainer.wait_until(lambda: live_tracks(trainer) == [(aid, "mic")], 10)
        await viewer.start()
        await eventually(lambda: viewer.audio_loud > 10, 15, "the learner's voice")
        # Taking the floor stops the learner's track.
        await trainer.request("floor.take", id=aid)
        await trainer.wait_until(lambda: live_tracks(trainer) == [] and not trainer.state.media["floor"], 10)
        again = await publisher(video=False).publish()
        assert again["error"]["code"] == "forbidden"
    finally:
        for peer in peers:
            await peer.close()
        await viewer.close()
    # The trainer's viewer connection lives as long as its socket: leaving closes it, and the
    # session's media with it (nobody publishes or views any more).
    assert rooms(server).rooms
    await trainer.close()
    await eventually(lambda: not rooms(server).rooms, 10, "the media closed once nobody uses it")


async def test_a_viewer_joining_mid_stream_sees_video_within_a_second(server: Server) -> None:
    info, trainer = await server.live_session("Late")
    ada = await server.client(info["join_url"], "Ada")
    late_client = await server.client(info["join_url"], "Lou")
    publisher = SocketPublisher(trainer)
    early, late = SocketViewer(ada), SocketViewer(late_client)
    try:
        assert (await publisher.publish())["ok"]
        await early.start()
        await late_join(early, late, 20)
        await late.wait_video(10)
        assert increasing(late.counters) and late.counters[0] > early.counters[0] + 20
    finally:
        await publisher.close()
        await early.close()
        await late.close()


async def test_a_publisher_that_reconnects_with_a_new_peer_recovers(server: Server) -> None:
    info, trainer = await server.live_session("Restart")
    ada = await server.client(info["join_url"], "Ada")
    tid = trainer.you["id"]
    old = SocketPublisher(trainer)
    new = SocketPublisher(trainer, start=1000)
    viewer = SocketViewer(ada)
    try:
        assert (await old.publish())["ok"]
        await viewer.start()
        await viewer.wait_video(15, timeout=20)
        # The connection drops (a reload, a network change): the tracks end with the socket...
        await trainer.drop()
        await ada.wait_until(lambda: live_tracks(ada) == [], 10)
        await old.close()
        # ... and come back from a new peer connection once it is back.
        await trainer.wait_until(lambda: trainer.joins >= 2, 10)
        assert (await new.publish())["ok"]
        await ada.wait_until(lambda: live_tracks(ada) == [(tid, "camera"), (tid, "mic")], 10)
        await eventually(lambda: any(c >= 1000 for c in viewer.counters), 15, "the new publisher's frames")
        await viewer.wait_video(10)
        after = [c for c in viewer.counters if c >= 1000]
        assert increasing(after) and viewer.offers >= 1
    finally:
        await old.close()
        await new.close()
        await viewer.close()


async def test_bad_media_commands_are_refused_clearly(server: Server) -> None:
    info = await server.create_session("Bad media")
    trainer = await server.client(info["trainer_url"], "Tess")
    ack = await trainer.send("media.view")
    assert ack["error"]["code"] == "session_not_live"
    await trainer.request("session.start")
    peer = SocketPublisher(trainer)
    await peer.pc.setLocalDescription(await peer.pc.createOffer())
    await peer.close()
    # An offer without its DTLS fingerprint and ICE credentials: parsed, then refused by aiortc.
    broken = "".join(
        line + "\r\n"
        for line in peer.pc.localDescription.sdp.splitlines()
        if not line.startswith(("a=fingerprint", "a=ice-ufrag", "a=ice-pwd"))
    )
    cases = [
        ("media.publish", {"sdp": "v=0\r\n" + "a=x\r\n" * 8000}, "too_long"),
        ("media.publish", {"sdp": 5}, "invalid_payload"),
        ("media.publish", {"sdp": "v=0", "labels": {"0": "speaker"}}, "invalid_payload"),
        ("media.publish", {"sdp": "v=0", "extra": 1}, "invalid_payload"),
        ("media.publish", {"sdp": "not an offer"}, "invalid_payload"),  # it sends nothing
        ("media.publish", {"sdp": broken}, "media_failed"),
        ("media.answer", {"sdp": "v=0"}, "media_failed"),  # not viewing
        (
            "media.candidate",
            {"to": "publish", "candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host"},
            "media_failed",
        ),
        ("media.candidate", {"to": "sideways", "candidate": "candidate:x"}, "invalid_payload"),
    ]
    for name, payload, code in cases:
        ack = await trainer.send(name, payload)
        assert not ack["ok"] and ack["error"]["code"] == code, (name, payload, ack)
        assert ack["error"]["message"]
    assert (await trainer.send("media.unpublish"))["ok"]  # nothing to end: fine
    # A viewer: a garbage candidate is refused, its answer taken once.
    viewer = SocketViewer(trainer)
    try:
        ack = await trainer.request("media.view")
        bad = await trainer.send("media.candidate", to="view", candidate="candidate:garbage")
        assert bad["error"]["code"] == "invalid_payload", bad
        await viewer.on_offer(ack["sdp"])
        again = await trainer.send("media.answer", sdp=viewer.pc.localDescription.sdp)
        assert again["error"]["code"] == "media_failed", again  # no offer is waiting any more
    finally:
        await viewer.close()
    assert trainer.state.media["tracks"] == []
