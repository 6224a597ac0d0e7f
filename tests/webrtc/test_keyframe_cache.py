"""A late joiner's first key frame (signaling/webrtc/forward.py): a new viewer starts from the slot's
cached key frame when there is a fresh one, else the key frame is asked of the publisher the moment
the viewer's track is attached (before ICE and DTLS are done), and the cache stays bounded."""

from __future__ import annotations

import asyncio
import time

from signaling.webrtc import forward
from tests.webrtc.helpers import eventually
from tests.webrtc.test_churn import Room, increasing


def camera(room: Room) -> dict:
    return room.media.stats()["tracks"]["trainer:camera"]


async def test_a_viewer_after_a_fresh_key_frame_starts_from_the_cache(monkeypatch) -> None:
    # The cache's age bound is the next test's: here it must not run out while a loaded machine
    # takes its time to connect the late viewer.
    monkeypatch.setattr(forward, "KEY_CACHE_SECONDS", 60.0)
    room = Room()
    try:
        await room.publisher("trainer")
        first = await room.viewer("first")
        await first.wait_video(5)
        slot = room.media._slots["trainer:camera"]
        # A fresh key frame (asked for here, as a late joiner would) fills the cache.
        room.media.request_keyframe("trainer:camera")
        await eventually(
            lambda: slot.cached_key() is not None and time.monotonic() - slot._key_at < 1.0,
            what="a fresh key frame in the cache",
        )
        before = camera(room)
        late = await room.viewer("late")
        await eventually(lambda: late.connected_at is not None, what="late viewer connected")
        await late.wait_video(1, timeout=5)
        after = camera(room)
        assert after["cache_starts"] > before["cache_starts"]
        await late.wait_video(10)
        assert increasing(late.counters) and not late.damaged
    finally:
        await room.close()


async def test_without_a_fresh_key_frame_attaching_asks_the_publisher_at_once() -> None:
    room = Room()
    try:
        await room.publisher("trainer")
        first = await room.viewer("first")
        await first.wait_video(5)
        slot = room.media._slots["trainer:camera"]
        await eventually(lambda: slot.cached_key() is None, timeout=10, what="the cache let go")
        requested = camera(room)["keyframes_requested"]
        # The request goes out when the track is attached (the server's offer), not once connected.
        await room.media.view("late")
        assert room.media._viewers["late"].pc.connectionState == "new"
        await eventually(lambda: camera(room)["keyframes_requested"] > requested, timeout=1, what="a PLI")
    finally:
        await room.close()


async def test_the_cache_is_bounded_in_time_and_bytes(monkeypatch) -> None:
    room = Room()
    try:
        await room.publisher("trainer")
        viewer = await room.viewer("v")
        await viewer.wait_video(3)
        slot = room.media._slots["trainer:camera"]
        # In time: no key frame for longer than KEY_CACHE_SECONDS and the cache is empty.
        monkeypatch.setattr(forward, "KEY_CACHE_SECONDS", 0.2)
        await eventually(lambda: slot.cached_key() is None, what="let go after 0.2 s")
        # In bytes: a key frame bigger than the bound is not kept at all.
        monkeypatch.setattr(forward, "KEY_CACHE_SECONDS", 60.0)
        monkeypatch.setattr(forward, "KEY_CACHE_BYTES", 10)
        keys = slot.keyframes_requested
        room.media.request_keyframe("trainer:camera")
        await eventually(lambda: slot.keyframes_requested > keys, what="the key frame request")
        await asyncio.sleep(0)  # (no waiting on time: the next checks hold for every frame)
        for _ in range(30):
            assert slot.cached_key() is None
            await viewer.wait_video(1)
        # The audio slot never caches.
        assert room.media._slots["trainer:mic"].cached_key() is None
    finally:
        await room.close()
