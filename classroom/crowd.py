"""Large sessions' presence (docs/architecture.md, "Large audiences"), in one place for whoever
delivers a session's events to sockets: `LiveSession` (one process) and every cluster node's
`Replica` (each coalesces for its own sockets, from the stream).

Once more than `size` learners are online at once (`--crowd-size`), learners get the presence
summary every SUMMARY_S instead of every join, leave, hand and reaction of others; trainers still
get every event (a batch made only of presence waits up to BATCH_S after the previous one: `Outbox`,
which both deliver through)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from . import metrics
from .core import Audience, Event, SessionState
from .core.history import crowd_view
from .core.presence import COALESCED, subject
from .ports import Delivery
from .tasks import cancel, next_tick

log = logging.getLogger(__name__)

CROWD_LEARNERS = 200
SUMMARY_S = 1.0
BATCH_S = 0.25
_LEARNER_ONLY: frozenset[str] = frozenset({"learner"})

# `Fanout.notify`: a socket.io event outside the stream to an audience's room.
Notify = Callable[[str, str, str, dict[str, Any]], Awaitable[int]]
# What an `Outbox` hands its batches to (in order, one at a time).
Send = Callable[[list[Event]], Awaitable[None]]


class Crowd:
    """One session's presence tallies (from its events, O(1) each), whether it is large, the
    summariser task that sends the `presence` summary through `notify`, and what learners do not
    get of the events while it is large (live, on resume, in their join snapshot)."""

    def __init__(self, session_id: str, size: int, notify: Notify) -> None:
        self.session_id = session_id
        self.size = size  # 0: never large
        self.large = False  # once large, it stays so while served here (learners' lists stay off)
        self._notify = notify
        self.learners: set[str] = set()  # online learners
        self.trainers: set[str] = set()  # online trainers
        self.hands: set[str] = set()  # raised hands
        self._reactions: dict[str, int] = {}  # per emoji since the last summary
        self._summarised: tuple[int, int, int] | None = None
        self._summariser: asyncio.Task[None] | None = None

    def seed(self, state: SessionState) -> None:
        """Start the tallies from a state (rebuilt from a log, or loaded from the cluster)."""
        for pid, p in state.participants.items():
            if p["online"]:
                (self.learners if p["role"] == "learner" else self.trainers).add(pid)
            if p["hand"]:
                self.hands.add(pid)

    def check(self) -> None:
        """Go large now if the tallies already say so (a node starting to follow a big session)."""
        if not self.large and 0 < self.size < len(self.learners):
            self._go_large()

    def tally(self, event: Event) -> None:
        """Count an event of COALESCED (others are ignored)."""
        kind, pid = event.type, event.data.get("id")
        if kind == "participant.joined":
            if event.data.get("role") == "learner":
                self.learners.add(pid)
                self.check()
            else:
                self.trainers.add(pid)
        elif kind == "participant.left":
            self.learners.discard(pid)
            self.trainers.discard(pid)
        elif kind == "hand.raised":
            self.hands.add(pid)
        elif kind == "hand.lowered":
            self.hands.discard(pid)
        elif kind == "reaction" and self.large:
            emoji = event.data.get("emoji", "")
            self._reactions[emoji] = self._reactions.get(emoji, 0) + 1

    def presence(self, reactions: dict[str, int] | None = None) -> dict[str, Any]:
        """The presence summary (the socket.io event `presence`)."""
        return {
            "learners": len(self.learners),
            "trainers": len(self.trainers),
            "hands": len(self.hands),
            "reactions": reactions or {},
        }

    def _go_large(self) -> None:
        log.info(
            "session %s: more than %d learners online, presence is summarised", self.session_id, self.size
        )
        self.large = True
        self._summariser = asyncio.get_running_loop().create_task(self._summarise())

    async def _summarise(self) -> None:
        while True:
            await next_tick(SUMMARY_S)  # with the process's other periodic work (one wakeup)
            try:
                await self.send_summary()
            except Exception:
                log.exception("session %s: the presence summary failed", self.session_id)

    async def send_summary(self) -> None:
        """One presence summary to both audiences, when anything changed since the last."""
        counts = (len(self.learners), len(self.trainers), len(self.hands))
        if counts == self._summarised and not self._reactions:
            return
        reactions, self._reactions = self._reactions, {}
        self._summarised = counts
        summary = self.presence(reactions)
        # Trainers first: the learners' copy is paced over a fraction of a second in a large room.
        for audience in ("trainer", "learner"):
            await self._notify(self.session_id, audience, "presence", summary)

    def hidden(self, event: Event, audience: Audience, pid: str) -> bool:
        """Whether participant `pid` of `audience` does not get `event` (live or on resume)."""
        return (
            self.large
            and audience == "learner"
            and event.type in COALESCED
            and event.actor != pid
            and subject(event) != pid
        )

    def delivery(
        self, event: Event, state: SessionState, connections: Mapping[str, Iterable[str]]
    ) -> Delivery | None:
        """Presence while large: trainers see it, learners only their own (and a hand a trainer
        lowered for them). None for any other event, or while small."""
        if not (self.large and event.type in COALESCED):
            return None
        actor = state.participants.get(event.actor) if event.actor else None
        return Delivery(
            event,
            actor["role"] if actor else None,
            connections.get(event.actor, ()) if event.actor else (),
            hidden=_LEARNER_ONLY,
            subject=subject(event),
        )

    def snapshot(self, state: SessionState, audience: Audience, pid: str | None) -> dict[str, Any]:
        """A joining client's snapshot: bounded whatever the history (`core/history.py`). While
        large, a learner's lists only the trainers and themselves, with the summary."""
        if not self.large:
            return state.view(audience, pid, bounded=True)
        if audience == "learner":
            snap = crowd_view(state, audience, pid, [*self.trainers, *([pid] if pid else [])])
        else:
            snap = state.view(audience, pid, bounded=True)
        snap["presence"] = self.presence()
        return snap

    async def close(self) -> None:
        await cancel(self._summariser)
        self._summariser = None


class Outbox:
    """A session's events on their way to the fan-out, sent in order by one task: everything
    queued by the time it runs goes out together (under load, one write per connection carries
    several events). While the crowd is large, a batch made only of presence (COALESCED) waits
    until BATCH_S after the previous one, unless something else (a chat message) is queued first,
    so trainers get every change in a few writes a second. `LiveSession` (one process) and every
    cluster node's `Replica` (for its own sockets) deliver through one each."""

    def __init__(self, crowd: Crowd, send: Send) -> None:
        self._crowd = crowd
        self._send = send
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._urgent = asyncio.Event()  # an event other than presence is queued: no batching wait
        self._last_sent = 0.0
        self._task: asyncio.Task[None] | None = None
        self.queued_at: float | None = None  # when the oldest event not yet sent was queued

    def put(self, events: Iterable[Event]) -> None:
        queued = False
        for event in events:
            self._queue.put_nowait(event)
            queued = True
            if event.type not in COALESCED:
                self._urgent.set()
        if queued:
            if self.queued_at is None:
                self.queued_at = time.monotonic()
            if self._task is None:
                self._task = asyncio.get_running_loop().create_task(self._loop())

    def empty(self) -> bool:
        return self._queue.empty()

    async def _loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            if self._crowd.large and not self._urgent.is_set():
                # Only presence queued: it waits for the next few hundred milliseconds' worth,
                # unless something else comes first.
                delay = self._last_sent + BATCH_S - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._urgent.wait(), delay)
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._urgent.clear()
            queued_at, self.queued_at = self.queued_at, None
            try:
                await self._send(batch)
            except Exception:  # a broken socket must not stop the session's stream
                log.exception(
                    "delivery of events %s-%s in %s failed",
                    batch[0].seq,
                    batch[-1].seq,
                    self._crowd.session_id,
                )
            self._last_sent = time.monotonic()
            if queued_at is not None:
                metrics.FANOUT_SECONDS.observe(self._last_sent - queued_at)

    async def drain(self) -> None:
        """Wait until every queued event has gone to the fan-out (tests, shutdown)."""
        while not self._queue.empty():
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        await cancel(self._task)
        self._task = None
