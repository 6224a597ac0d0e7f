"""Publisher and viewer peer connections: the media API the signaling layer drives.

See the package docstring (``signaling.webrtc``) for the API and the recorder's interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp
from aiortc.rtcrtpparameters import RTCRtpCodecCapability, RTCRtpCodecParameters
from aiortc.sdp import candidate_from_sdp

from signaling.webrtc.forward import (
    FORWARDED_CODECS,
    EncodedFrame,
    ForwardTrack,
    Slot,
    Tap,
    hook_sender,
    install_tap,
)

log = logging.getLogger(__name__)

LABELS = ("mic", "camera", "screen")


class MediaError(Exception):
    """Bad signaling input (unknown peer, unparsable SDP, wrong state); nothing changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_ice_servers(value: str | Iterable[str] | None) -> list[RTCIceServer]:
    """ICE servers from ``stun:host:port`` / ``turn:user:password@host:port?transport=udp`` URLs.

    Takes a comma-separated string (the form of a later ``--ice-servers`` flag or environment
    variable) or a list. TURN credentials are percent-decoded.
    """
    if value is None:
        return []
    urls = value.split(",") if isinstance(value, str) else list(value)
    servers = []
    for url in (u.strip() for u in urls):
        if not url:
            continue
        scheme, _, rest = url.partition(":")
        if scheme not in ("stun", "stuns", "turn", "turns") or not rest:
            raise ValueError(f"not a STUN/TURN URL: {url!r}")
        if "@" in rest:
            cred, _, host = rest.rpartition("@")
            user, _, password = cred.partition(":")
            servers.append(RTCIceServer(f"{scheme}:{host}", unquote(user), unquote(password)))
        else:
            servers.append(RTCIceServer(url))
    return servers


@dataclass
class _Publisher:
    id: str
    pc: RTCPeerConnection
    fingerprint: str | None
    taps: dict[str, tuple[str, Tap]] = field(default_factory=dict)  # mid -> (label, tap)


@dataclass
class _Outgoing:
    transceiver: RTCRtpTransceiver
    track: ForwardTrack


@dataclass
class _Viewer:
    id: str
    pc: RTCPeerConnection
    out: dict[str, _Outgoing] = field(default_factory=dict)  # slot id -> transceiver in use
    idle: list[_Outgoing] = field(default_factory=list)  # inactive, reusable for the same codec
    answered: bool = False
    dirty: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _fingerprint(sdp: str) -> str | None:
    for line in sdp.splitlines():
        if line.startswith("a=fingerprint:"):
            return line.strip()
    return None


def _capabilities_for(codec: RTCRtpCodecParameters, kind: str) -> list[RTCRtpCodecCapability]:
    """The viewer-side codec preferences that make its sender use exactly the publisher's codec."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    mime = codec.mimeType.lower()
    chosen = [c for c in caps if c.mimeType.lower() == mime]
    if mime == "video/h264":
        profile = str(codec.parameters.get("profile-level-id", "")).lower()
        same = [c for c in chosen if str(c.parameters.get("profile-level-id", "")).lower() == profile]
        chosen = same or chosen
    if kind == "video":
        chosen += [c for c in caps if c.mimeType.lower() == "video/rtx"]
    return chosen


class Media:
    """Publishers' and viewers' aiortc peer connections with encoded-frame forwarding between them.

    ``on_tracks(tracks)`` is called (synchronously) with the full list of live tracks whenever it
    changes; ``on_offer(viewer_id, sdp)`` (a coroutine function) carries the server's re-offer to a
    viewer when tracks come and go after its first answer. Both are optional.
    """

    def __init__(
        self,
        ice_servers: Iterable[RTCIceServer] | str | None = None,
        on_tracks: Callable[[list[dict[str, str]]], None] | None = None,
        on_offer: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        if ice_servers is None or isinstance(ice_servers, str):
            ice_servers = parse_ice_servers(ice_servers)
        # An explicit empty list: aiortc would otherwise use a public STUN server by default.
        self.ice_servers = list(ice_servers)
        self.on_tracks = on_tracks
        self.on_offer = on_offer
        self._epoch = time.monotonic()
        self._slots: dict[str, Slot] = {}
        self._publishers: dict[str, _Publisher] = {}
        self._viewers: dict[str, _Viewer] = {}
        self._subscribers: list[Callable[[EncodedFrame], None]] = []
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    # -- public API ---------------------------------------------------------------------------------
    @property
    def epoch(self) -> float:
        """``time.monotonic()`` when this Media started: ``pts * time_base`` counts from here."""
        return self._epoch

    def tracks(self) -> list[dict[str, str]]:
        """Live tracks: ``{"id", "publisher", "label", "kind", "codec"}`` each, in publish order."""
        return [
            {"id": s.id, "publisher": s.publisher_id, "label": s.label, "kind": s.kind, "codec": s.codec}
            for s in self._slots.values()
        ]

    def empty(self) -> bool:
        """Nobody publishes or views."""
        return not self._publishers and not self._viewers

    def publishing(self, publisher_id: str) -> bool:
        return publisher_id in self._publishers

    def subscribe(self, callback: Callable[[EncodedFrame], None]) -> Callable[[], None]:
        """Call ``callback(frame)`` on the event loop for every encoded frame; returns unsubscribe.

        The callback must not block (hand the frame to a queue or thread).
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def mids(self, viewer_id: str) -> dict[str, str]:
        """mid -> track id of what the viewer's connection carries now (after ``view`` or an
        ``on_offer``), so the client knows which received track is whose camera, screen or voice."""
        viewer = self._viewers.get(viewer_id)
        if viewer is None:
            return {}
        return {o.transceiver.mid: sid for sid, o in viewer.out.items() if o.transceiver.mid is not None}

    def stats(self) -> dict[str, Any]:
        """Counters for tests and benchmarks."""
        return {
            "tracks": {
                s.id: {
                    "frames": s.frames,
                    "bytes": s.bytes,
                    "keyframes_requested": s.keyframes_requested,
                    "cache_starts": s.cache_starts,
                    "tapped": s.tap.frames if s.tap else 0,
                }
                for s in self._slots.values()
            },
            "viewers": {
                v.id: {sid: o.track.sent for sid, o in v.out.items()} for v in self._viewers.values()
            },
        }

    async def publish(
        self,
        publisher_id: str,
        offer_sdp: str,
        labels: Mapping[str, str] | None = None,
        allowed: Iterable[str] = LABELS,
    ) -> str:
        """Answer a publisher's offer; returns the answer SDP.

        ``labels`` maps a track id (msid) or mid to ``mic``/``camera``/``screen``; unlabelled audio is
        ``mic``, a renegotiated track keeps its label, other video takes ``camera`` (if free) then
        ``screen``. An offer from the same
        peer connection (same DTLS fingerprint) renegotiates it; one from a new peer connection
        replaces the old one (publisher restart) and its tracks take over the same track ids.
        A track whose label is not in ``allowed`` refuses the whole offer (``forbidden``).
        """
        self._check_open()
        description = self._parse(offer_sdp, "offer")
        labels = dict(labels or {})
        bad = sorted(set(labels.values()) - set(LABELS))
        if bad:
            raise MediaError("bad_label", f"unknown track label {bad[0]!r}; use one of {', '.join(LABELS)}")
        old = self._publishers.get(publisher_id)
        fingerprint = _fingerprint(offer_sdp)
        renegotiate = old is not None and old.fingerprint == fingerprint and old.pc.signalingState == "stable"
        known = {mid: label for mid, (label, _tap) in old.taps.items()} if renegotiate and old else {}
        wanted = self._labels(description, labels, known)
        if not wanted:
            raise MediaError("nothing_published", "the offer sends no audio or video (use unpublish to stop)")
        refused = sorted(set(wanted.values()) - set(allowed))
        if refused:
            raise MediaError("forbidden", f"you may not publish a {refused[0]} track now")

        if renegotiate and old is not None:
            pub = old
        else:
            pub = _Publisher(publisher_id, self._new_pc(), fingerprint)
        try:
            await pub.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            fresh = self._install_taps(pub, wanted)
            answer = await pub.pc.createAnswer()
            await pub.pc.setLocalDescription(answer)
        except MediaError:
            if pub is not old:
                await pub.pc.close()
            raise
        except Exception as exc:
            if pub is not old:
                await pub.pc.close()
            raise MediaError("bad_sdp", f"the offer cannot be used: {exc}") from exc

        if pub is not old:
            self._publishers[publisher_id] = pub
            self._watch_publisher(pub)
        changed = self._sync_publisher_slots(pub, fresh)
        if old is not None and pub is not old:
            await old.pc.close()
        if changed:
            self._tracks_changed()
        return pub.pc.localDescription.sdp

    async def unpublish(self, publisher_id: str) -> bool:
        """Stop a publisher's tracks and close its peer connection; False if it was not publishing."""
        pub = self._publishers.pop(publisher_id, None)
        if pub is None:
            return False
        changed = False
        for slot in [s for s in self._slots.values() if s.publisher_id == publisher_id]:
            self._end_slot(slot)
            changed = True
        await pub.pc.close()
        if changed:
            self._tracks_changed()
        return True

    async def view(self, viewer_id: str) -> str:
        """A new viewer peer connection carrying every live track; returns the server's offer SDP.

        A viewer that was already viewing gets a fresh peer connection (the old one is closed).
        """
        self._check_open()
        old = self._viewers.pop(viewer_id, None)
        if old is not None:
            await self._close_viewer(old)
        viewer = _Viewer(viewer_id, self._new_pc())
        self._viewers[viewer_id] = viewer
        self._watch_viewer(viewer)
        async with viewer.lock:
            self._apply_slots(viewer)
            offer = await viewer.pc.createOffer()
            await viewer.pc.setLocalDescription(offer)
            return viewer.pc.localDescription.sdp

    async def answer(self, viewer_id: str, answer_sdp: str) -> None:
        """The viewer's answer to the latest offer (from ``view`` or ``on_offer``)."""
        viewer = self._viewers.get(viewer_id)
        if viewer is None:
            raise MediaError("not_viewing", "no media offer is waiting for this viewer")
        description = self._parse(answer_sdp, "answer")
        async with viewer.lock:
            if viewer.pc.signalingState != "have-local-offer":
                raise MediaError("no_offer", "no media offer is waiting for an answer")
            offered = self._parse(viewer.pc.localDescription.sdp, "offer")
            if [m.rtp.muxId for m in description.media] != [m.rtp.muxId for m in offered.media]:
                raise MediaError("bad_sdp", "the answer does not answer the offer's media sections")
            try:
                await viewer.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))
            except Exception as exc:
                raise MediaError("bad_sdp", f"the answer cannot be used: {exc}") from exc
            viewer.answered = True
        if viewer.dirty:
            self._spawn(self._renegotiate(viewer))

    async def candidate(
        self, peer_id: str, candidate: str, sdp_mid: str | None = None, *, viewer: bool = False
    ) -> None:
        """A trickled ICE candidate (``candidate:...`` line) from a publisher (or, with
        ``viewer=True``, a viewer: one participant may be both)."""
        peer = self._viewers.get(peer_id) if viewer else self._publishers.get(peer_id)
        if peer is None:
            raise MediaError("not_connected", "no media connection for this candidate")
        try:
            parsed = candidate_from_sdp(candidate.removeprefix("a=").removeprefix("candidate:"))
        except Exception as exc:
            raise MediaError("bad_candidate", f"the ICE candidate cannot be read: {exc}") from exc
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = None if sdp_mid is not None else 0
        await peer.pc.addIceCandidate(parsed)

    async def leave(self, viewer_id: str) -> bool:
        """Close a viewer's peer connection; False if it was not viewing."""
        viewer = self._viewers.pop(viewer_id, None)
        if viewer is None:
            return False
        await self._close_viewer(viewer)
        return True

    def request_keyframe(self, track_id: str) -> None:
        slot = self._slots.get(track_id)
        if slot is not None:
            slot.request_keyframe()

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for viewer_id in list(self._viewers):
            await self.leave(viewer_id)
        for publisher_id in list(self._publishers):
            await self.unpublish(publisher_id)

    # -- publishers ---------------------------------------------------------------------------------
    def _parse(self, text: str, kind: str) -> aiortc_sdp.SessionDescription:
        if not isinstance(text, str) or not text.strip():
            raise MediaError("bad_sdp", f"the {kind} is empty")
        try:
            return aiortc_sdp.SessionDescription.parse(text)
        except Exception as exc:
            raise MediaError("bad_sdp", f"the {kind} cannot be parsed: {exc}") from exc

    def _labels(
        self, description: aiortc_sdp.SessionDescription, labels: dict[str, str], known: dict[str, str]
    ) -> dict[str, str]:
        """mid -> label for every m-line the publisher sends on.

        A label given for the mid or track id wins, then the label the mid had before (renegotiation),
        then ``mic`` for audio and the first of ``camera``, ``screen`` not taken for video.
        """
        sending = [
            m
            for m in description.media
            if m.kind in ("audio", "video") and m.port != 0 and m.direction in ("sendonly", "sendrecv")
        ]
        chosen: dict[str, str | None] = {}
        for media in sending:
            mid = media.rtp.muxId
            chosen[mid] = (
                labels.get(mid) or labels.get(description.webrtc_track_id(media) or "") or known.get(mid)
            )
        out: dict[str, str] = {}
        for media in sending:
            mid = media.rtp.muxId
            label = chosen[mid]
            if label is None:
                taken = set(chosen.values()) | set(out.values())
                free = [x for x in ("camera", "screen") if x not in taken]
                label = "mic" if media.kind == "audio" else free[0] if free else "screen"
            if (label == "mic") != (media.kind == "audio"):
                raise MediaError("bad_label", f"a {media.kind} track cannot be the {label}")
            if label in out.values():
                raise MediaError("bad_label", f"two tracks are labelled {label}")
            out[mid] = label
        return out

    def _install_taps(self, pub: _Publisher, wanted: dict[str, str]) -> dict[str, tuple[str, Tap]]:
        """Tap every receiving transceiver of ``pub`` right after setRemoteDescription."""
        fresh: dict[str, tuple[str, Tap]] = {}
        for transceiver in pub.pc.getTransceivers():
            mid = transceiver.mid
            if mid not in wanted:
                continue
            codec = transceiver._codecs[0] if transceiver._codecs else None
            name = codec.mimeType.split("/", 1)[1].lower() if codec else ""
            if name not in FORWARDED_CODECS:
                log.warning("publisher %s: %s codec %r is not forwarded", pub.id, transceiver.kind, name)
                continue
            previous = pub.taps.get(mid)
            if previous is not None and previous[0] == wanted[mid]:
                fresh[mid] = previous
                continue
            tap = install_tap(transceiver.receiver, transceiver.kind)
            fresh[mid] = (wanted[mid], tap)
        return fresh

    def _sync_publisher_slots(self, pub: _Publisher, fresh: dict[str, tuple[str, Tap]]) -> bool:
        changed = False
        codecs = {t.mid: t._codecs[0] for t in pub.pc.getTransceivers() if t._codecs}
        live: set[str] = set()
        for mid, (label, tap) in fresh.items():
            track_id = f"{pub.id}:{label}"
            live.add(track_id)
            codec = codecs[mid]
            name = codec.mimeType.split("/", 1)[1].lower()
            slot = self._slots.get(track_id)
            if slot is not None and (slot.codec != name or slot.clock_rate != codec.clockRate):
                self._end_slot(slot)  # a different codec needs other viewer transceivers
                slot = None
            if slot is None:
                slot = Slot(
                    track_id,
                    pub.id,
                    label,
                    tap.kind,
                    name,
                    codec.clockRate,
                    self._epoch,
                    self._subscribers,
                )
                slot.caps = _capabilities_for(codec, tap.kind)
                self._slots[track_id] = slot
                changed = True
            if slot.tap is not tap:
                slot.attach(tap)
        for slot in [s for s in self._slots.values() if s.publisher_id == pub.id and s.id not in live]:
            self._end_slot(slot)
            changed = True
        pub.taps = fresh
        return changed

    def _watch_publisher(self, pub: _Publisher) -> None:
        @pub.pc.on("connectionstatechange")
        async def on_state() -> None:
            if pub.pc.connectionState == "failed" and self._publishers.get(pub.id) is pub:
                log.info("publisher %s: connection failed", pub.id)
                await self.unpublish(pub.id)

    def _end_slot(self, slot: Slot) -> None:
        slot.end()
        self._slots.pop(slot.id, None)

    def _tracks_changed(self) -> None:
        for viewer in list(self._viewers.values()):
            self._spawn(self._renegotiate(viewer))
        if self.on_tracks is not None:
            try:
                self.on_tracks(self.tracks())
            except Exception:
                log.exception("on_tracks failed")

    # -- viewers ------------------------------------------------------------------------------------
    def _new_pc(self) -> RTCPeerConnection:
        return RTCPeerConnection(RTCConfiguration(iceServers=list(self.ice_servers)))

    def _apply_slots(self, viewer: _Viewer) -> bool:
        """Bring the viewer's transceivers in line with the live slots; True if that changed any."""
        changed = False
        for slot_id in [sid for sid in viewer.out if sid not in self._slots or self._slots[sid].ended]:
            out = viewer.out.pop(slot_id)
            if out.track.slot is not None and out.track.slot.id == slot_id and not out.track.slot.ended:
                out.track.detach()
            out.transceiver.direction = "inactive"
            viewer.idle.append(out)
            changed = True
        for slot in self._slots.values():
            out = viewer.out.get(slot.id)
            if out is not None and out.track.slot is slot:
                continue
            if out is not None:  # same id, new slot object (codec change): retire the old one
                viewer.out.pop(slot.id)
                out.transceiver.direction = "inactive"
                viewer.idle.append(out)
            out = self._reusable(viewer, slot)
            if out is None:
                track = ForwardTrack(slot.kind, slot.codec)
                transceiver = viewer.pc.addTransceiver(track, direction="sendonly")
                transceiver.setCodecPreferences(slot.caps)
                hook_sender(transceiver.sender, track)
                out = _Outgoing(transceiver, track)
            else:
                out.transceiver.direction = "sendonly"
            out.track.attach(slot)
            viewer.out[slot.id] = out
            changed = True
        return changed

    def _reusable(self, viewer: _Viewer, slot: Slot) -> _Outgoing | None:
        for i, out in enumerate(viewer.idle):
            codecs = out.transceiver._codecs
            if (
                out.track.kind == slot.kind
                and out.track.codec == slot.codec
                and codecs
                and codecs[0].clockRate == slot.clock_rate
                and out.transceiver.mid is not None
            ):
                return viewer.idle.pop(i)
        return None

    async def _renegotiate(self, viewer: _Viewer) -> None:
        async with viewer.lock:
            if self._viewers.get(viewer.id) is not viewer:
                return
            if viewer.pc.signalingState != "stable" or not viewer.answered:
                viewer.dirty = True  # answer() renegotiates when the pending answer arrives
                return
            viewer.dirty = False
            if not self._apply_slots(viewer):
                return
            offer = await viewer.pc.createOffer()
            await viewer.pc.setLocalDescription(offer)
            sdp = viewer.pc.localDescription.sdp
        if self.on_offer is not None:
            await self.on_offer(viewer.id, sdp)

    def _watch_viewer(self, viewer: _Viewer) -> None:
        @viewer.pc.on("connectionstatechange")
        async def on_state() -> None:
            if viewer.pc.connectionState == "failed" and self._viewers.get(viewer.id) is viewer:
                log.info("viewer %s: connection failed", viewer.id)
                await self.leave(viewer.id)

    async def _close_viewer(self, viewer: _Viewer) -> None:
        for out in list(viewer.out.values()) + viewer.idle:
            out.track.detach()
        viewer.out.clear()
        viewer.idle.clear()
        await viewer.pc.close()

    # -- misc -----------------------------------------------------------------------------------------
    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("media task failed", exc_info=task.exception())

    def _check_open(self) -> None:
        if self._closed:
            raise MediaError("closed", "media is shut down")
