"""A session while it is served: the pure core plus a clock, its connections, a resume buffer and
an ordered outbox to the fan-out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from .auth import new_id
from .core import Audience, CommandError, Event, Outcome, SessionCore, SessionState, project
from .core.presence import COALESCED
from .crowd import BATCH_S, CROWD_LEARNERS, SUMMARY_S, Crowd, Outbox
from .ports import Delivery, EventLog, Fanout, Recovered
from .store import SessionInfo

log = logging.getLogger(__name__)

RESUME_EVENTS = 10_000  # how far back a reconnecting client can resume without a new snapshot

# Large sessions (docs/architecture.md, "Large audiences", `crowd.py`): once more than `crowd`
# learners are online at once (`--crowd-size`), learners get the presence summary every SUMMARY_S
# instead of every join, leave, hand and reaction of others, and a batch made only of those events
# waits up to BATCH_S after the previous one, so trainers get every change in a few writes a second.
__all__ = ["BATCH_S", "CROWD_LEARNERS", "RESUME_EVENTS", "SUMMARY_S", "LiveSession"]

StatusHook = Callable[[str, str], Awaitable[None]]


class LiveSession:
    def __init__(
        self,
        info: SessionInfo,
        fanout: Fanout,
        on_status: StatusHook,
        recorder: EventLog | None,
        recovered: Recovered,
        crowd: int = CROWD_LEARNERS,
    ) -> None:
        self.id = info.id
        self.info = info
        self.core = SessionCore(info.id, info.title, recording=info.recording, state=recovered.state)
        # A new epoch per server lifetime: after a restart, a client's last seq may name an
        # event that was broadcast but never made durable, so it must take a fresh snapshot.
        self.epoch = new_id(4)
        self._recorder = recorder
        self._logging = recorder is not None
        self.connections: dict[str, set[str]] = {}  # pid -> socket ids
        self.recent: deque[Event] = deque(maxlen=RESUME_EVENTS)
        self.sent_seq = self.core.state.seq  # every event up to here has gone to the rooms
        self.empty_since: float | None = time.monotonic()
        self._fanout = fanout
        self._on_status = on_status
        self._t0: float | None = None  # monotonic time at which the session went live
        # Called (synchronously, with the session id) once the session has ended: the edge
        # closes its media.
        self.on_ended: list[Callable[[str], None]] = []
        # Large sessions: the tallies of the presence summary, kept from the events (O(1) each).
        self.crowd = Crowd(info.id, crowd, self._notify)  # size 0: never large
        self.crowd.seed(self.state)
        self._outbox = Outbox(self.crowd, self._send)  # in order to the fan-out, presence batched
        if self.state.status != "created":
            # Rebuilt from its log: the session clock carries on, counting the downtime.
            now_t = recovered.last_t + max(0, int(time.time() * 1000) - recovered.last_wall_ms)
            self._t0 = time.monotonic() - now_t / 1000

    def rebuild(self) -> None:
        """After a restart nobody is connected: say so for those the log still shows online, and
        that no media track is live any more."""
        for pid, p in list(self.state.participants.items()):
            if p["online"]:
                self._publish(self.core.leave(pid, self.now()))
        self._publish(self.core.media_tracks([], self.now()))

    @property
    def state(self):
        return self.core.state

    def now(self) -> int:
        """Milliseconds since the session went live (0 before)."""
        if self._t0 is None:
            return 0
        return int((time.monotonic() - self._t0) * 1000)

    def at(self, monotonic: float) -> float:
        """The session time (ms) of a `time.monotonic()` instant (0 before the session went live)."""
        if self._t0 is None:
            return 0.0
        return (monotonic - self._t0) * 1000

    # -- participants ---------------------------------------------------------------------------

    def attach(self, sid: str, pid: str, name: str, role: str) -> None:
        self.empty_since = None
        if add_socket(self.connections, sid, pid):
            self._publish(self.core.join(pid, name, role, self.now()))

    def detach(self, sid: str, pid: str) -> None:
        if drop_socket(self.connections, sid, pid):
            self._publish(self.core.leave(pid, self.now()))
            if not self.connections:
                self.empty_since = time.monotonic()

    # -- commands -------------------------------------------------------------------------------

    def execute(self, pid: str, name: str, payload: Any) -> Outcome:
        """Run a command synchronously (so commands keep their arrival order) and queue its
        events for delivery and the log. Raises CommandError having changed nothing."""
        if self._logging and not self._recorder.accepting(self.id):  # type: ignore[union-attr]
            # The disk has been failing long enough that the events waiting to be saved reached
            # their bound: refuse before anything becomes an event (joins and leaves still go).
            raise CommandError("storage_full", "the server cannot save right now; nothing changed")
        outcome = self.core.execute(pid, name, payload, self.now())
        self._publish(outcome.events)
        return outcome

    async def durable(self, outcome: Outcome) -> None:
        """Return once the outcome's events are on disk: only then is a command acknowledged."""
        if outcome.events and self._logging:
            assert self._recorder is not None
            await self._recorder.durable(self.id, outcome.events[-1].seq)

    def end(self, reason: str) -> None:
        self._publish(self.core.end(reason, self.now()))

    def media_tracks(self, tracks: list[dict[str, str]]) -> None:
        """The edge's media says which tracks are live now: `media.tracks` when that changed."""
        self._publish(self.core.media_tracks(tracks, self.now()))

    def snapshot(self, audience: Audience, pid: str | None) -> dict[str, Any]:
        """A joining client's snapshot: bounded whatever the history (`core/history.py`). In a
        large session a learner's lists only the trainers and themselves, with the summary."""
        return self.crowd.snapshot(self.state, audience, pid)

    # -- large sessions -------------------------------------------------------------------------

    @property
    def large(self) -> bool:
        return self.crowd.large

    def presence(self, reactions: dict[str, int] | None = None) -> dict[str, Any]:
        """The presence summary of a large session (the socket.io event `presence`)."""
        return self.crowd.presence(reactions)

    async def send_summary(self) -> None:
        """One presence summary to both audiences, when anything changed since the last."""
        await self.crowd.send_summary()

    async def _notify(self, session_id: str, audience: str, name: str, data: dict[str, Any]) -> int:
        return await self._fanout.notify(session_id, audience, name, data)

    def missed(self, last_seq: int, audience: Audience, pid: str) -> list[dict[str, Any]] | None:
        """Events after `last_seq` this participant would have received live, or None when they
        are too far behind (or ahead, after a restart) and need a fresh snapshot."""
        return missed_events(self.recent, self.sent_seq, self.crowd, last_seq, audience, pid)

    # -- delivery -------------------------------------------------------------------------------

    def _publish(self, events: list[Event]) -> None:
        # Queued for delivery before the log: the sender then writes to the rooms before the
        # recorder's thread starts on the same events, rather than competing with it for the GIL.
        for event in events:
            self.recent.append(event)
            if event.type in COALESCED:
                self.crowd.tally(event)
        self._outbox.put(events)
        if self._logging:
            assert self._recorder is not None
            self._recorder.append(self.id, events)
        for event in events:
            if event.type == "session.started":
                self._t0 = time.monotonic()
                self._status("live")
            elif event.type == "session.ended":
                self._status("ended")
                for hook in self.on_ended:
                    try:
                        hook(self.id)
                    except Exception:
                        log.exception("session %s: an end hook failed", self.id)
                if self.state.recording == "off":
                    # Not recorded: the log only guarded against crashes; it goes with the end.
                    self._logging = False
                    assert self._recorder is not None
                    asyncio.get_running_loop().create_task(
                        self._recorder.close_session(self.id, discard=True)
                    )

    def _status(self, status: str) -> None:
        self.info.status = status
        asyncio.get_running_loop().create_task(self._on_status(self.id, status))

    async def _send(self, batch: list[Event]) -> None:
        self.sent_seq = batch[-1].seq
        await self._fanout.deliver(self.id, [self._delivery(event) for event in batch])

    def _delivery(self, event: Event) -> Delivery:
        return delivery(event, self.state, self.connections, self.crowd)

    async def drain(self) -> None:
        """Wait until every queued event has gone to the fan-out (tests, shutdown)."""
        await self._outbox.drain()

    async def close(self) -> None:
        await self._outbox.close()
        await self.crowd.close()


def add_socket(connections: dict[str, set[str]], sid: str, pid: str) -> bool:
    """Count socket `sid` as one of participant `pid`'s; True when it is their first (they join).
    Shared by the embedded session and a cluster replica."""
    sids = connections.setdefault(pid, set())
    sids.add(sid)
    return len(sids) == 1


def drop_socket(connections: dict[str, set[str]], sid: str, pid: str) -> bool:
    """Stop counting socket `sid` as `pid`'s; True when it was their last (they leave)."""
    sids = connections.get(pid)
    if not sids:
        return False
    sids.discard(sid)
    if sids:
        return False
    del connections[pid]
    return True


def missed_events(
    recent: deque[Event], sent_seq: int, crowd: Crowd, last_seq: int, audience: Audience, pid: str
) -> list[dict[str, Any]] | None:
    """What a client resuming after `last_seq` missed, from the `recent` events up to `sent_seq`
    (those already handed to the rooms), as `pid` in `audience` would have received them live; None
    when it is too far behind (or ahead, after a restart) and needs a fresh snapshot. Shared by the
    embedded session and a cluster node's replica."""
    if last_seq > sent_seq:
        return None
    if last_seq == sent_seq:
        return []
    oldest = recent[0].seq if recent else sent_seq + 1
    if last_seq < oldest - 1:
        return None
    out = []
    for event in recent:
        if event.seq <= last_seq:
            continue
        if event.seq > sent_seq:
            break  # queued, not yet handed to the rooms: the rooms will deliver it
        if crowd.hidden(event, audience, pid):
            continue
        view = project(event, audience, event.actor == pid)
        if view is not None:
            out.append(view)
    return out


def delivery(event: Event, state: SessionState, connections: dict[str, set[str]], crowd: Crowd) -> Delivery:
    """How the fan-out delivers `event`: to whom by audience, and which sockets are its actor's
    (they get the actor's own view). Shared by the embedded session and a cluster replica."""
    crowded = crowd.delivery(event, state, connections)
    if crowded is not None:
        return crowded
    if event.actor is None:
        return Delivery(event)
    actor = state.participants.get(event.actor)
    return Delivery(event, actor["role"] if actor else None, connections.get(event.actor, ()))
