"""Live media recorded with the replay: a trainer publishes through the socket commands of a real
server; the recording decodes with PyAV, lasts as long as the publishing did, and a chat message
sent at a known moment lines up with the media by the manifest's offsets."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import av

from recorder.api import LIBRARY
from recorder.paths import recording_dir
from tests.conftest import Server
from tests.recorder.test_replay_api import ok, token_of
from tests.webrtc.helpers import CounterVideo, ToneAudio, eventually, read_counter
from tests.webrtc.socket_peers import SocketPublisher

MARK = 45  # the chat message goes out as this frame is captured (1.5 s in)
SECONDS = 3.0


def server_frames(server: Server, session_id: str, track_id: str) -> int:
    """Frames of a track the server has received so far."""
    from classroom.keys import HUB

    room = server.app[HUB].media.rooms.get(session_id)
    return room.media.stats()["tracks"].get(track_id, {}).get("frames", 0) if room else 0


class Capture:
    """When the publisher's tracks captured their frames (monotonic), until `stop()`: then they
    capture no more (their senders wait), as a muted device would."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.stopped: float | None = None
        self._never = asyncio.get_running_loop().create_future()

    async def frame(self) -> None:
        if self.stopped is not None:
            await self._never
        now = time.monotonic()
        self.first = now if self.first is None else self.first

    def stop(self) -> None:
        self.stopped = time.monotonic()


class MarkedVideo(CounterVideo):
    """Records each frame's capture time and calls `at_mark` as frame MARK is captured."""

    def __init__(self, capture: Capture, at_mark) -> None:
        super().__init__()
        self.capture = capture
        self.times: dict[int, float] = {}
        self.at_mark = at_mark

    async def recv(self):
        frame = await super().recv()
        await self.capture.frame()
        n = self.counter - 1
        self.times[n] = time.monotonic()
        if n == MARK:
            self.at_mark()
        return frame


class StoppedTone(ToneAudio):
    def __init__(self, capture: Capture) -> None:
        super().__init__()
        self.capture = capture
        self.frames = 0

    async def recv(self):
        frame = await super().recv()
        await self.capture.frame()
        self.frames += 1
        return frame


async def test_the_recording_decodes_lasts_and_lines_up_with_events(server: Server, tmp_path: Path) -> None:
    info, trainer = await server.live_session("Recorded media")
    sid = info["id"]
    learner = token_of(info["join_url"])
    chat: dict[str, asyncio.Task] = {}

    def send_chat() -> None:
        chat["task"] = asyncio.ensure_future(trainer.request("chat.send", text="look at frame 45"))

    capture = Capture()
    publisher = SocketPublisher(trainer, audio=False, video=False)
    video = MarkedVideo(capture, send_chat)
    tone = StoppedTone(capture)
    publisher.pc.addTrack(tone)
    publisher.pc.addTransceiver(video, direction="sendonly")
    publisher.labels = {"0": "mic", "1": "camera"}
    try:
        assert (await publisher.publish())["ok"]
        await eventually(lambda: len(video.times) >= SECONDS * 30, 20, "three seconds of video")
        capture.stop()
        # What was captured reaches the server (a few frames in flight), then the tracks end.
        last = video.counter - 1
        await eventually(
            lambda: server_frames(server, sid, f"{trainer.you['id']}:camera") >= last, 10, "the last frames"
        )
        assert (await trainer.request("media.unpublish"))["ok"]
    finally:
        await publisher.close()
    chat_seq = (await chat["task"])["seq"]
    chat_t = (await trainer.wait_for("chat.message", lambda e: e["seq"] == chat_seq, 10))["t"]

    async def complete() -> list | None:
        media = (await ok(server, "GET", f"/api/recordings/{sid}", learner))["media"]
        return media if media and all(m["status"] == "complete" for m in media) else None

    await eventually(complete, 20, "the media file finalised")
    (m,) = await complete()
    assert m["publisher"] == trainer.you["id"] and m["content_type"] == "video/webm"
    assert sorted(t["kind"] for t in m["tracks"]) == ["audio", "video"], m
    path = recording_dir(server.app[LIBRARY].root, sid) / "media" / m["file"]

    # It decodes, every frame in order.
    counters, times = [], []
    with av.open(str(path)) as container:
        duration_ms = container.duration / 1000
        for frame in container.decode(video=0):
            counters.append(read_counter(frame))
            times.append(float(frame.pts * frame.time_base * 1000))
        audio = sum(f.samples for f in av.open(str(path)).decode(audio=0))
    whole = [c for c in counters if c is not None]
    assert len(whole) >= 0.9 * len(counters) and whole == sorted(whole), counters
    assert audio > 0.8 * SECONDS * 48000

    # As long as what was published: the media's own clock (20 ms audio frames, 30 fps video; a
    # loaded machine may capture late, but the timestamps say when each frame belongs).
    published_ms = max(tone.frames * 20, video.counter * 1000 / 30)
    for measured in (m["duration_ms"], duration_ms):
        assert abs(measured - published_ms) <= 0.05 * published_ms, (measured, published_ms)

    # The chat message sent as frame MARK was captured is at that frame's place on the session clock.
    # The publisher's own lateness (its event loop woken late on a loaded machine) is not the
    # recording's: frame MARK was captured `late` ms after its timestamp says, relative to the
    # most punctual frame, and the chat message went out then.
    due = {n: t - n / 30 for n, t in video.times.items()}
    late = (due[MARK] - min(due.values())) * 1000
    index = counters.index(MARK)
    at = m["start_ms"] + times[index]
    print(
        f"media: {measured:.0f} ms recorded of {published_ms:.0f} ms published;"
        f" frame {MARK} at {at:.0f}, chat at {chat_t}, publisher {late:.0f} ms late"
    )
    assert abs(at - chat_t) <= 100 + late, (at, chat_t, late)


async def test_a_recording_pause_is_a_gap_in_the_media(server: Server) -> None:
    info, trainer = await server.live_session("Paused media")
    sid = info["id"]
    publisher = SocketPublisher(trainer)
    video = publisher.video
    assert video is not None

    async def frames(n: int) -> None:  # n more frames captured by the publisher
        target = video.counter + n
        await eventually(lambda: video.counter >= target, 20, f"{n} frames")

    try:
        assert (await publisher.publish())["ok"]
        await frames(30)
        ack = await trainer.request("recording.pause")
        paused_t = (await trainer.wait_for("recording.paused", lambda e: e["seq"] == ack["seq"], 10))["t"]
        await frames(30)
        ack = await trainer.request("recording.resume")
        resumed_t = (await trainer.wait_for("recording.resumed", lambda e: e["seq"] == ack["seq"], 10))["t"]
        await frames(30)
        assert (await trainer.request("media.unpublish"))["ok"]
    finally:
        await publisher.close()

    async def complete() -> list | None:
        media = (await ok(server, "GET", f"/api/recordings/{sid}", token_of(info["join_url"])))["media"]
        return media if media and all(m["status"] == "complete" for m in media) else None

    await eventually(complete, 20, "the media file finalised")
    (m,) = await complete()
    path = recording_dir(server.app[LIBRARY].root, sid) / "media" / m["file"]
    with av.open(str(path)) as container:
        at = [m["start_ms"] + float(f.pts * f.time_base * 1000) for f in container.decode(video=0)]
    # Nothing recorded while paused; video again within a second of the resume (a key frame).
    assert not [t for t in at if paused_t + 100 < t < resumed_t - 100], (paused_t, resumed_t)
    before = [t for t in at if t <= paused_t + 100]
    after = [t for t in at if t >= resumed_t - 100]
    assert before and after and before[-1] > paused_t - 200, (before[-3:], paused_t)
    assert after[0] < resumed_t + 1000, (after[:3], resumed_t)
