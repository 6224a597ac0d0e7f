"""Encoded frames from aiortc publishers reach several aiortc viewers, in order, decodable, never decoded
on the server."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys

import pytest

from signaling.webrtc import Media, forward
from tests.webrtc.helpers import DecoderSpy, Publisher, Viewer, Viewers, server_decoder_threads


def assert_in_order(viewer: Viewer) -> None:
    counters = viewer.counters
    assert counters, f"{viewer.id} decoded no video"
    assert all(b > a for a, b in itertools.pairwise(counters)), (
        f"{viewer.id}: frames out of order or corrupt: {counters}"
    )


async def test_three_viewers_get_the_publishers_frames_in_order() -> None:
    viewers = Viewers()
    seen_tracks: list[list[dict]] = []
    media = Media(on_tracks=seen_tracks.append, on_offer=viewers.on_offer)
    with DecoderSpy() as spy:
        publisher = Publisher(media, "trainer")
        try:
            await publisher.start()
            assert [(t["id"], t["kind"], t["codec"]) for t in media.tracks()] == [
                ("trainer:mic", "audio", "opus"),
                ("trainer:camera", "video", "vp8"),
            ]
            assert seen_tracks[-1] == media.tracks()
            watchers = [viewers.add(Viewer(media, f"v{i}")) for i in range(3)]
            await asyncio.gather(*(v.start() for v in watchers))
            await asyncio.gather(*(v.wait_video(45) for v in watchers))
            for viewer in watchers:
                assert_in_order(viewer)
                # The client learns which received track is which from the mids.
                mids = media.mids(viewer.id)
                kinds = {t.mid: t.kind for t in viewer.pc.getTransceivers()}
                assert {mid: kinds[mid] for mid in mids} == {
                    mid: "audio" if track == "trainer:mic" else "video" for mid, track in mids.items()
                }
                assert sorted(mids.values()) == ["trainer:camera", "trainer:mic"]
                assert viewer.audio_loud > 0, f"{viewer.id} heard no tone ({viewer.audio_frames} frames)"
            stats = media.stats()
            camera = stats["tracks"]["trainer:camera"]
            assert camera["frames"] >= 45
            assert camera["tapped"] == camera["frames"]
            for viewer in watchers:
                assert stats["viewers"][viewer.id]["trainer:camera"] >= 45
            # The server's receivers never made a decoder: their frames went to the tap.
            server_threads = server_decoder_threads(media)
            assert len(server_threads) == 2
            assert not set(server_threads) & set(spy.threads)
            # ... while the viewers' receivers did decode (the spy sees decoders being made).
            assert spy.threads
        finally:
            await media.close()
            await publisher.close()
            for viewer in viewers.by_id.values():
                await viewer.close()


@pytest.mark.parametrize("gso", [True, False])
async def test_datagrams_reach_the_viewer_one_by_one_in_order(gso: bool, monkeypatch) -> None:
    """The fan-out's socket path: runs of a frame's packets go out in one call where the kernel takes
    UDP GSO, yet arrive as the same datagrams, in order, as when sent one at a time."""
    monkeypatch.setattr(forward, "GSO", gso and sys.platform == "linux")
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    arrived = asyncio.Event()

    class Sink(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr) -> None:
            got.append(data)
            if len(got) == len(sent):
                arrived.set()

    sink, _ = await loop.create_datagram_endpoint(Sink, local_addr=("127.0.0.1", 0))
    source, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    try:
        addr = sink.get_extra_info("sockname")
        frames = [
            [bytes([1]) * 1210] * 5 + [bytes([2]) * 700],  # a frame: full packets, a shorter last one
            [bytes([3]) * 300],  # one packet
            [bytes([4]) * 1000, bytes([5]) * 1200, bytes([6]) * 1200, bytes([7]) * 90],  # growing
            [bytes([8 + i % 3]) * 600 for i in range(70)],  # a key frame: more than 64 segments
        ]
        sent = [d for frame in frames for d in frame]
        for frame in frames:
            forward.send_datagrams(source, addr, frame)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), 5)
        assert [len(d) for d in got] == [len(d) for d in sent]
        assert got == sent
        assert (gso and sys.platform == "linux") == forward.GSO  # not refused on loopback
    finally:
        source.close()
        sink.close()
