"""Helpers for pure tests of the session core: a driven core with a clock and an event log."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from classroom.core import CommandError, Event, SessionCore, SessionState, apply, project

SESSION_ID = "s1"
TITLE = "Intro to testing"
TRAINER_ID = "t1"
L1 = "l1"
L2 = "l2"
NAMES = {TRAINER_ID: "Tess", L1: "Lea", L2: "Leo"}

# Every command of the protocol, with its allowed roles, as the tests expect them.
TRAINER_ONLY = {
    "session.start",
    "session.end",
    "session.mark",
    "recording.pause",
    "recording.resume",
    "participant.mute",
    "participant.unmute",
    "hand.lower_all",
    "chat.delete",
    "poll.open",
    "poll.close",
    "poll.share",
    "qa.answer",
    "qa.dismiss",
    "qa.reopen",
    "wb.clear",
    "wb.page.add",
    "wb.page.switch",
    "wb.permit",
    "floor.give",
}
LEARNER_ONLY = {"poll.vote", "hand.raise"}
BOTH = {
    "hand.lower",
    "reaction.send",
    "chat.send",
    "qa.ask",
    "qa.upvote",
    "qa.unvote",
    "wb.stroke.begin",
    "wb.stroke.extend",
    "wb.stroke.end",
    "wb.shape",
    "wb.text",
    "wb.erase",
    "wb.undo",
    "wb.redo",
    "floor.take",
}

# A payload that validates for each command (the targets may not exist; that is fine for checks
# that run before the command looks anything up).
VALID_PAYLOADS: dict[str, dict[str, Any]] = {
    "session.start": {},
    "session.end": {},
    "session.mark": {"title": "Part 2"},
    "recording.pause": {},
    "recording.resume": {},
    "participant.mute": {"participant_id": L1},
    "participant.unmute": {"participant_id": L1},
    "chat.send": {"text": "hello"},
    "chat.delete": {"message_id": "m99"},
    "poll.open": {"question": "Q?", "options": ["a", "b"]},
    "poll.vote": {"poll_id": "p99", "choices": [0]},
    "poll.close": {"poll_id": "p99"},
    "poll.share": {"poll_id": "p99"},
    "qa.ask": {"text": "Why?"},
    "qa.upvote": {"question_id": "q99"},
    "qa.unvote": {"question_id": "q99"},
    "qa.answer": {"question_id": "q99", "text": "Because."},
    "qa.dismiss": {"question_id": "q99"},
    "qa.reopen": {"question_id": "q99"},
    "hand.raise": {},
    "hand.lower": {"participant_id": L1},
    "hand.lower_all": {},
    "reaction.send": {"emoji": "👍"},
    "wb.stroke.begin": {"points": [1, 2, 3, 4]},
    "wb.stroke.extend": {"element_id": "e99", "points": [5, 6]},
    "wb.stroke.end": {"element_id": "e99"},
    "wb.shape": {"kind": "rect", "x1": 1, "y1": 2, "x2": 30, "y2": 40},
    "wb.text": {"x": 10, "y": 20, "text": "hi"},
    "wb.erase": {"element_id": "e99"},
    "wb.clear": {},
    "wb.undo": {},
    "wb.redo": {},
    "wb.page.add": {},
    "wb.page.switch": {"page_id": "w1"},
    "wb.permit": {"learners_can_draw": True},
    "floor.give": {"id": L1, "camera": True},
    "floor.take": {"id": L1},
}

STEP_MS = 10_000  # default gap between commands: long enough that no rate limit ever bites


def fingerprint(state: SessionState, viewers: list[tuple[str, str | None]]) -> Any:
    """Everything observable about a state (every viewer's view, the server-only history)."""
    return (
        state.seq,
        state.t,
        [state.view(audience, viewer) for audience, viewer in viewers],  # type: ignore[arg-type]
        copy.deepcopy(state.undo),
        copy.deepcopy(state.redo),
    )


class Harness:
    """Drives a SessionCore with a monotonic clock, keeping every event it produced."""

    def __init__(self, core: SessionCore) -> None:
        self.core = core
        self.clock = 0
        self.events: list[Event] = []
        self.roles: dict[str, str] = {}

    @property
    def state(self) -> SessionState:
        return self.core.state

    def _tick(self, t: int | None) -> int:
        if t is None:
            self.clock += STEP_MS
        else:
            assert t >= self.clock, "the test clock only moves forward"
            self.clock = t
        return self.clock

    def viewers(self) -> list[tuple[str, str | None]]:
        return [("trainer", None), ("learner", None)] + [
            (role, pid) for pid, role in sorted(self.roles.items())
        ]

    def join(self, pid: str, name: str, role: str, t: int | None = None) -> list[Event]:
        events = self.core.join(pid, name, role, self._tick(t))
        self.roles[pid] = role
        self.events.extend(events)
        return events

    def leave(self, pid: str, t: int | None = None) -> list[Event]:
        events = self.core.leave(pid, self._tick(t))
        self.events.extend(events)
        return events

    def end(self, reason: str = "idle", t: int | None = None) -> list[Event]:
        events = self.core.end(reason, self._tick(t))
        self.events.extend(events)
        return events

    def run(self, pid: str, name: str, payload: Any = None, t: int | None = None) -> Any:
        """Execute a command that must succeed; returns the Outcome."""
        try:
            outcome = self.core.execute(pid, name, payload, self._tick(t))
        except CommandError as exc:  # pragma: no cover - a failing test explains itself
            raise AssertionError(f"{name} by {pid} refused: {exc.code}: {exc.message}") from None
        self.events.extend(outcome.events)
        return outcome

    def refuse(self, pid: str, name: str, payload: Any, code: str, t: int | None = None) -> CommandError:
        """Execute a command that must be refused with `code`, and check that nothing changed."""
        before = fingerprint(self.state, self.viewers())
        with pytest.raises(CommandError) as info:
            self.core.execute(pid, name, payload, self._tick(t))
        assert info.value.code == code, f"{name}: expected {code}, got {info.value.code}: {info.value}"
        assert fingerprint(self.state, self.viewers()) == before, f"{name} changed the state when refused"
        return info.value

    # -- small conveniences -----------------------------------------------------------------

    def types(self, outcome: Any) -> list[str]:
        return [e.type for e in outcome.events]

    def tview(self) -> dict[str, Any]:
        return self.state.view("trainer", TRAINER_ID)

    def lview(self, pid: str = L1) -> dict[str, Any]:
        return self.state.view("learner", pid)


def fold_projected(
    snapshot: dict[str, Any], viewer: str | None, audience: str, events: list[Event]
) -> SessionState:
    """What a client does: rebuild from a snapshot, then fold the events it is sent."""
    client = SessionState.from_view(copy.deepcopy(snapshot), viewer)
    for event in events:
        wire = project(event, audience, viewer is not None and event.actor == viewer)  # type: ignore[arg-type]
        if wire is not None:
            apply(client, Event.from_wire(copy.deepcopy(wire)))
    return client


def replay(events: list[Event], session_id: str = SESSION_ID, title: str = TITLE) -> SessionState:
    state = SessionState(session_id, title)
    for event in events:
        apply(state, event)
    return state


@pytest.fixture
def fresh() -> Harness:
    """A core with one trainer and two learners joined; the session not started yet."""
    h = Harness(SessionCore(SESSION_ID, TITLE))
    h.join(TRAINER_ID, NAMES[TRAINER_ID], "trainer")
    h.join(L1, NAMES[L1], "learner")
    h.join(L2, NAMES[L2], "learner")
    return h


@pytest.fixture
def h(fresh: Harness) -> Harness:
    """A core with one trainer and two learners joined and the session started."""
    fresh.run(TRAINER_ID, "session.start", {})
    return fresh
