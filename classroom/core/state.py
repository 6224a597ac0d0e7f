"""The folded state of a session and its per-audience views.

The state is a fold over the event stream: `apply` is the only way it changes. The same fold runs
on the server over full events and in clients over the projected events they receive, so every
fold function accepts both forms (hidden fields are simply absent or None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .events import Audience, Event
from .registry import FOLDS

View = Callable[["SessionState", Audience, "str | None"], Any]
Load = Callable[["SessionState", Any, "str | None"], None]

# Each feature names the key it owns in a snapshot, how to render it and how to read it back.
SECTIONS: dict[str, tuple[View, Load]] = {}
# The bounded rendering of the sections whose size grows with history (`history.py`): what a
# join snapshot carries; the rest is fetched page by page.
BOUNDED: dict[str, View] = {}


def section(name: str, view: View, load: Load) -> None:
    SECTIONS[name] = (view, load)


@dataclass
class SessionState:
    id: str
    title: str
    status: str = "created"  # created -> live -> ended
    recording: str = "on"  # on | paused | off (a session created with recording off)
    seq: int = 0
    t: int = 0
    participants: dict[str, dict[str, Any]] = field(default_factory=dict)
    chat: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, dict[str, Any]] = field(default_factory=dict)
    questions: dict[str, dict[str, Any]] = field(default_factory=dict)
    chapters: list[dict[str, Any]] = field(default_factory=list)
    board: dict[str, Any] = field(default_factory=lambda: new_board())
    # Live media (`media.py`): the tracks being published and who besides trainers holds the floor.
    media: dict[str, Any] = field(default_factory=lambda: {"tracks": [], "floor": {}})
    # Undo/redo history per participant. Only the server keeps it (clients see no history), and
    # it too is a pure fold of the events, so a restarted server rebuilds it exactly.
    history: bool = True
    undo: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    redo: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def view(self, audience: Audience, viewer: str | None = None, *, bounded: bool = False) -> dict[str, Any]:
        """What `viewer` (of `audience`) may see now. `bounded`: the snapshot a joining client
        receives, the recent part of each growing section (`history.py`); else everything."""
        out: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "recording": self.recording,
            "seq": self.seq,
            "t": self.t,
        }
        for name, (view, _load) in SECTIONS.items():
            if bounded:
                view = BOUNDED.get(name, view)
            out[name] = view(self, audience, viewer)
        return out

    @classmethod
    def from_view(cls, snapshot: dict[str, Any], viewer: str | None = None) -> SessionState:
        """Rebuild a (projected) state from a snapshot, for clients that fold live events on it."""
        state = cls(snapshot["id"], snapshot["title"], snapshot["status"], history=False)
        state.recording = snapshot["recording"]
        state.seq = snapshot["seq"]
        state.t = snapshot["t"]
        for name, (_view, load) in SECTIONS.items():
            if name in snapshot:  # a section newer than the snapshot keeps its empty start
                load(state, snapshot[name], viewer)
        return state


FIRST_PAGE = "w1"


def new_board() -> dict[str, Any]:
    """One empty page; `index` maps element id -> page id for O(1) lookups."""
    return {
        "pages": {FIRST_PAGE: {}},
        "current": FIRST_PAGE,
        "learners_can_draw": False,
        "index": {},
    }


def apply(state: SessionState, event: Event) -> None:
    """Fold one event into the state. Events at or below the state's seq are ignored."""
    if event.seq <= state.seq:
        return
    fold = FOLDS.get(event.type)
    if fold is not None and not _not_loaded(state, event):
        fold(state, event)
    state.seq = event.seq
    state.t = event.t


def _not_loaded(state: SessionState, event: Event) -> bool:
    """In a client that joined with a bounded snapshot: is this a drawing event on a whiteboard
    page it has not fetched, or one already contained in a page it fetched later?"""
    board = state.board
    if "unloaded" not in board and "loaded" not in board:
        return False  # the server, and clients holding every page
    if not event.type.startswith("wb.") or event.type == "wb.page.switched":
        return False
    page = event.data.get("page")
    return page in board.get("unloaded", ()) or event.seq <= board.get("loaded", {}).get(page, 0)
