"""Encoded-frame forwarding on top of aiortc: tap the receiver, fan the frames out, never decode.

aiortc decodes everything it receives: ``RTCRtpReceiver._handle_rtp_packet`` depacketises RTP into
whole encoded frames (its jitter buffer) and puts ``(codec, JitterFrame)`` on a ``queue.Queue`` that a
decoder thread drains. ``install_tap`` swaps that queue for a :class:`Tap` before the receiver starts,
so each encoded frame reaches :meth:`Tap.put` on the event loop instead; the decoder thread that
``receive()`` still starts blocks in :meth:`Tap.get` until the receiver stops, and never creates a
decoder.

A :class:`Slot` is the stable identity of one published track (``publisher:label``, e.g.
``trainer-1:camera``). It wraps each frame once into one ``av.Packet`` and links it into a chain of
futures; every viewer's :class:`ForwardTrack` walks the chain, so a frame costs the fan-out one
``set_result`` however many viewers there are. aiortc's ``RTCRtpSender`` accepts an ``av.Packet`` from
``track.recv()`` and only packetises it (``encoder.pack``: RTP payloads plus timestamp from ``pts`` and
``time_base``), which is the only per-viewer work left (with SRTP). A slot outlives its source:
a publisher that restarts or switches devices attaches a new tap to the same slot, and the slot keeps
``pts`` continuous, so viewers' senders carry on without renegotiation.

A late joiner needs a key frame. Each video slot keeps a bounded cache of what it received since its
last key frame (the chain's future that resolved to that key frame: at most KEY_CACHE_SECONDS old and
KEY_CACHE_BYTES big, else it is let go), so a new viewer's sender starts with that key frame and the
frames after it the moment it can send, without a round trip to the publisher. Without a usable cache
the track asks the publisher for a key frame (PLI) as soon as it is attached to the slot, while ICE and
DTLS are still under way, and again every KEYFRAME_RETRY while it waits. The cache also makes a join
storm cost the publisher one key frame, not one per viewer.

Relies on aiortc 1.16.0 internals (pinned in pyproject.toml; ``tests/webrtc/test_aiortc_hook.py``
fails if they move): ``RTCRtpReceiver._RTCRtpReceiver__decoder_queue`` / ``__started`` /
``__rtx_ssrc`` / ``__decoder_thread``, ``RTCRtpReceiver._send_rtcp_pli``,
``RTCRtpSender._send_keyframe`` (called on an incoming PLI/FIR), ``RTCRtpTransceiver._codecs``.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.mediastreams import MediaStreamTrack

log = logging.getLogger(__name__)

#: Codecs forwarded as they are (lower-case codec names as in ``EncodedFrame.codec``).
FORWARDED_CODECS = frozenset({"vp8", "h264", "opus"})
#: A viewer further behind than this many frames skips to the newest (and waits for a key frame).
MAX_LAG_FRAMES = 120
#: Key frame requests to a publisher are at most this often (later ones are coalesced into one).
KEYFRAME_INTERVAL = 0.25
#: A viewer waiting for a key frame asks again after this long.
KEYFRAME_RETRY = 0.5
#: The key frame cache of a video slot: let go once its key frame is older than this (a new viewer then
#: starts with a burst of at most this much video) ...
KEY_CACHE_SECONDS = 1.0
#: ... or once the frames since it (key frame included) add up to more bytes than this.
KEY_CACHE_BYTES = 1 << 20

_QUEUE_ATTR = "_RTCRtpReceiver__decoder_queue"
_STARTED_ATTR = "_RTCRtpReceiver__started"
_RTX_ATTR = "_RTCRtpReceiver__rtx_ssrc"


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded frame as published (the recorder's unit; see ``signaling.webrtc``)."""

    publisher_id: str
    track_id: str
    kind: str  # "audio" | "video"
    codec: str  # "vp8" | "h264" | "opus"
    data: bytes
    pts: int
    time_base: fractions.Fraction
    keyframe: bool


def is_keyframe(codec: str, data: bytes) -> bool:
    """Whether an encoded frame can be decoded on its own."""
    if codec == "vp8":
        # RFC 6386 9.1: bit 0 of the frame tag is 0 for a key frame.
        return bool(data) and not data[0] & 0x01
    if codec == "h264":
        # aiortc depacketises H.264 into Annex B; an IDR slice (5) or SPS (7) starts a key frame.
        pos = data.find(b"\x00\x00\x01")
        while pos != -1 and pos + 3 < len(data):
            if data[pos + 3] & 0x1F in (5, 7):
                return True
            pos = data.find(b"\x00\x00\x01", pos + 3)
        return False
    return True


class Tap:
    """Stands in for the receiver's decoder queue: frames go to ``sink``, nothing is decoded."""

    def __init__(self, receiver: RTCRtpReceiver, kind: str) -> None:
        self.receiver = receiver
        self.kind = kind
        self.sink: Callable[[str, int, int, bytes], None] | None = None
        self.frames = 0
        self._stopped = threading.Event()
        self._sending: set[asyncio.Future] = set()

    # -- the queue.Queue interface aiortc uses -------------------------------------------------
    def put(self, item: Any) -> None:
        """Called by ``_handle_rtp_packet`` on the event loop (or with None when the receiver stops)."""
        if item is None:
            self._stopped.set()
            return
        codec, frame = item
        self.frames += 1
        sink = self.sink
        if sink is not None:
            sink(codec.mimeType.split("/", 1)[1].lower(), codec.clockRate, frame.timestamp, frame.data)

    def get(self, *args: Any, **kwargs: Any) -> None:
        """Called by aiortc's decoder thread: park it until the receiver stops, then let it end."""
        self._stopped.wait()
        return None

    # -- ours ------------------------------------------------------------------------------------
    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def request_keyframe(self) -> None:
        """Send a PLI to the publisher for the media SSRC this receiver hears."""
        ssrc = self.media_ssrc()
        if ssrc is not None:
            task = asyncio.ensure_future(self.receiver._send_rtcp_pli(ssrc))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    def media_ssrc(self) -> int | None:
        rtx = getattr(self.receiver, _RTX_ATTR)
        sources = [s for s in self.receiver.getSynchronizationSources() if s.source not in rtx]
        if not sources:
            return None
        return max(sources, key=lambda s: s.timestamp).source


def install_tap(receiver: RTCRtpReceiver, kind: str) -> Tap:
    """Replace the receiver's decoder queue with a :class:`Tap` (before the receiver starts)."""
    for attr in (_QUEUE_ATTR, _STARTED_ATTR, _RTX_ATTR, "_send_rtcp_pli"):
        if not hasattr(receiver, attr):
            raise RuntimeError(f"aiortc changed: RTCRtpReceiver has no {attr}; the forwarding hook needs it")
    current = getattr(receiver, _QUEUE_ATTR)
    if isinstance(current, Tap):
        return current
    if getattr(receiver, _STARTED_ATTR):
        raise RuntimeError("the receiver already started: its frames go to aiortc's decoder")
    tap = Tap(receiver, kind)
    setattr(receiver, _QUEUE_ATTR, tap)
    return tap


class _Node:
    __slots__ = ("keyframe", "next", "packet", "seq")

    def __init__(self, packet: av.Packet | None, keyframe: bool, nxt: asyncio.Future | None, seq: int):
        self.packet = packet
        self.keyframe = keyframe
        self.next = nxt
        self.seq = seq


class Slot:
    """One published track as viewers and the recorder see it, whatever source currently feeds it."""

    def __init__(
        self,
        track_id: str,
        publisher_id: str,
        label: str,
        kind: str,
        codec: str,
        clock_rate: int,
        epoch: float,
        subscribers: list[Callable[[EncodedFrame], None]],
    ) -> None:
        self.id = track_id
        self.publisher_id = publisher_id
        self.label = label
        self.kind = kind
        self.codec = codec
        self.clock_rate = clock_rate
        self.time_base = fractions.Fraction(1, clock_rate)
        self.caps: list[Any] = []  # viewer-side codec preferences that match this track's codec
        self.ended = False
        self.frames = 0
        self.bytes = 0
        self.keyframes_requested = 0
        self._epoch = epoch
        self._subscribers = subscribers
        self._loop = asyncio.get_running_loop()
        self._head: asyncio.Future = self._loop.create_future()
        self._tap: Tap | None = None
        self._offset: int | None = None  # added to the source's pts (re-anchored on each new source)
        self._last_pts = -1
        self._last_request = 0.0
        self._pending_request: asyncio.TimerHandle | None = None
        # The key frame cache: the future that resolved to the latest key frame's node, when it came,
        # and the bytes of the frames from it on.
        self._key: asyncio.Future | None = None
        self._key_at = 0.0
        self._key_bytes = 0
        self.cache_starts = 0  # viewers that started from the cache (no PLI needed)

    @property
    def head(self) -> asyncio.Future:
        return self._head

    @property
    def seq(self) -> int:
        return self.frames

    @property
    def tap(self) -> Tap | None:
        return self._tap

    def attach(self, tap: Tap) -> None:
        """Feed the slot from ``tap`` (a new or restarted publisher's receiver); the old one is cut."""
        if self._tap is not None and self._tap is not tap:
            self._tap.sink = None
        self._tap = tap
        self._offset = None
        self._key = None  # frames of the old source must not lead into the new one's
        tap.sink = self._push
        self.request_keyframe()

    def cached_key(self) -> asyncio.Future | None:
        """The future of the latest key frame's node, if the cache still holds it (else None)."""
        return self._key

    def start_from_cache(self, after_pts: int = -1) -> asyncio.Future | None:
        """Where a viewer waiting for a key frame starts: the cached key frame (counted), or None
        (then wait for one). Only a key frame later than ``after_pts`` (what that viewer's sender
        last sent, e.g. from another slot on a reused transceiver): its timestamps never go back."""
        key = self._key  # always resolved: it is set in _push right before the head resolves
        if key is None or key.result().packet.pts <= after_pts:
            return None
        self.cache_starts += 1
        return key

    def _push(self, codec: str, clock_rate: int, timestamp: int, data: bytes) -> None:
        if codec != self.codec or clock_rate != self.clock_rate or not data:
            return
        if self._offset is None:
            # Anchor this source on the media clock so pts never goes back (restart, device switch).
            now = round((time.monotonic() - self._epoch) * clock_rate)
            self._offset = max(now, self._last_pts + 1) - timestamp
        pts = timestamp + self._offset
        if pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        keyframe = is_keyframe(codec, data)
        if self.kind == "video":
            now = time.monotonic()
            if keyframe:
                self._key, self._key_at, self._key_bytes = self._head, now, 0
            if self._key is not None:
                self._key_bytes += len(data)
                if self._key_bytes > KEY_CACHE_BYTES or now - self._key_at > KEY_CACHE_SECONDS:
                    self._key = None
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = self.time_base
        self.frames += 1
        self.bytes += len(data)
        nxt = self._loop.create_future()
        self._head.set_result(_Node(packet, keyframe, nxt, self.frames))
        self._head = nxt
        if self._subscribers:
            frame = EncodedFrame(
                self.publisher_id, self.id, self.kind, codec, data, pts, self.time_base, keyframe
            )
            for callback in tuple(self._subscribers):
                try:
                    callback(frame)
                except Exception:
                    log.exception("media subscriber failed on %s", self.id)

    def request_keyframe(self) -> None:
        """Ask the publisher for a key frame, at most every KEYFRAME_INTERVAL (coalesced)."""
        if self.kind != "video" or self.ended or self._pending_request is not None:
            return
        wait = self._last_request + KEYFRAME_INTERVAL - time.monotonic()
        if wait > 0:
            self._pending_request = self._loop.call_later(wait, self._send_request)
        else:
            self._send_request()

    def _send_request(self) -> None:
        self._pending_request = None
        if self.ended or self._tap is None:
            return
        self._last_request = time.monotonic()
        self.keyframes_requested += 1
        self._tap.request_keyframe()

    def end(self) -> None:
        """No more frames: readers move on (their transceiver can be reused for another slot)."""
        if self.ended:
            return
        self.ended = True
        self._key = None
        if self._tap is not None:
            self._tap.sink = None
            self._tap = None
        if self._pending_request is not None:
            self._pending_request.cancel()
            self._pending_request = None
        self._head.set_result(_Node(None, False, None, self.frames + 1))


class ForwardTrack(MediaStreamTrack):
    """A viewer's sending track: yields the slot's ``av.Packet``s for aiortc's sender to packetise.

    It never ends by itself (an ended track would stop the sender for good): when its slot ends it
    waits until :meth:`attach` gives it another slot of the same kind and codec.
    """

    def __init__(self, kind: str, codec: str) -> None:
        super().__init__()
        self.kind = kind
        self.codec = codec
        self.slot: Slot | None = None
        self.sent = 0
        self._fut: asyncio.Future | None = None
        self._wake: asyncio.Future | None = None
        self._need_key = kind == "video"
        self._asked = 0.0
        self._last_pts = -1  # of the last packet this track handed its sender (kept across slots)

    def attach(self, slot: Slot) -> None:
        """Follow ``slot`` from now on. Video asks the publisher for a key frame at once (while the
        viewer's ICE and DTLS are still under way) unless the slot's cache holds one to start with."""
        self.slot = slot
        self._fut = slot.head
        self._need_key = self.kind == "video"
        self._asked = 0.0
        if self._need_key and slot.cached_key() is None:
            self._asked = time.monotonic()
            slot.request_keyframe()
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def detach(self) -> None:
        self.slot = None
        self._fut = None

    def keyframe_requested(self) -> None:
        """The viewer reported loss (PLI/FIR reached our sender)."""
        if self.slot is not None:
            self.slot.request_keyframe()

    async def recv(self) -> av.Packet:  # type: ignore[override]
        while True:
            fut = self._fut
            if fut is None:
                self._wake = asyncio.get_running_loop().create_future()
                await self._wake
                continue
            # Shielded: cancelling this viewer's sender must not cancel the future all viewers share.
            if self._need_key and self.slot is not None:
                # Start with the slot's cached key frame when there is one (even if it is older than
                # where this track stands: the frames after it are what make the picture now).
                cached = self.slot.start_from_cache(self._last_pts)
                if cached is not None:
                    fut = self._fut = cached
            node: _Node = await asyncio.shield(fut)
            slot = self.slot
            if node.packet is None:  # the slot ended
                if self._fut is fut:
                    self.detach()
                continue
            if self._fut is not fut:  # re-attached meanwhile
                continue
            self._fut = node.next
            if slot is None:
                continue
            if slot.seq - node.seq > MAX_LAG_FRAMES:
                self._fut = slot.head
                self._need_key = self.kind == "video"
                continue
            if self._need_key:
                if not node.keyframe:
                    now = time.monotonic()
                    if now - self._asked > KEYFRAME_RETRY:
                        self._asked = now
                        slot.request_keyframe()
                    continue
                self._need_key = False
            self.sent += 1
            self._last_pts = node.packet.pts
            return node.packet


def hook_sender(sender: RTCRtpSender, track: ForwardTrack) -> None:
    """Route the viewer's PLI/FIR (aiortc calls ``sender._send_keyframe()``) to the publisher."""
    if not callable(getattr(sender, "_send_keyframe", None)):
        raise RuntimeError("aiortc changed: RTCRtpSender has no _send_keyframe; PLI cannot be forwarded")
    sender._send_keyframe = track.keyframe_requested  # type: ignore[method-assign]
