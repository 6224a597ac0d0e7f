"""The live media's way into the recording: the registry's `MediaRecording` (`classroom/ports.py`).

The composition root attaches each session's live media (a `MediaSource`: the edge's
`signaling.webrtc.Media`, which this package does not import) to a `MediaRecorder` writing under the
session's recording directory. Each track is anchored on the session clock by its first frame:
the frame's `pts * time_base` counts seconds since the media's `epoch` (a `time.monotonic()`
instant), and the session turns a monotonic instant into its time (`ClockedSession.at`), so the
media lines up with the events' `t`. Recording follows the session's: nothing for a session
recorded off, nothing while it is paused (video resumes at a key frame).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from classroom.ports import ClockedSession, MediaSource

from .media import MediaRecorder, Packet, TrackWriter
from .paths import recording_dir

log = logging.getLogger(__name__)


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
        entry = self.writers.get(f.track_id)
        if entry is None or entry[1] != f.codec:
            if entry is not None:
                entry[0].close()  # another codec: another track in the file's terms
            first_ms = self.session.at(self.media.epoch + float(f.pts * f.time_base))
            try:
                writer = recorder.track(f.publisher_id, f.track_id, f.kind, f.codec, round(first_ms))
            except ValueError:
                log.warning("media: track %s in %s cannot be recorded", f.track_id, f.codec)
                self.writers[f.track_id] = entry = (_Refused(), f.codec)  # type: ignore[assignment]
                return
            entry = self.writers[f.track_id] = (writer, f.codec)
            if f.kind == "video" and not f.keyframe:
                self.media.request_keyframe(f.track_id)
        entry[0].write(Packet(f.kind, f.codec, f.data, f.pts, f.time_base, f.keyframe))

    def tracks(self, tracks: list[dict[str, str]]) -> None:
        live = {t["id"] for t in tracks}
        for track_id in [t for t in self.writers if t not in live]:
            self.writers.pop(track_id)[0].close()

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        for writer, _codec in self.writers.values():
            writer.close()
        self.writers.clear()
        if self.recorder is not None:
            recorder, self.recorder = self.recorder, None
            await recorder.aclose()


class _Refused:
    """A track the recorder cannot take: its frames are dropped."""

    def write(self, packet: Any) -> bool:
        return False

    def close(self) -> None:
        pass
