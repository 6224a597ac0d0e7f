"""The live media's way into the recording: the registry's `MediaRecording` (`classroom/ports.py`).

The composition root attaches each session's live media (a `MediaSource`: the edge's
`signaling.webrtc.Media`, which this package does not import) to a `MediaRecorder` writing under the
session's recording directory, on the session clock (the events' `t`): a frame's
`pts * time_base` counts seconds on the monotonic clock, and `ClockedSession.at` turns a monotonic
instant into session time. The media layer anchors a track's pts on its first frame's arrival,
which comes late (the publisher's encoder starting, its first key frame, a slow path): so a new
track's frames are held for `ANCHOR_S`, and the track is anchored on the earliest arrival any of
them implies (arrival minus pts), the latency of its quickest frame. Recording follows the
session's: nothing for a session recorded off, nothing while it is paused (video resumes at a key
frame).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from classroom.ports import ClockedSession, MediaSource

from .media import VIDEO_CODECS, MediaRecorder, Packet, TrackWriter
from .paths import recording_dir

log = logging.getLogger(__name__)

ANCHOR_S = 0.5  # a new track's frames held to find its anchor (the recorder gathers 1 s anyway)
ANCHOR_FRAMES = 200  # at most (a 0.5 s burst after a stall)


@dataclass
class _Pending:
    """A track's first frames, until its anchor is known."""

    since: float  # monotonic arrival of the first
    codec: str
    anchor: float = float("inf")  # min over frames of (arrival - pts seconds), on the monotonic clock
    frames: list[Any] = field(default_factory=list)


class MediaFeeds:
    """Records every session's live media under `<root>/<session id>/media/`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def attach(self, session: ClockedSession, media: MediaSource) -> SessionFeed:
        return SessionFeed(recording_dir(self.root, session.id), session, media)


class SessionFeed:
    """One session's media recorder, fed from the media's encoded frames on the event loop."""

    def __init__(self, session_dir: Path, session: ClockedSession, media: MediaSource) -> None:
        self.session = session
        self.media = media
        self.recorder: MediaRecorder | None = None
        self.writers: dict[str, tuple[TrackWriter, str]] = {}  # track id -> (writer, codec)
        self.pending: dict[str, _Pending] = {}  # track id -> its first frames
        self._unsubscribe = None
        if session.state.recording == "off":
            return  # not recorded: no replay, so no media either
        self.recorder = MediaRecorder(session_dir)
        self._unsubscribe = media.subscribe(self.frame)

    def frame(self, f: Any) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        paused = self.session.state.recording == "paused"
        if paused != recorder.paused:
            recorder.set_paused(paused)
            if not paused:  # video resumes at a key frame: ask for one now rather than wait
                for track_id, (_writer, codec) in self.writers.items():
                    if codec in VIDEO_CODECS:
                        self.media.request_keyframe(track_id)
        entry = self.writers.get(f.track_id)
        if entry is not None and entry[1] == f.codec:
            entry[0].write(_packet(f))
            return
        if entry is not None:  # another codec: another track in the recorder's terms
            self.writers.pop(f.track_id)[0].close()
        now = time.monotonic()
        pending = self.pending.get(f.track_id)
        if pending is not None and pending.codec != f.codec:
            self._start(f.track_id)
            self.writers.pop(f.track_id)[0].close()
            pending = None
        if pending is None:
            pending = self.pending[f.track_id] = _Pending(now, f.codec)
        pending.frames.append(f)
        pending.anchor = min(pending.anchor, now - float(f.pts * f.time_base))
        if now - pending.since >= ANCHOR_S or len(pending.frames) >= ANCHOR_FRAMES:
            self._start(f.track_id)

    def _start(self, track_id: str) -> None:
        """Anchor a held track and hand its frames over."""
        pending = self.pending.pop(track_id)
        first = pending.frames[0]
        first_ms = self.session.at(pending.anchor + float(first.pts * first.time_base))
        writer: Any
        try:
            assert self.recorder is not None
            writer = self.recorder.track(
                first.publisher_id, track_id, first.kind, first.codec, round(first_ms)
            )
        except ValueError:
            log.warning("media: track %s in %s cannot be recorded", track_id, first.codec)
            writer = _Refused()
        self.writers[track_id] = (writer, pending.codec)
        if first.kind == "video" and not any(f.keyframe for f in pending.frames):
            self.media.request_keyframe(track_id)
        for f in pending.frames:
            writer.write(_packet(f))

    def tracks(self, tracks: list[dict[str, str]]) -> None:
        live = {t["id"] for t in tracks}
        for track_id in [t for t in self.pending if t not in live]:
            self._start(track_id)
        for track_id in [t for t in self.writers if t not in live]:
            self.writers.pop(track_id)[0].close()

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.recorder is not None:
            for track_id in list(self.pending):
                self._start(track_id)
        for writer, _codec in self.writers.values():
            writer.close()
        self.writers.clear()
        if self.recorder is not None:
            recorder, self.recorder = self.recorder, None
            await recorder.aclose()


def _packet(f: Any) -> Packet:
    return Packet(f.kind, f.codec, f.data, f.pts, f.time_base, f.keyframe)


class _Refused:
    """A track the recorder cannot take: its frames are dropped."""

    def write(self, packet: Any) -> bool:
        return False

    def close(self) -> None:
        pass
