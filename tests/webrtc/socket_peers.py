"""Real aiortc publishers and viewers signaling through the server's socket commands (`media.*`)
on a real socket.io client, as a browser does (docs/protocol.md, section 5.8)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from classroom.client import ClassroomClient
from tests.webrtc.helpers import CounterVideo, ToneAudio, Viewer, eventually, no_stun


def increasing(values: list[int]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


def live_tracks(client: ClassroomClient) -> list[tuple[str, str]]:
    """The (publisher, label) of the tracks live in the client's view of the session."""
    return sorted((t["publisher"], t["label"]) for t in client.state.media["tracks"])


async def receive_all(viewers: list[SocketViewer], publisher_id: str, timeout: float) -> None:
    """Start every viewer; each gets the publisher's camera and mic, decodes 30 frames in order
    and hears the tone."""
    for viewer in viewers:
        await viewer.start()
        assert sorted(viewer.mids.values()) == [f"{publisher_id}:camera", f"{publisher_id}:mic"]
    for viewer in viewers:
        await viewer.wait_video(30, timeout=timeout)
        assert increasing(viewer.counters), viewer.counters
    await eventually(lambda: all(v.audio_loud > 10 for v in viewers), timeout / 2, "audio at the viewers")


async def late_join(early: SocketViewer, late: SocketViewer, timeout: float) -> float:
    """Two seconds into the media (its first key frames gone, also from the key-frame cache),
    start `late`; seconds from its connection to its first decoded frame, asserted under 1 s."""
    await early.wait_video(60, timeout=timeout)
    await late.start()
    await eventually(lambda: late.connected_at is not None, timeout / 2, "the late viewer connected")
    await late.wait_video(1, timeout=timeout / 4)
    delay = late.video_times[0] - late.connected_at
    print(f"late viewer: first frame {delay * 1000:.0f} ms after connecting")
    assert delay < 1.0, f"first decoded frame {delay:.3f} s after connecting"
    return delay


class SocketPublisher:
    """A publisher with a mic (tone, mid "0") and/or a camera (counter, mid "1" or "0")."""

    def __init__(
        self, client: ClassroomClient, *, audio: bool = True, video: bool = True, start: int = 0
    ) -> None:
        self.client = client
        self.pc = RTCPeerConnection(no_stun())
        self.labels: dict[str, str] = {}
        self.video: CounterVideo | None = None
        if audio:
            self.pc.addTrack(ToneAudio())
            self.labels[str(len(self.labels))] = "mic"
        if video:
            self.video = CounterVideo(start)
            transceiver = self.pc.addTransceiver(self.video, direction="sendonly")
            caps = RTCRtpSender.getCapabilities("video").codecs
            transceiver.setCodecPreferences(
                [c for c in caps if c.mimeType == "video/VP8"]
                + [c for c in caps if c.mimeType == "video/rtx"]
            )
            self.labels[str(len(self.labels))] = "camera"

    async def publish(self) -> dict[str, Any]:
        """Send the offer; returns the ack (the answer is applied when it succeeds)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        ack = await self.client.send(
            "media.publish", {"sdp": self.pc.localDescription.sdp, "labels": self.labels}
        )
        if ack.get("ok"):
            await self.pc.setRemoteDescription(RTCSessionDescription(ack["sdp"], "answer"))
        return ack

    async def close(self) -> None:
        await self.pc.close()


class SocketViewer(Viewer):
    """An aiortc viewer whose offers come from `media.view` and the personal `media.offer` event."""

    def __init__(self, client: ClassroomClient) -> None:
        super().__init__(None, client.you["id"] if client.you else "?")  # type: ignore[arg-type]
        self.client = client
        self.offers = 0
        self.mids: dict[str, str] = {}
        self._lock = asyncio.Lock()
        client.sio.on("media.offer", self._offered)

    async def _offered(self, data: dict[str, Any]) -> None:
        self.offers += 1
        self.mids = data["mids"]
        await self.on_offer(data["sdp"])

    async def start(self) -> None:
        ack = await self.client.request("media.view")
        self.mids = ack["mids"]
        await self.on_offer(ack["sdp"])

    async def on_offer(self, sdp: str) -> None:
        async with self._lock:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await self.client.request("media.answer", sdp=self.pc.localDescription.sdp)
