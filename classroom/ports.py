"""What the session registry needs from the packages around it, declared here so that it imports
none of them: the outbox its events go to (`Fanout`, implemented by `signaling.fanout.FrameFanout`),
the log that makes them durable (`EventLog`, implemented by `recorder.recorder.Recorder`), what
the HTTP side may ask of the real-time edge (`Edge`, implemented by `signaling.hub.Hub`), and how
the edge's live media reaches the recorder (`MediaRecording`, implemented by
`recorder.mediafeed.MediaFeeds`). The
composition root (`classroom/app.py`) plugs the implementations in."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .core import Event, SessionState

# -- the outbox: live delivery ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event to deliver, with its actor's role and connections (who may see more of it)."""

    event: Event
    actor_role: str | None = None
    actor_sids: Iterable[str] = ()
    # A large session's presence (`classroom/live.py`): audiences whose room does not get this
    # event, and a participant (besides the actor) whose personal room gets the full event.
    hidden: frozenset[str] = frozenset()
    subject: str | None = None


class Fanout(Protocol):
    async def deliver(self, session_id: str, batch: list[Delivery]) -> None: ...

    def notify(self, session_id: str, audience: str, name: str, data: dict[str, Any]) -> int:
        """Send the socket.io event `name` (not part of the stream: no seq) to an audience's
        room, encoded once; returns how many connections it was written to."""
        ...


# -- the log: durability ------------------------------------------------------------------------


class StorageError(Exception):
    """Events are live but not yet on disk; the recorder keeps retrying."""


@dataclass
class Recovered:
    """A session rebuilt from its log: the state and the clocks of its last event."""

    state: SessionState | None
    last_t: int = 0
    last_wall_ms: int = 0
    events: int = 0
    repaired: str | None = None  # what was cut from a torn tail, if anything


class EventLog(Protocol):
    """Each session's events, durably: `append` queues them, `durable` returns once they are on
    disk (or raises `StorageError` while writes fail)."""

    durable_seq: dict[str, int]  # per open session, the last seq on disk

    async def open(
        self, session_id: str, title: str, recording: str, anonymize: bool = False
    ) -> Recovered: ...

    def is_open(self, session_id: str) -> bool: ...

    def accepting(self, session_id: str) -> bool: ...

    def append(self, session_id: str, events: list[Event]) -> None: ...

    async def durable(self, session_id: str, seq: int) -> None: ...

    async def close_session(self, session_id: str, discard: bool = False) -> None: ...

    async def close(self) -> dict[str, int]: ...


# -- the real-time edge, as the HTTP side sees it -----------------------------------------------


class Edge(Protocol):
    async def disconnect_session(self, session_id: str) -> None:
        """Close every socket still connected to the session, and let each leave at once."""
        ...


# -- live media to the recorder -----------------------------------------------------------------


class MediaSource(Protocol):
    """A session's live media as the recorder sees it (`signaling.webrtc.Media`): encoded frames
    (`signaling.webrtc.EncodedFrame`: publisher_id, track_id, kind, codec, data, pts, time_base,
    keyframe) whose `pts * time_base` counts seconds since `epoch` (`time.monotonic()`)."""

    @property
    def epoch(self) -> float: ...

    def subscribe(self, callback: Callable[[Any], None]) -> Callable[[], None]: ...

    def request_keyframe(self, track_id: str) -> None: ...


class ClockedSession(Protocol):
    """What the media recorder needs of a live session (`classroom.live.LiveSession`)."""

    id: str

    @property
    def state(self) -> SessionState: ...

    def at(self, monotonic: float) -> float:
        """The session time (ms, the events' `t` clock) of a `time.monotonic()` instant."""
        ...


class MediaTap(Protocol):
    """One session's media being recorded."""

    def tracks(self, tracks: list[dict[str, str]]) -> None:
        """The live tracks now (`media.tracks`): the others have ended."""
        ...

    async def close(self) -> None:
        """Stop recording and finalise the files."""
        ...


class MediaRecording(Protocol):
    def attach(self, session: ClockedSession, media: MediaSource) -> MediaTap: ...
