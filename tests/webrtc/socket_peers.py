"""Real aiortc publishers and viewers signaling through the server's socket commands (`media.*`)
on a real socket.io client, as a browser does (docs/protocol.md, section 5.8)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from classroom.client import ClassroomClient
from tests.webrtc.helpers import CounterVideo, ToneAudio, Viewer, no_stun


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
