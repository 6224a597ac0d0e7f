"""Recording a session's media: the publishers' encoded packets muxed with PyAV, never re-encoded.

The live forwarding layer hands over, per track, the encoded frames it forwards (VP8 or H.264
video, Opus audio) with their RTP-clock timestamps, and the session time (milliseconds on the
session clock, the events' `t`) of the track's first packet. Here they become files under the
recording's `media/` directory:

- **One file per publisher track set**: the tracks of one publisher that start together (its
  microphone and camera) share a file. A track that starts once its publisher's file is already
  being written (a screen share started later, a camera switched on later, a publisher restart)
  starts a file of its own. Tracks are gathered for `SETTLE_MS` of media before a file opens.
- **Containers**: WebM when every codec fits (VP8, VP9, Opus), else Matroska (`.mkv`: H.264
  cannot go in WebM). Each file's first moment is anchored on the session clock: `start_ms` is in
  the file name, in the file's metadata (`CLASSCAST_START_MS`) and in the sidecar
  `<name>.json`, with each track's own offset in the file; the replay manifest lists them.
- **Off the event loop**: `TrackWriter.write()` only appends to a bounded queue (`QUEUE_BYTES`
  per session); one worker thread per session muxes. When the queue is full (the disk is slower
  than the media) the packet is dropped, never waited for: an audio packet alone, a video packet
  with everything after it until the track's next key frame (a decoder cannot use frames whose
  reference is missing). Drops are counted in the sidecar (`dropped_packets`).
- **Crash safety**: the muxer flushes every packet to the file (`flush_packets`) and closes a
  Matroska cluster at least every `CLUSTER_MS` (ffmpeg keeps the open cluster in memory), and its
  interleaving waits at most `INTERLEAVE_MS`: a kill -9 loses what was queued plus the open
  cluster, about 1-2 s. Such a file lacks its cues and duration: `finalise_abandoned` remuxes it
  (stream copy) into a finalised file, used when a session's media recorder starts again and
  whenever the media is listed or served; if the remux fails the original stays as it was, listed
  with `status: "damaged"`. This protects against a crashed process, not a power cut (the page
  cache is not fsynced while writing; it is when a file is closed).
- **Pauses**: while recording is paused nothing is recorded (`MediaRecorder.set_paused`); video
  resumes at its next key frame. The files keep the session clock, so a pause is a gap.
- **Timestamps**: RTP clocks are 32-bit and wrap (every 13 h at 90 kHz, from a random start):
  they are unwrapped. A packet that does not advance its track's clock is dropped (a file's
  timestamps must increase).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import struct
import threading
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

import av

log = logging.getLogger(__name__)

SETTLE_MS = 1000  # media gathered before a publisher's file opens, for its other tracks to start
QUEUE_BYTES = 32 * 1024 * 1024  # per session: ~2 min of a 2 Mbps publisher waiting for the disk
CLUSTER_MS = 1000  # Matroska cluster length at most (the muxer holds the open one in memory)
INTERLEAVE_MS = 500  # how long the muxer may hold a packet waiting for the other tracks
MEDIA_DIR = "media"
WRAP = 1 << 32  # RTP timestamps

VIDEO_CODECS = ("vp8", "h264")
AUDIO_CODECS = ("opus",)
_WEBM_CODECS = {"vp8", "vp9", "opus"}
_FILE = re.compile(r"^[A-Za-z0-9_-]{1,120}\.(webm|mkv)$")
_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CONTENT_TYPES = {"webm": ("video/webm", "audio/webm"), "mkv": ("video/x-matroska", "audio/x-matroska")}

# Files this process is writing now: anything else marked "recording" was left by a dead process.
_writing: set[Path] = set()
_writing_lock = threading.Lock()
_recover_lock = threading.Lock()


class Packet(NamedTuple):
    """One encoded frame as the forwarding layer hands it over."""

    track_kind: str  # audio | video
    codec_name: str  # vp8 | h264 | opus
    data: bytes
    pts: int
    time_base: Fraction
    keyframe: bool


def media_dir(session_dir: Path) -> Path:
    return session_dir / MEDIA_DIR


# -- the event loop's side ------------------------------------------------------------------------


class TrackWriter:
    """One track's entry into the session's media recorder. `write` never blocks."""

    def __init__(self, owner: MediaRecorder, state: _Track) -> None:
        self._owner = owner
        self._state = state
        self._skip_to_key = False  # a video packet was dropped: wait for the next key frame
        self.closed = False

    def write(self, packet: Packet | tuple[Any, ...]) -> bool:
        """Hand a packet over; False if it was dropped (queue full, paused, closed)."""
        if self.closed:
            return False
        p = packet if isinstance(packet, Packet) else Packet(*packet)
        video = self._state.kind == "video"
        if self._owner.paused or (video and self._skip_to_key and not p.keyframe):
            self._state.dropped += 1
            self._skip_to_key = self._skip_to_key or (video and self._owner.paused)
            return False
        if not self._owner._put(("packet", self._state, p), len(p.data)):
            self._state.dropped += 1
            self._skip_to_key = video
            return False
        self._skip_to_key = False
        return True

    def close(self) -> None:
        """The track ended: its file is finalised once every track in it has ended."""
        if not self.closed:
            self.closed = True
            self._owner._put(("end", self._state, None), 0, force=True)


class MediaRecorder:
    """The media of one session, written under `<session_dir>/media/` by its own worker thread.

    `track(...)` and `TrackWriter.write(...)` are called from the event loop and only enqueue;
    `close()` asks the worker to finalise every file and returns at once, `aclose()` waits for it.
    Files a killed process left behind are finalised by the worker when it starts."""

    def __init__(self, session_dir: Path, queue_bytes: int = QUEUE_BYTES) -> None:
        self.dir = media_dir(session_dir)
        self.paused = False
        self._queue: deque[tuple[str, Any, Any]] = deque()
        self._queued_bytes = 0
        self._limit = queue_bytes
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._tracks = 0
        self._thread = threading.Thread(target=self._run, name="media-writer", daemon=True)
        self._thread.start()

    def track(
        self, publisher_id: str, track_id: str, kind: str, codec: str, first_session_ms: int
    ) -> TrackWriter:
        """A new track of `publisher_id`, whose first packet was at `first_session_ms`."""
        codec = codec.lower()
        if kind not in ("audio", "video") or codec not in (VIDEO_CODECS if kind == "video" else AUDIO_CODECS):
            raise ValueError(f"cannot record a {kind} track in {codec}")
        self._tracks += 1
        state = _Track(self._tracks, publisher_id, str(track_id), kind, codec, int(first_session_ms))
        self._put(("track", state, None), 0, force=True)
        return TrackWriter(self, state)

    def set_paused(self, paused: bool) -> None:
        """Recording paused: packets are dropped until it resumes (video at a key frame)."""
        self.paused = paused

    def close(self) -> None:
        self._put(("stop", None, None), 0, force=True)

    async def aclose(self) -> None:
        import asyncio

        self.close()
        await asyncio.to_thread(self._thread.join)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _put(self, item: tuple[str, Any, Any], size: int, force: bool = False) -> bool:
        with self._lock:
            if self._closing:
                return False
            if not force and self._queued_bytes + size > self._limit:
                return False
            if item[0] == "stop":
                self._closing = True
            self._queue.append(item)
            self._queued_bytes += size
            self._wake.notify()
        return True

    # -- the worker thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            finalise_abandoned(self.dir)
        except Exception:
            log.exception("media: finalising files left by a crash in %s failed", self.dir)
        muxer = _Muxer(self.dir)
        while True:
            with self._lock:
                while not self._queue:
                    self._wake.wait()
                what, track, payload = self._queue.popleft()
                if what == "packet":
                    self._queued_bytes -= len(payload.data)
            try:
                if what == "stop":
                    muxer.close_all()
                    return
                if what == "track":
                    muxer.add(track)
                elif what == "packet":
                    muxer.packet(track, payload)
                else:
                    muxer.end(track)
            except Exception:
                log.exception("media: %s of track %s failed", what, getattr(track, "track_id", "?"))


# -- the worker's side ----------------------------------------------------------------------------


@dataclass
class _Track:
    n: int
    publisher: str
    track_id: str
    kind: str
    codec: str
    first_session_ms: int
    dropped: int = 0  # counted by both sides; only ever read for the sidecar
    time_base: Fraction | None = None
    first_pts: int | None = None
    last_raw: int | None = None
    unwrap: int = 0
    ready_packet: Packet | None = None  # the packet the file's stream is built from
    pending: list[tuple[float, int, Packet]] = field(default_factory=list)
    file: _File | None = None
    stream: Any = None
    offset_ticks: int = 0
    last_out: int | None = None
    ended: bool = False
    packets: int = 0

    def unwrapped(self, pts: int) -> int:
        if self.last_raw is not None:
            if pts - self.last_raw < -(WRAP >> 1):
                self.unwrap += WRAP
            elif pts - self.last_raw > (WRAP >> 1):
                self.unwrap -= WRAP
        self.last_raw = pts
        return pts + self.unwrap

    def session_ms(self, pts: int) -> float:
        assert self.first_pts is not None and self.time_base is not None
        return self.first_session_ms + float((pts - self.first_pts) * self.time_base * 1000)


@dataclass
class _File:
    base: str
    path: Path
    sidecar: Path
    container: Any
    start_ms: int
    tracks: list[_Track]
    fmt: str
    failed: str | None = None
    lock: int | None = None  # a descriptor holding `_lock(path)` while the file is written


class _Muxer:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.forming: dict[str, list[_Track]] = {}  # publisher -> tracks waiting for a file
        self.files: list[_File] = []

    def add(self, track: _Track) -> None:
        self.forming.setdefault(track.publisher, []).append(track)

    def packet(self, track: _Track, p: Packet) -> None:
        if track.ended:
            return
        if track.time_base is None:
            track.time_base = Fraction(p.time_base)
        pts = track.unwrapped(int(p.pts))
        if track.first_pts is None:
            track.first_pts = pts
        if track.file is not None:
            self._write(track, pts, p)
            return
        if track.kind == "video" and track.ready_packet is None and not p.keyframe:
            track.dropped += 1  # nothing decodes before the first key frame
            return
        if track.ready_packet is None:
            track.ready_packet = p
        track.pending.append((track.session_ms(pts), pts, p))
        self._maybe_open(track.publisher)

    def end(self, track: _Track) -> None:
        track.ended = True
        if track.file is None:
            self._maybe_open(track.publisher, force=True)
            group = self.forming.get(track.publisher, [])
            if track in group:
                group.remove(track)  # never had a packet to record
        f = track.file
        if f is not None and all(t.ended for t in f.tracks):
            self._finish(f)

    def close_all(self) -> None:
        for publisher in list(self.forming):
            self._maybe_open(publisher, force=True)
        for f in list(self.files):
            self._finish(f)

    def _maybe_open(self, publisher: str, force: bool = False) -> None:
        """Open the publisher's next file once its tracks have started (a key frame for video):
        an audio and a video track and every track registered, or `SETTLE_MS` of media, or now."""
        group = self.forming.get(publisher, [])
        ready = [t for t in group if t.ready_packet is not None]
        if not ready:
            return
        times = [ms for t in ready for ms, _, _ in t.pending]
        settled = max(times) - min(times) >= SETTLE_MS
        together = len(ready) == len(group) and {t.kind for t in ready} == {"audio", "video"}
        if not (force or settled or together):
            return
        for t in ready:
            group.remove(t)
        self._open(publisher, ready)

    def _open(self, publisher: str, tracks: list[_Track]) -> None:
        start_ms = min(t.first_session_ms for t in tracks)
        codecs = {t.codec for t in tracks}
        fmt = "webm" if codecs <= _WEBM_CODECS else "mkv"
        safe = publisher
        if not _SAFE.fullmatch(publisher):  # not a name for a file: a stable digest of it
            safe = "p" + hashlib.sha256(publisher.encode()).hexdigest()[:16]
        self.dir.mkdir(parents=True, exist_ok=True)
        n = 1
        while (self.dir / f"{start_ms:010d}-{safe}-{n}.json").exists():
            n += 1
        base = f"{start_ms:010d}-{safe}-{n}"
        path = self.dir / f"{base}.{fmt}"
        sidecar = self.dir / f"{base}.json"
        f = _File(base, path, sidecar, None, start_ms, tracks, fmt)
        with _writing_lock:
            _writing.add(path)
        f.lock = _lock(path, create=True)  # before the sidecar: no other process takes it for abandoned
        try:
            _write_json(sidecar, _sidecar(f, "recording"), sync=False)  # before the file: a crash finds both
            container = av.open(
                str(path),
                "w",
                format="webm" if fmt == "webm" else "matroska",
                options={
                    "flush_packets": "1",
                    "cluster_time_limit": str(CLUSTER_MS),
                    "max_interleave_delta": str(INTERLEAVE_MS * 1000),
                },
            )
            container.metadata["CLASSCAST_START_MS"] = str(start_ms)
            f.container = container
            for t in tracks:
                t.file = f
                t.stream = _stream(container, t)
                assert t.time_base is not None and t.first_pts is not None
                t.offset_ticks = round(Fraction(t.first_session_ms - start_ms, 1000) / t.time_base)
        except Exception as exc:
            f.failed = f"could not start the file: {exc}"
            log.exception("media: %s", f.failed)
            for t in tracks:
                t.file = f
        self.files.append(f)
        queued = [(ms, t.n, pts, t, p) for t in tracks for ms, pts, p in t.pending]
        queued.sort(key=lambda x: x[:2])
        for t in tracks:
            t.pending = []
        for _, _, pts, t, p in queued:
            self._write(t, pts, p)

    def _write(self, track: _Track, pts: int, p: Packet) -> None:
        f = track.file
        assert f is not None and track.first_pts is not None
        if f.failed:
            track.dropped += 1
            return
        out = pts - track.first_pts + track.offset_ticks
        if track.last_out is not None and out <= track.last_out:
            track.dropped += 1  # a repeated or late timestamp: the file's must increase
            return
        packet = av.Packet(p.data)
        packet.stream = track.stream
        packet.time_base = track.time_base
        packet.pts = packet.dts = out
        packet.is_keyframe = bool(p.keyframe)
        try:
            f.container.mux(packet)
        except Exception as exc:  # a full or failing disk: this file stops here
            f.failed = f"writing failed: {exc}"
            log.error("media: %s: %s", f.path.name, f.failed)
            track.dropped += 1
            return
        track.last_out = out
        track.packets += 1

    def _finish(self, f: _File) -> None:
        if f not in self.files:
            return
        self.files.remove(f)
        for t in f.tracks:
            t.ended = True
        status = "complete"
        try:
            if f.container is not None:
                f.container.close()
                with open(f.path, "rb+") as fh:
                    os.fsync(fh.fileno())
        except Exception as exc:
            f.failed = f.failed or f"closing failed: {exc}"
        if f.failed:
            status = "damaged"
        extra: dict[str, Any] = {"error": f.failed} if f.failed else {}
        extra["duration_ms"] = _probe_duration(f.path)
        _write_json(f.sidecar, _sidecar(f, status, **extra))
        _unlock(f.lock)
        f.lock = None
        with _writing_lock:
            _writing.discard(f.path)


def _stream(container: Any, t: _Track) -> Any:
    """An output stream for the track, described from its first (key) packet: no encoder."""
    p = t.ready_packet
    assert p is not None and t.time_base is not None
    if t.codec == "opus":
        stream = container.add_stream("libopus", rate=48000)
        stream.layout = "stereo"  # WebRTC's Opus is always signalled as 2 channels
    else:
        template = _template(t.codec, p.data)
        stream = container.add_stream_from_template(template.streams.video[0])
        template.close()
    stream.time_base = t.time_base
    return stream


def _template(codec: str, data: bytes) -> Any:
    """A one-frame input of the key frame, so ffmpeg fills in the stream's parameters (size, and
    H.264's SPS/PPS as the file's codec private data)."""
    if codec == "vp8":
        width, height = vp8_size(data)
        header = struct.pack("<4sHH4sHHIIII", b"DKIF", 0, 32, b"VP80", width, height, 30, 1, 1, 0)
        raw = header + struct.pack("<IQ", len(data), 0) + data
        return av.open(io.BytesIO(raw), format="ivf")
    return av.open(io.BytesIO(data), format="h264")


def vp8_size(frame: bytes) -> tuple[int, int]:
    """Width and height from a VP8 key frame's header (RFC 6386, 9.1)."""
    if len(frame) < 10 or frame[0] & 1 or frame[3:6] != b"\x9d\x01\x2a":
        raise ValueError("not a VP8 key frame")
    width, height = struct.unpack("<HH", frame[6:10])
    return width & 0x3FFF, height & 0x3FFF


def _sidecar(f: _File, status: str, **extra: Any) -> dict[str, Any]:
    video = any(t.kind == "video" for t in f.tracks)
    return {
        "file": f.path.name,
        "publisher": f.tracks[0].publisher,
        "start_ms": f.start_ms,
        "container": f.fmt,
        "content_type": CONTENT_TYPES[f.fmt][0 if video else 1],
        "status": status,
        "tracks": [
            {
                "id": t.track_id,
                "kind": t.kind,
                "codec": t.codec,
                "start_ms": t.first_session_ms,
                "offset_ms": t.first_session_ms - f.start_ms,
            }
            for t in f.tracks
        ],
        "dropped_packets": sum(t.dropped for t in f.tracks),
        **extra,
    }


def _write_json(path: Path, body: dict[str, Any], sync: bool = True) -> None:
    """Atomically; `sync`: and durably (not when a file opens: the packets are waiting)."""
    tmp = path.with_suffix(".json.tmp")
    with open(tmp, "w") as fh:
        json.dump(body, fh)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def _probe_duration(path: Path) -> int | None:
    """The file's duration in ms, from its header, else from its last packet."""
    try:
        with av.open(str(path)) as c:
            if c.duration:
                return round(c.duration / 1000)
            end = 0.0
            for pkt in c.demux():
                if pkt.pts is not None and pkt.time_base:
                    end = max(end, float((pkt.pts + (pkt.duration or 0)) * pkt.time_base))
            return round(end * 1000)
    except Exception:
        return None


# -- after a crash, and for the replay -----------------------------------------------------------


def _lock(path: Path, create: bool = False) -> int | None:
    """An exclusive `flock` on `path` (a descriptor holding it), or None if another holds it.
    The writer holds one while it writes, so another process sharing the data directory (a
    cluster node serving the replay, `--workers`) never takes a file still being written for
    abandoned; a dead writer's lock goes with it."""
    try:
        fd = os.open(path, os.O_RDONLY | (os.O_CREAT if create else 0), 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _unlock(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


def finalise_abandoned(directory: Path) -> list[str]:
    """Finalise every file a dead process left half-written (sidecar still says `recording`, and
    this process is not writing it): remux it, stream copy, into a file with cues and duration.
    Returns the names finalised. Blocking: call it off the event loop."""
    done = []
    for sidecar in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            body = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        if body.get("status") == "recording" and finalise(directory / str(body.get("file", ""))):
            done.append(sidecar.stem)
    return done


def finalise(path: Path) -> bool:
    """Remux one abandoned file in place (True if it was finalised now). On failure the file is
    kept as it was, and its sidecar says `damaged`."""
    with _writing_lock:
        if path in _writing:
            return False
    with _recover_lock:
        sidecar = path.with_suffix(".json")
        try:
            body = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            return False
        if body.get("status") != "recording" or not _FILE.fullmatch(path.name):
            return False  # done meanwhile by another thread
        held = _lock(path)
        if held is None and path.exists():
            return False  # another process is writing it (or finalising it)
        try:
            return _finalise_locked(path, sidecar, body)
        finally:
            _unlock(held)


def _finalise_locked(path: Path, sidecar: Path, body: dict[str, Any]) -> bool:
    try:  # again, now that no writer holds it: its writer may have finished meanwhile
        body = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return False
    if body.get("status") != "recording":
        return False
    tmp = path.with_name(path.stem + ".remux" + path.suffix)
    try:
        packets = _remux(path, tmp, "webm" if path.suffix == ".webm" else "matroska")
        if packets == 0:
            raise ValueError("no packet could be read")
        os.replace(tmp, path)
        body.update(status="recovered", duration_ms=_probe_duration(path))
        body.pop("error", None)
    except Exception as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        body.update(status="damaged", error=f"could not finalise: {exc}", duration_ms=None)
        log.warning("media: %s kept as it is: %s", path.name, body["error"])
    _write_json(sidecar, body)
    return body["status"] == "recovered"


def _remux(src_path: Path, dst_path: Path, fmt: str) -> int:
    """Copy every readable packet of src into a new, finalised file; stops at the damage."""
    n = 0
    with av.open(str(src_path)) as src, av.open(str(dst_path), "w", format=fmt) as dst:
        for key, value in src.metadata.items():
            dst.metadata[key] = value
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        last: dict[int, int] = {}
        try:
            for pkt in src.demux():
                if pkt.dts is None or pkt.size == 0:
                    continue
                i = pkt.stream.index
                if i in last and pkt.dts <= last[i]:
                    continue
                last[i] = pkt.dts
                pkt.stream = streams[i]
                dst.mux(pkt)
                n += 1
        except (av.error.FFmpegError, EOFError) as exc:  # the torn end of a killed writer
            log.info("media: %s read up to its damage (%s)", src_path.name, exc)
    return n


def list_media(session_dir: Path) -> list[dict[str, Any]]:
    """The session's media files for the replay manifest, oldest first; files a crash left are
    finalised first. Blocking: call it off the event loop."""
    directory = media_dir(session_dir)
    if not directory.is_dir():
        return []
    finalise_abandoned(directory)
    out = [e for e in (_entry(directory, s) for s in directory.glob("*.json")) if e is not None]
    out.sort(key=lambda m: (m["start_ms"], m["file"]))
    return out


def _entry(directory: Path, sidecar: Path) -> dict[str, Any] | None:
    try:
        body = json.loads(sidecar.read_text())
        path = directory / body["file"]
        size = path.stat().st_size
        start = int(body["start_ms"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _FILE.fullmatch(path.name) or path.with_suffix(".json") != sidecar:
        return None
    duration = body.get("duration_ms")
    return {
        "file": path.name,
        "publisher": body.get("publisher"),
        "start_ms": start,
        "duration_ms": duration,
        "end_ms": start + duration if duration is not None else None,
        "status": body.get("status"),
        "container": body.get("container"),
        "content_type": body.get("content_type"),
        "size_bytes": size,
        "tracks": body.get("tracks", []),
        "dropped_packets": body.get("dropped_packets", 0),
    }


def media_file(session_dir: Path, name: str) -> tuple[Path, dict[str, Any]] | None:
    """The path and listing entry of one media file of the session (finalised first if a crash
    left it), or None."""
    if not _FILE.fullmatch(name):
        return None
    directory = media_dir(session_dir)
    path = directory / name
    if not path.with_suffix(".json").is_file():
        return None
    finalise(path)
    entry = _entry(directory, path.with_suffix(".json"))
    return (path, entry) if entry is not None else None


def media_bytes(session_dir: Path) -> int:
    directory = media_dir(session_dir)
    if not directory.is_dir():
        return 0
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
