"""The recorder's feed: every encoded frame once, with codec, pts and key frame flags, decodable."""

from __future__ import annotations

import itertools
import time

import av

from signaling.webrtc import EncodedFrame, Media
from tests.webrtc.helpers import Publisher, eventually, read_counter


async def test_subscribers_get_decodable_encoded_frames_with_continuous_pts() -> None:
    frames: list[EncodedFrame] = []
    arrivals: list[float] = []
    media = Media()

    def record(frame: EncodedFrame) -> None:
        frames.append(frame)
        arrivals.append(time.monotonic())

    unsubscribe = media.subscribe(record)
    publisher = Publisher(media, "trainer")
    restarted = None
    try:
        await publisher.start()
        await eventually(lambda: sum(f.kind == "video" for f in frames) >= 30, what="30 video frames")
        await publisher.close()
        restarted = Publisher(media, "trainer", start=1000)
        await restarted.start()
        await eventually(
            lambda: sum(f.kind == "video" and f.pts > 0 for f in frames) >= 60, what="frames after a restart"
        )
    finally:
        unsubscribe()
        await media.close()
        await publisher.close()
        if restarted is not None:
            await restarted.close()
    video = [f for f in frames if f.kind == "video"]
    audio = [f for f in frames if f.kind == "audio"]
    assert {(f.track_id, f.codec, f.time_base.denominator) for f in video} == {
        ("trainer:camera", "vp8", 90000)
    }
    assert {(f.track_id, f.codec, f.time_base.denominator) for f in audio} == {("trainer:mic", "opus", 48000)}
    assert {f.publisher_id for f in frames} == {"trainer"}
    for track in (video, audio):
        assert all(b.pts > a.pts for a, b in itertools.pairwise(track)), "pts goes back"
    assert video[0].keyframe
    # Every track starts on the Media's clock: pts counts seconds since media.epoch.
    for track in (video, audio):
        first = frames.index(track[0])
        assert abs(float(track[0].pts * track[0].time_base) - (arrivals[first] - media.epoch)) < 0.1
    # The data decodes as it is: this is what the recorder muxes into WebM.
    decoder = av.CodecContext.create("libvpx", "r")
    counters = []
    for frame in video:
        packet = av.Packet(frame.data)
        packet.pts = frame.pts
        counters.extend(read_counter(f) for f in decoder.decode(packet))
    assert len(counters) == len(video)
    whole = [c for c in counters if c is not None]  # a frame damaged by loss reads as None
    assert len(whole) >= 0.9 * len(counters)
    assert any(c >= 1000 for c in whole)
    opus = av.CodecContext.create("opus", "r")
    samples = sum(f.samples for a in audio[:50] for f in opus.decode(av.Packet(a.data)))
    assert samples == 50 * 960
