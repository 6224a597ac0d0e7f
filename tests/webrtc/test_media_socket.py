"""Media through the socket commands of a real server on loopback: real socket.io clients, real
aiortc publishers and viewers with synthetic tracks (docs/protocol.md, section 5.8)."""

from __future__ import annotations

import itertools

from signaling.media import MediaRooms
from tests.conftest import Server
from tests.webrtc.helpers import eventually
from tests.webrtc.socket_peers import SocketPublisher, SocketViewer


def rooms(server: Server) -> MediaRooms:
    from classroom.keys import HUB

    return server.app[HUB].media


def increasing(values: list[int]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


def live_tracks(client) -> list[tuple[str, str]]:
    return sorted((t["publisher"], t["label"]) for t in client.state.media["tracks"])


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
        for viewer in viewers:
            await viewer.start()
            assert sorted(viewer.mids.values()) == [f"{tid}:camera", f"{tid}:mic"]
        for viewer in viewers:
            await viewer.wait_video(30, timeout=20)
            assert increasing(viewer.counters), viewer.counters
        await eventually(lambda: all(v.audio_loud > 10 for v in viewers), 10, "audio at the viewers")
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
