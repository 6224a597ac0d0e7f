"""Late joiners, publisher restarts, device switches, tracks coming and going, viewer churn."""

from __future__ import annotations

import asyncio
import itertools
import time

from aiortc import RTCRtpSender, RTCSessionDescription

from signaling.webrtc import Media
from tests.webrtc.helpers import CounterVideo, Publisher, Viewer, Viewers, eventually


class Room:
    def __init__(self) -> None:
        self.viewers = Viewers()
        self.offers: dict[str, int] = {}
        self.track_lists: list[list[dict]] = []
        self.media = Media(on_tracks=self.track_lists.append, on_offer=self._on_offer)
        self.publishers: list[Publisher] = []

    async def _on_offer(self, viewer_id: str, sdp: str) -> None:
        self.offers[viewer_id] = self.offers.get(viewer_id, 0) + 1
        await self.viewers.on_offer(viewer_id, sdp)

    async def publisher(self, publisher_id: str, start: int = 0) -> Publisher:
        publisher = Publisher(self.media, publisher_id, start)
        self.publishers.append(publisher)
        await publisher.start()
        return publisher

    async def viewer(self, viewer_id: str) -> Viewer:
        viewer = self.viewers.add(Viewer(self.media, viewer_id))
        await viewer.start()
        return viewer

    async def close(self) -> None:
        await self.media.close()
        for publisher in self.publishers:
            await publisher.close()
        for viewer in self.viewers.by_id.values():
            await viewer.close()


def increasing(values: list[int]) -> bool:
    ok = all(b > a for a, b in itertools.pairwise(values))
    if not ok:
        print("not increasing:", values)
    return ok


async def test_a_late_joiner_sees_video_within_a_second() -> None:
    room = Room()
    try:
        await room.publisher("trainer")
        first = await room.viewer("early")
        # Two seconds of media: the publisher's first key frames are gone, also from the slot's key
        # frame cache (at most a second old), so the late joiner does not start at the beginning.
        await first.wait_video(60, timeout=30)
        before = room.media.stats()["tracks"]["trainer:camera"]
        late = await room.viewer("late")
        await eventually(lambda: late.connected_at is not None, what="late viewer connected")
        await late.wait_video(1, timeout=5)
        delay = late.video_times[0] - late.connected_at
        assert delay < 1.0, f"first decoded frame {delay:.3f} s after connecting"
        after = room.media.stats()["tracks"]["trainer:camera"]
        # Either from the slot's key frame cache or a key frame asked of the publisher.
        assert (
            after["cache_starts"] > before["cache_starts"]
            or after["keyframes_requested"] > before["keyframes_requested"]
        )
        await late.wait_video(15)
        assert increasing(late.counters) and increasing(first.counters)
        assert late.counters[0] > first.counters[0] + 20
    finally:
        await room.close()


async def test_a_restarted_publisher_keeps_its_tracks_and_viewers() -> None:
    room = Room()
    try:
        old = await room.publisher("trainer")
        viewer = await room.viewer("v")
        await viewer.wait_video(15)
        tracks = room.media.tracks()
        offers = room.offers.get("v", 0)
        await old.close()  # the browser reloads: a new peer connection for the same publisher
        await room.publisher("trainer", start=20000)
        assert room.media.tracks() == tracks
        await eventually(lambda: viewer.counters[-1] >= 20000, what="frames of the new publisher")
        await viewer.wait_video(15)
        before = [c for c in viewer.counters if c < 20000]
        after = [c for c in viewer.counters if c >= 20000]
        assert increasing(before) and increasing(after)
        assert viewer.counters == before + after
        assert room.offers.get("v", 0) == offers, "a restart needs no renegotiation with viewers"
    finally:
        await room.close()


async def test_a_device_switch_carries_on() -> None:
    room = Room()
    try:
        publisher = await room.publisher("trainer")
        viewer = await room.viewer("v")
        await viewer.wait_video(10)
        video_sender = next(s for s in publisher.pc.getSenders() if s.track and s.track.kind == "video")
        video_sender.replaceTrack(CounterVideo(start=5000))
        await eventually(lambda: viewer.counters[-1] >= 5000, what="frames of the new camera")
        await viewer.wait_video(10)
        switch = next(i for i, c in enumerate(viewer.counters) if c >= 5000)
        assert increasing(viewer.counters[:switch])
        assert increasing(viewer.counters[switch:])
        assert all(c >= 5000 for c in viewer.counters[switch:])
    finally:
        await room.close()


async def test_tracks_come_and_go_and_viewers_follow() -> None:
    room = Room()
    try:
        viewer = await room.viewer("v")  # before anyone publishes: an offer without media
        await room.publisher("trainer")
        await eventually(lambda: room.offers.get("v", 0) >= 1, what="re-offer with the trainer's tracks")
        await viewer.wait_video(10)
        # A co-trainer publishes too: the viewer gets a second camera.
        cotrainer = Publisher(room.media, "cotrainer", start=30000)
        room.publishers.append(cotrainer)
        await cotrainer.start()
        assert [t["id"] for t in room.media.tracks()] == [
            "trainer:mic",
            "trainer:camera",
            "cotrainer:mic",
            "cotrainer:camera",
        ]
        await eventually(lambda: any(c >= 30000 for c in viewer.counters), what="the co-trainer's camera")
        # The co-trainer stops: their tracks end, the viewer is re-offered without them.
        offers = room.offers["v"]
        assert await room.media.unpublish("cotrainer")
        assert [t["id"] for t in room.media.tracks()] == ["trainer:mic", "trainer:camera"]
        assert room.track_lists[-1] == room.media.tracks()
        await eventually(lambda: room.offers["v"] > offers, what="re-offer without the co-trainer")
        await eventually(lambda: viewer.pc.signalingState == "stable", what="renegotiated")
        # They come back: the viewer's idle transceivers are reused.
        transceivers = len(viewer.pc.getTransceivers())
        again = Publisher(room.media, "cotrainer", start=40000)
        room.publishers.append(again)
        await again.start()
        await eventually(lambda: any(c >= 40000 for c in viewer.counters), what="the co-trainer again")
        assert len(viewer.pc.getTransceivers()) == transceivers
        trainer_frames = [c for c in viewer.counters if c < 30000]
        assert increasing(trainer_frames)
    finally:
        await room.close()


async def test_viewer_churn() -> None:
    room = Room()
    try:
        await room.publisher("trainer")
        steady = await room.viewer("steady")
        for round_ in range(3):
            churners = [await room.viewer(f"c{round_}-{i}") for i in range(2)]
            await asyncio.gather(*(c.wait_video(3, timeout=5) for c in churners))
            for churner in churners:
                assert await room.media.leave(churner.id), (
                    f"{churner.id} left already: {churner.pc.connectionState}"
                )
                await churner.close()
                del room.viewers.by_id[churner.id]
        # Watching again with the same id replaces the old connection.
        again = await room.viewer("steady")
        await again.wait_video(3, timeout=5)
        assert set(room.media.stats()["viewers"]) == {"steady"}
        assert increasing(steady.counters)
        await steady.close()
    finally:
        await room.close()


async def test_a_viewers_picture_loss_asks_the_publisher_for_a_key_frame() -> None:
    room = Room()
    keyframes: list[float] = []
    unsubscribe = room.media.subscribe(
        lambda f: f.keyframe and f.kind == "video" and keyframes.append(time.monotonic())
    )
    try:
        await room.publisher("trainer")
        viewer = await room.viewer("v")
        await viewer.wait_video(30)
        count = len(keyframes)
        requested = room.media.stats()["tracks"]["trainer:camera"]["keyframes_requested"]
        # The viewer's receiver reports picture loss (RTCP PLI), as a browser does after losing packets.
        receiver = next(r for r in viewer.pc.getReceivers() if r.track.kind == "video")
        ssrc = receiver.getSynchronizationSources()[0].source
        await receiver._send_rtcp_pli(ssrc)
        await eventually(lambda: len(keyframes) > count, timeout=3, what="a key frame after the PLI")
        assert room.media.stats()["tracks"]["trainer:camera"]["keyframes_requested"] > requested
    finally:
        unsubscribe()
        await room.close()


async def test_a_screen_share_starts_and_stops_on_the_same_connection() -> None:
    room = Room()
    try:
        publisher = await room.publisher("trainer")
        viewer = await room.viewer("v")
        await viewer.wait_video(5)
        offers = room.offers.get("v", 0)
        # Share the screen: a third track, negotiated on the publisher's existing connection.
        screen = CounterVideo(start=50000)
        transceiver = publisher.pc.addTransceiver(screen, direction="sendonly")
        caps = RTCRtpSender.getCapabilities("video").codecs
        transceiver.setCodecPreferences([c for c in caps if c.mimeType in ("video/VP8", "video/rtx")])
        pc_before = room.media._publishers["trainer"].pc
        await publisher.pc.setLocalDescription(await publisher.pc.createOffer())
        answer = await room.media.publish("trainer", publisher.pc.localDescription.sdp, {screen.id: "screen"})
        await publisher.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        assert room.media._publishers["trainer"].pc is pc_before, "renegotiated, not restarted"
        assert [t["id"] for t in room.media.tracks()] == ["trainer:mic", "trainer:camera", "trainer:screen"]
        await eventually(lambda: room.offers.get("v", 0) > offers, what="re-offer with the screen")
        await eventually(lambda: any(c >= 50000 for c in viewer.counters), what="screen frames")
        camera = [c for c in viewer.counters if c < 50000]
        screen_frames = [c for c in viewer.counters if c >= 50000]
        assert increasing(camera) and increasing(screen_frames)
        # Turn the camera off (no labels this time): the screen stays the screen.
        offers = room.offers["v"]
        camera = next(t for t in publisher.pc.getTransceivers() if t.kind == "video" and t is not transceiver)
        camera.direction = "inactive"
        await publisher.pc.setLocalDescription(await publisher.pc.createOffer())
        answer = await room.media.publish("trainer", publisher.pc.localDescription.sdp)
        await publisher.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        assert [t["id"] for t in room.media.tracks()] == ["trainer:mic", "trainer:screen"]
        await eventually(lambda: room.offers["v"] > offers, what="re-offer without the camera")
        await eventually(lambda: viewer.pc.signalingState == "stable", what="renegotiated")
        count = len(viewer.counters)
        await viewer.wait_video(10)
        assert all(c >= 50000 for c in viewer.counters[count + 2 :])
        assert set(room.media.mids("v").values()) == {"trainer:mic", "trainer:screen"}
        # Stop sharing: the track ends and the viewer is re-offered without it.
        offers = room.offers["v"]
        transceiver.direction = "inactive"
        await publisher.pc.setLocalDescription(await publisher.pc.createOffer())
        answer = await room.media.publish("trainer", publisher.pc.localDescription.sdp)
        await publisher.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        assert [t["id"] for t in room.media.tracks()] == ["trainer:mic"]
        await eventually(lambda: room.offers["v"] > offers, what="re-offer without the screen")
        assert set(room.media.mids("v").values()) == {"trainer:mic"}
    finally:
        await room.close()
