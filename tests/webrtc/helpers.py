"""Real aiortc publishers and viewers on loopback for the media tests (synthetic audio and video)."""

from __future__ import annotations

import asyncio
import fractions
import math
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc import rtcrtpreceiver as aiortc_receiver
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, VideoStreamTrack
from av import AudioFrame, VideoFrame

from signaling.webrtc import Media

WIDTH, HEIGHT = 320, 240
BITS = 16
BIT_W = WIDTH // BITS
BAND = HEIGHT // 4
SAMPLE_RATE = 48000
SAMPLES = 960


def no_stun() -> RTCConfiguration:
    return RTCConfiguration(iceServers=[])


class CounterVideo(VideoStreamTrack):
    """30 fps frames with a frame counter drawn as 16 black/white columns (survives VP8 at low rate),
    and below it the counter's complement, so a frame damaged by packet loss is recognised."""

    def __init__(self, start: int = 0) -> None:
        super().__init__()
        self.counter = start
        self._chroma = np.full((HEIGHT // 2, WIDTH), 128, np.uint8)

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        y = np.full((HEIGHT, WIDTH), 16, np.uint8)
        for bit in range(BITS):
            column = slice(bit * BIT_W, (bit + 1) * BIT_W)
            y[: BAND if self.counter >> bit & 1 else 0, column] = 235
            y[BAND : 2 * BAND if not self.counter >> bit & 1 else BAND, column] = 235
        y[HEIGHT // 2 :, :] = (self.counter * 7) % 200 + 20  # some motion below
        frame = VideoFrame.from_ndarray(np.vstack([y, self._chroma]), format="yuv420p")
        frame.pts = pts
        frame.time_base = time_base
        self.counter += 1
        return frame


def read_counter(frame: VideoFrame) -> int | None:
    """The frame's counter, or None if the picture is damaged (counter and complement disagree)."""
    y = frame.to_ndarray(format="gray")
    value = check = 0
    for bit in range(BITS):
        column = slice(bit * BIT_W + 4, (bit + 1) * BIT_W - 4)
        if y[8 : BAND - 8, column].mean() > 128:
            value |= 1 << bit
        if y[BAND + 8 : 2 * BAND - 8, column].mean() > 128:
            check |= 1 << bit
    return value if value ^ check == (1 << BITS) - 1 else None


class ToneAudio(AudioStreamTrack):
    """A 440 Hz tone, 20 ms frames at 48 kHz."""

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if hasattr(self, "_timestamp"):
            self._timestamp += SAMPLES
            await asyncio.sleep(self._start + self._timestamp / SAMPLE_RATE - time.time())
        else:
            self._start = time.time()
            self._timestamp = 0
        t = (np.arange(SAMPLES) + self._timestamp) / SAMPLE_RATE
        samples = (np.sin(2 * math.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1)
        frame = AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._timestamp
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return frame


class Publisher:
    """An aiortc publisher with a mic (tone) and a camera (counter), optionally H.264."""

    def __init__(self, media: Media, publisher_id: str, start: int = 0, codec: str = "VP8") -> None:
        self.media = media
        self.id = publisher_id
        self.pc = RTCPeerConnection(no_stun())
        self.video = CounterVideo(start)
        self.audio = ToneAudio()
        self.pc.addTrack(self.audio)
        transceiver = self.pc.addTransceiver(self.video, direction="sendonly")
        caps = RTCRtpSender.getCapabilities("video").codecs
        transceiver.setCodecPreferences(
            [c for c in caps if c.mimeType == f"video/{codec}"]
            + [c for c in caps if c.mimeType == "video/rtx"]
        )

    async def start(self) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await self.media.publish(self.id, self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    async def close(self) -> None:
        await self.pc.close()


class Viewer:
    """An aiortc viewer: decodes what it gets, records counters in order and audio levels."""

    def __init__(self, media: Media, viewer_id: str) -> None:
        self.media = media
        self.id = viewer_id
        self.pc = RTCPeerConnection(no_stun())
        self.counters: list[int] = []
        self.video_times: list[float] = []
        self.damaged = 0
        self.audio_frames = 0
        self.audio_loud = 0
        self.connected_at: float | None = None
        self.video_event = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._seen: set[str] = set()

        @self.pc.on("track")
        def on_track(track) -> None:
            if track.id in self._seen:
                return
            self._seen.add(track.id)
            self._tasks.append(asyncio.ensure_future(self._consume(track)))

        @self.pc.on("connectionstatechange")
        def on_state() -> None:
            if self.pc.connectionState == "connected" and self.connected_at is None:
                self.connected_at = time.monotonic()

    async def _consume(self, track) -> None:
        with suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    counter = read_counter(frame)
                    if counter is None:  # damaged by loss (the machine may be very busy)
                        self.damaged += 1
                        continue
                    self.counters.append(counter)
                    self.video_times.append(time.monotonic())
                    self.video_event.set()
                else:
                    self.audio_frames += 1
                    if np.abs(frame.to_ndarray()).max() > 1000:
                        self.audio_loud += 1

    async def start(self) -> None:
        offer = await self.media.view(self.id)
        await self.on_offer(offer)

    async def on_offer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.media.answer(self.id, self.pc.localDescription.sdp)

    async def wait_video(self, count: int, timeout: float = 10.0) -> None:
        """Until ``count`` more video frames have been decoded."""
        target = len(self.counters) + count
        deadline = time.monotonic() + timeout
        while len(self.counters) < target:
            self.video_event.clear()
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"{self.id}: {len(self.counters)} of {target} video frames"
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.video_event.wait(), remaining)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


class Viewers:
    """Routes the server's re-offers to the right test viewer."""

    def __init__(self) -> None:
        self.by_id: dict[str, Viewer] = {}

    async def on_offer(self, viewer_id: str, sdp: str) -> None:
        viewer = self.by_id.get(viewer_id)
        if viewer is not None:
            await viewer.on_offer(sdp)

    def add(self, viewer: Viewer) -> Viewer:
        self.by_id[viewer.id] = viewer
        return viewer


class DecoderSpy:
    """Records which threads create an aiortc decoder (wraps the real get_decoder; no mock)."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self._original: Callable | None = None

    def __enter__(self) -> DecoderSpy:
        self._original = original = aiortc_receiver.get_decoder

        def get_decoder(codec):
            self.threads.append(threading.current_thread())
            return original(codec)

        aiortc_receiver.get_decoder = get_decoder
        return self

    def __exit__(self, *exc) -> None:
        aiortc_receiver.get_decoder = self._original


def server_decoder_threads(media: Media) -> list[threading.Thread]:
    threads = []
    for pub in media._publishers.values():
        for receiver in pub.pc.getReceivers():
            thread = getattr(receiver, "_RTCRtpReceiver__decoder_thread", None)
            if thread is not None:
                threads.append(thread)
    return threads


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        await asyncio.sleep(0.05)
