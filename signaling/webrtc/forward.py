"""Encoded-frame forwarding on top of aiortc: tap the receiver, fan the frames out, never decode.

aiortc decodes everything it receives: ``RTCRtpReceiver._handle_rtp_packet`` depacketises RTP into
whole encoded frames (its jitter buffer) and puts ``(codec, JitterFrame)`` on a ``queue.Queue`` that a
decoder thread drains. ``install_tap`` swaps that queue for a :class:`Tap` before the receiver starts,
so each encoded frame reaches :meth:`Tap.put` on the event loop instead; the decoder thread that
``receive()`` still starts blocks in :meth:`Tap.get` until the receiver stops, and never creates a
decoder.

A :class:`Slot` is the stable identity of one published track (``publisher:label``, e.g.
``trainer-1:camera``). A slot outlives its source: a publisher that restarts or switches devices
attaches a new tap to the same slot, and the slot keeps ``pts`` continuous, so viewers carry on
without renegotiation.

Fan-out. aiortc's own sending path costs every viewer a task wake-up per frame, a packetiser run, an
``RtpPacket`` built and serialised, an NTP clock read per packet and three coroutine hops down to the
socket. Here a slot packetises each frame ONCE (one ``encoder.pack``, one serialised RTP packet per
payload and per group of viewers whose senders negotiated the same payload type, mid and header
extension ids), and one task per slot (not per viewer) walks its viewers' tracks (:class:`ForwardTrack`):
per viewer and packet only the 12-byte fixed header is written (that viewer's sequence number,
timestamp and SSRC), SRTP-protected with the viewer's session and handed to the socket of its ICE
pair. The task yields to the event loop every ``YIELD_EVERY`` viewers. aiortc's sender stays in place
for everything else: it is started by aiortc as usual (its first ``track.recv()`` says the viewer's
DTLS is up and its parameters are known) and then parks in ``recv()``; its RTCP task sends sender
reports from the counters the fan-out keeps up to date; a viewer's NACK is answered from the
viewer's last 128 packets (through aiortc's own retransmission, RTX included); a PLI/FIR asks the
publisher for a key frame.

A late joiner needs a key frame. Each video slot keeps a bounded cache of what it received since its
last key frame (at most KEY_CACHE_SECONDS old and KEY_CACHE_BYTES big, else it is let go), so a new
viewer starts with that key frame and the frames after it the moment its sender starts, without a
round trip to the publisher. Without a usable cache the track asks the publisher for a key frame
(PLI) as soon as it is attached to the slot, while ICE and DTLS are still under way, and again every
KEYFRAME_RETRY while it waits. The cache also makes a join storm cost the publisher one key frame, not
one per viewer.

Relies on aiortc 1.16.0 internals (pinned in pyproject.toml; ``tests/webrtc/test_aiortc_hook.py``
fails if they move): receiver ``RTCRtpReceiver._RTCRtpReceiver__decoder_queue`` / ``__started`` /
``__rtx_ssrc`` / ``__decoder_thread``, ``RTCRtpReceiver._send_rtcp_pli``; sender
``RTCRtpSender._send_keyframe`` (called on an incoming PLI/FIR), ``_retransmit`` and
``_RTCRtpSender__rtp_history`` (NACK), ``_RTCRtpSender__ntp_timestamp`` / ``__rtp_timestamp`` /
``__packet_count`` / ``__octet_count`` (sender reports), ``send()`` starting ``_run_rtp`` only once
DTLS is connected; ``RTCDtlsTransport._tx_srtp`` / ``_state``; the ICE transport's aioice
``Connection._nominated`` pairs, whose ``protocol.transport.sendto`` is what aioice sends data with;
``RTCRtpTransceiver._codecs``.
"""

from __future__ import annotations

import asyncio
import errno
import fractions
import logging
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.clock import current_ntp_time
from aiortc.codecs import get_encoder
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpSendParameters
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensionsMap, RtpPacket
from aiortc.utils import random16, random32

log = logging.getLogger(__name__)

#: Codecs forwarded as they are (lower-case codec names as in ``EncodedFrame.codec``).
FORWARDED_CODECS = frozenset({"vp8", "h264", "opus"})
#: A fan-out further behind than this many frames skips to the newest (viewers wait for a key frame).
MAX_LAG_FRAMES = 120
#: The fan-out task lets the event loop run after this many viewers (a frame to 250 viewers is ~1,000
#: datagrams; other work must not wait for all of them).
YIELD_EVERY = 25
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


#: Hand a viewer's datagrams of one frame to the kernel in one call (Linux UDP GSO) where possible.
#: Off by itself (for good) when the kernel or the network device refuses it.
GSO = sys.platform == "linux"
_SOL_UDP, _UDP_SEGMENT = 17, 103  # linux/udp.h
_GSO_SEGMENTS = 64  # UDP_MAX_SEGMENTS
_GSO_BYTES = 65000  # a UDP datagram's payload, at most 65,507 bytes
_GSO_REFUSED = (errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP, errno.EMSGSIZE)

_HEADER = struct.Struct("!BBHII")  # RTP fixed header: V/P/X/CC, M/PT, sequence number, timestamp, SSRC
_SENDER = "_RTCRtpSender__"  # aiortc's name-mangled RTCRtpSender attributes


class _Node:
    """One frame in a slot's chain: what viewers are sent (payloads: the codec's RTP payloads)."""

    __slots__ = ("keyframe", "next", "payloads", "pts", "seq")

    def __init__(self, pts: int, keyframe: bool, seq: int, payloads: list[bytes]) -> None:
        self.pts = pts
        self.keyframe = keyframe
        self.seq = seq
        self.payloads = payloads
        self.next: _Node | None = None


# One frame for one group of viewers: per RTP packet its first two header bytes and everything after
# the fixed header (header extensions and payload), plus the payload's size (for sender reports).
_Packets = list[tuple[int, int, bytes, int]]


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
        self.skips = 0  # times the fan-out fell MAX_LAG_FRAMES behind and skipped to the newest
        self._epoch = epoch
        self._subscribers = subscribers
        self._loop = asyncio.get_running_loop()
        # aiortc's packetiser for this codec (only its pack(): RTP payloads of an encoded frame).
        mime = f"{kind}/{'VP8' if codec == 'vp8' else 'H264' if codec == 'h264' else codec}"
        self._packer = get_encoder(RTCRtpCodecParameters(mimeType=mime, clockRate=clock_rate, payloadType=0))
        # The chain: _tail is the newest frame, _done the last one the fan-out has sent to every viewer.
        self._tail = _Node(-1, False, 0, [])
        self._done = self._tail
        self._outlets: dict[ForwardTrack, None] = {}
        self._runner: asyncio.Task | None = None
        self._tap: Tap | None = None
        self._offset: int | None = None  # added to the source's pts (re-anchored on each new source)
        self._last_pts = -1
        self._last_request = 0.0
        self._pending_request: asyncio.TimerHandle | None = None
        # The key frame cache: the latest key frame's node (the frames after it follow its chain),
        # when it came, and the bytes of the frames from it on.
        self._key: _Node | None = None
        self._key_at = 0.0
        self._key_bytes = 0
        self.cache_starts = 0  # viewers that started from the cache (no PLI needed)

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

    def cached_key(self) -> _Node | None:
        """The latest key frame's node, if the cache still holds it (else None)."""
        return self._key

    def start_from_cache(self, after_pts: int = -1) -> _Node | None:
        """Where a viewer waiting for a key frame starts: the cached key frame (counted), or None
        (then wait for one). Only a key frame later than ``after_pts`` (what that viewer's sender
        last sent, e.g. from another slot on a reused transceiver): its timestamps never go back."""
        key = self._key
        if key is None or key.pts <= after_pts:
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
        # Packetised once here, for every viewer (and in frame order: VP8 picture ids count up).
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = self.time_base
        payloads, _timestamp = self._packer.pack(packet)
        self.frames += 1
        self.bytes += len(data)
        node = _Node(pts, keyframe, self.frames, payloads)
        if self.kind == "video":
            now = time.monotonic()
            if keyframe:
                self._key, self._key_at, self._key_bytes = node, now, 0
            if self._key is not None:
                self._key_bytes += len(data)
                if self._key_bytes > KEY_CACHE_BYTES or now - self._key_at > KEY_CACHE_SECONDS:
                    self._key = None
        self._tail.next = node
        self._tail = node
        if not self._outlets:
            self._done = node  # nobody to send it to
        elif self._runner is None:
            self._runner = self._loop.create_task(self._fan_out())
        if self._subscribers:
            frame = EncodedFrame(
                self.publisher_id, self.id, self.kind, codec, data, pts, self.time_base, keyframe
            )
            for callback in tuple(self._subscribers):
                try:
                    callback(frame)
                except Exception:
                    log.exception("media subscriber failed on %s", self.id)

    async def _fan_out(self) -> None:
        """Send every frame not sent yet to every viewer: one task per slot, whatever the viewers."""
        try:
            while self._done is not self._tail and not self.ended:
                node = self._done.next
                assert node is not None
                if self._tail.seq - node.seq > MAX_LAG_FRAMES:
                    self.skips += 1
                    self._done = self._tail
                    for outlet in self._outlets:
                        outlet.lagged()
                    continue
                ntp = current_ntp_time()
                groups: dict[tuple, _Packets] = {}
                for i, outlet in enumerate(list(self._outlets)):
                    if i and not i % YIELD_EVERY:
                        await asyncio.sleep(0)
                        if self.ended:
                            return
                    if outlet.slot is self:
                        outlet.forward(node, groups, ntp)
                self._done = node
        finally:
            self._runner = None

    def packets(self, node: _Node, outlet: ForwardTrack, ntp: int) -> _Packets:
        """``node``'s RTP packets as serialised for ``outlet``'s group, fixed header left out."""
        out: _Packets = []
        last = len(node.payloads) - 1
        for i, payload in enumerate(node.payloads):
            packet = RtpPacket(payload_type=outlet.payload_type, marker=int(i == last), payload=payload)
            packet.extensions.abs_send_time = (ntp >> 14) & 0x00FFFFFF
            packet.extensions.mid = outlet.mid
            data = packet.serialize(outlet.extensions)
            out.append((data[0], data[1], data[12:], len(payload)))
        return out

    def add_outlet(self, outlet: ForwardTrack) -> None:
        self._outlets[outlet] = None

    def remove_outlet(self, outlet: ForwardTrack) -> None:
        self._outlets.pop(outlet, None)

    @property
    def newest(self) -> _Node:
        return self._tail

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
        """No more frames: its viewers' tracks move on (their transceiver can be reused for another
        slot)."""
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
        if self._runner is not None:
            self._runner.cancel()
        for outlet in list(self._outlets):
            if outlet.slot is self:
                outlet.detach()
        self._outlets.clear()


class ForwardTrack(MediaStreamTrack):
    """A viewer's sending track: the fan-out sends its slot's frames through it straight to the
    viewer's socket (see the module docstring); aiortc's sender only starts it and then parks in
    :meth:`recv`.

    It never ends by itself (an ended track would stop the sender for good): when its slot ends it
    waits until :meth:`attach` gives it another slot of the same kind and codec.
    """

    def __init__(self, kind: str, codec: str) -> None:
        super().__init__()
        self.kind = kind
        self.codec = codec
        self.slot: Slot | None = None
        self.sent = 0  # frames sent
        self._need_key = kind == "video"
        self._asked = 0.0
        self._last_pts = -1  # of the last frame this track sent (kept across slots)
        self._seen = 0  # seq of the newest node of its slot it has been offered
        # Set when aiortc starts the sender (DTLS is up): see _start().
        self._sender: RTCRtpSender | None = None
        self._params: RTCRtpSendParameters | None = None
        self._ready = False
        self._dtls: Any = None
        self._srtp: Any = None
        self._ice: Any = None
        self._ssrc = 0
        self._seq = random16() % 32768  # as aiortc: the lower half, far from a wrap-around
        self._ts_origin = random32()
        self._history: list[bytes | None] = [None] * RTP_HISTORY_SIZE  # sent RTP packets, for NACKs
        self.payload_type = 0
        self.mid: str | None = None
        self.extensions = HeaderExtensionsMap()
        self.group: tuple = ()

    def attach(self, slot: Slot) -> None:
        """Follow ``slot`` from now on. Video asks the publisher for a key frame at once (while the
        viewer's ICE and DTLS are still under way) unless the slot's cache holds one to start with."""
        if self.slot is not None and self.slot is not slot:
            self.slot.remove_outlet(self)
        self.slot = slot
        self._seen = slot.newest.seq
        self._need_key = self.kind == "video"
        self._asked = 0.0
        slot.add_outlet(self)
        if self._need_key and slot.cached_key() is None:
            self._asked = time.monotonic()
            slot.request_keyframe()
        self._catch_up()

    def detach(self) -> None:
        if self.slot is not None:
            self.slot.remove_outlet(self)
        self.slot = None

    def keyframe_requested(self) -> None:
        """The viewer reported loss (PLI/FIR reached our sender)."""
        if self.slot is not None:
            self.slot.request_keyframe()

    def lagged(self) -> None:
        """The fan-out skipped frames: video waits for the next key frame."""
        self._need_key = self.kind == "video"

    async def recv(self) -> av.Packet:  # type: ignore[override]
        """aiortc's sender started (after DTLS connected): from now on the fan-out sends through this
        track; the sender's own RTP task parks here until it is stopped."""
        self._start()
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            self._ready = False
        raise AssertionError("unreachable")

    def _start(self) -> None:
        sender, params = self._sender, self._params
        if sender is None or params is None or not params.codecs:
            log.error("forward track started without its sender's parameters; not sending")
            return
        codec = params.codecs[0]
        if codec.mimeType.split("/", 1)[1].lower() != self.codec:
            log.error("viewer's sender negotiated %s, not %s; not sending", codec.mimeType, self.codec)
            return
        self._dtls = sender.transport
        self._srtp = self._dtls._tx_srtp
        self._ice = self._dtls.transport._connection
        self._ssrc = sender._ssrc
        self.payload_type = codec.payloadType
        self.mid = params.muxId
        self.extensions = HeaderExtensionsMap()
        self.extensions.configure(params)
        self.group = (self.payload_type, self.mid, tuple((e.uri, e.id) for e in params.headerExtensions))
        self._ready = True
        self._catch_up()

    def _catch_up(self) -> None:
        """A started track that waits for a key frame starts with the slot's cached one and the
        frames after it, sent at once (the fan-out sends the later ones)."""
        slot = self.slot
        if slot is None or not self._ready or not self._need_key:
            return
        if self._dtls._state is not DtlsState.CONNECTED or self._ice._nominated.get(1) is None:
            return
        node = slot.start_from_cache(self._last_pts)
        if node is None:
            return
        self._need_key = False
        ntp = current_ntp_time()
        while node is not None:
            self._send(node, slot.packets(node, self, ntp), ntp)
            self._seen = node.seq
            node = node.next

    def forward(self, node: _Node, groups: dict[tuple, _Packets], ntp: int) -> None:
        """The fan-out offers this track its slot's next frame."""
        if not self._ready or node.seq <= self._seen:
            return
        self._seen = node.seq
        if self._need_key:
            if not node.keyframe:
                now = time.monotonic()
                if now - self._asked > KEYFRAME_RETRY and self.slot is not None:
                    self._asked = now
                    self.slot.request_keyframe()
                return
            self._need_key = False
        packets = groups.get(self.group)
        if packets is None:
            assert self.slot is not None
            packets = groups[self.group] = self.slot.packets(node, self, ntp)
        self._send(node, packets, ntp)

    def _send(self, node: _Node, packets: _Packets, ntp: int) -> None:
        """Per packet: this viewer's fixed header, SRTP, its ICE pair's socket. No awaits."""
        if self._dtls._state is not DtlsState.CONNECTED:
            return
        pair = self._ice._nominated.get(1)
        if pair is None:
            return
        protect = self._srtp.protect
        history = self._history
        pack = _HEADER.pack
        ssrc = self._ssrc
        timestamp = (self._ts_origin + node.pts) & 0xFFFFFFFF
        seq = self._seq
        octets = 0
        datagrams = []
        for b0, b1, rest, size in packets:
            data = pack(b0, b1, seq, timestamp, ssrc) + rest
            history[seq % RTP_HISTORY_SIZE] = data
            datagrams.append(protect(data))
            octets += size
            seq = (seq + 1) & 0xFFFF
        self._seq = seq
        # What aioice's send_data does (the pair's transport's sendto), minus two coroutines a packet.
        send_datagrams(pair.protocol.transport, pair.remote_addr, datagrams)
        self.sent += 1
        self._last_pts = node.pts
        # What aiortc's RTCP task puts in this sender's reports.
        sender = self._sender
        setattr(sender, _SENDER + "ntp_timestamp", ntp)
        setattr(sender, _SENDER + "rtp_timestamp", timestamp)
        setattr(sender, _SENDER + "packet_count", getattr(sender, _SENDER + "packet_count") + len(packets))
        setattr(sender, _SENDER + "octet_count", getattr(sender, _SENDER + "octet_count") + octets)

    async def retransmit(self, sequence_number: int, original: Callable[[int], Any]) -> None:
        """A NACKed packet: put it where aiortc's sender looks, then let it retransmit (RTX)."""
        data = self._history[sequence_number % RTP_HISTORY_SIZE]
        if data is not None and self._sender is not None:
            packet = RtpPacket.parse(data, self.extensions)
            if packet.sequence_number == sequence_number:
                getattr(self._sender, _SENDER + "rtp_history")[sequence_number % RTP_HISTORY_SIZE] = packet
        await original(sequence_number)


def send_datagrams(transport: Any, addr: tuple[str, int], datagrams: list[bytes]) -> None:
    """Send ``datagrams`` to ``addr`` in order through an asyncio datagram ``transport``.

    Runs of equal-sized datagrams (the last of a run may be shorter: a frame's RTP packets, all full
    but the last) go to the kernel in one ``sendmsg`` with UDP_SEGMENT (Linux UDP GSO: still one UDP
    datagram each on the wire) when the transport is asyncio's own and has nothing queued; anything
    else, or a refusal, takes ``transport.sendto`` one datagram at a time, as asyncio would.
    """
    global GSO
    sock = getattr(transport, "_sock", None)
    if (
        not GSO
        or len(datagrams) < 2
        or sock is None
        or type(transport).__name__ != "_SelectorDatagramTransport"
        or transport._buffer
        or transport._extra.get("peername")
        or transport.is_closing()
    ):
        for datagram in datagrams:
            transport.sendto(datagram, addr)
        return
    i, count = 0, len(datagrams)
    while i < count:
        segment = total = len(datagrams[i])
        j = i + 1
        while j < count and j - i < _GSO_SEGMENTS:
            size = len(datagrams[j])
            if size > segment or total + size > _GSO_BYTES:
                break
            total += size
            j += 1
            if size < segment:
                break
        try:
            if j - i == 1:
                sock.sendto(datagrams[i], addr)
            else:
                gso = [(_SOL_UDP, _UDP_SEGMENT, segment.to_bytes(2, sys.byteorder))]
                sock.sendmsg([b"".join(datagrams[i:j])], gso, 0, addr)
        except (BlockingIOError, InterruptedError):
            for datagram in datagrams[i:]:  # asyncio queues them until the socket can take more
                transport.sendto(datagram, addr)
            return
        except OSError as exc:
            if j - i > 1 and exc.errno in _GSO_REFUSED:
                GSO = False
                log.info("UDP GSO refused (%s): sending one datagram per call from now on", exc)
                for datagram in datagrams[i:]:
                    transport.sendto(datagram, addr)
                return
            transport._protocol.error_received(exc)
        i = j


_SENDER_ATTRS = ("rtp_history", "ntp_timestamp", "rtp_timestamp", "packet_count", "octet_count")


def hook_sender(sender: RTCRtpSender, track: ForwardTrack) -> None:
    """Tie a viewer's sender to its track: the sender's parameters reach the track when aiortc starts
    it, a PLI/FIR (aiortc calls ``sender._send_keyframe()``) goes to the publisher, a NACK is answered
    from the track's packets."""
    for name in ("_send_keyframe", "_retransmit", "send"):
        if not callable(getattr(sender, name, None)):
            raise RuntimeError(f"aiortc changed: RTCRtpSender has no {name}; the forwarding hook needs it")
    for name in _SENDER_ATTRS:
        if not hasattr(sender, _SENDER + name):
            raise RuntimeError(f"aiortc changed: RTCRtpSender has no __{name}; the forwarding hook needs it")
    track._sender = sender
    send, retransmit = sender.send, sender._retransmit

    async def send_with(parameters: RTCRtpSendParameters) -> None:
        track._params = parameters
        await send(parameters)

    async def retransmit_with(sequence_number: int) -> None:
        await track.retransmit(sequence_number, retransmit)

    sender.send = send_with  # type: ignore[method-assign]
    sender._retransmit = retransmit_with  # type: ignore[method-assign]
    sender._send_keyframe = track.keyframe_requested  # type: ignore[method-assign]
