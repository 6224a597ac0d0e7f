"""The replay's bounded state at any time, fast however long the recording.

`Recording.state_at` folds from a disk snapshot of the whole state: decoding it costs what the
session has said so far (hundreds of milliseconds on a two-hour class). The replay player needs
only the bounded view a live join gets (`classroom/core/history.py`), so this keeps, per open
recording, what that view needs at any time:

- the chat as a timeline: every message once (messages never change), with the seq of the event
  that deleted it; the last messages at t, the count at t and older pages come by bisection;
- trimmed checkpoints every CHECKPOINT_EVENTS events of one forward fold: participants, the polls
  and questions a bounded view can still show from there (open and recent ones), the last
  chapters and the whiteboard. Pages are copied only when they changed since the previous
  checkpoint, and strokes still being drawn are copied, so checkpoints share finished elements.

A query copies the small trimmed checkpoint before t, folds the events after it (at most
CHECKPOINT_EVENTS) and renders the bounded view. The fold runs forward only, extended as a live
recording grows. Polls and questions older than a bounded view shows are paged from the full
state (`Recording.full_state`): rarer, and their replies are bounded too.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from classroom.core import Event, SessionState, apply, chat, history

CHECKPOINT_EVENTS = 250
_CHAT = ("chat.message", "chat.deleted")


@dataclass
class _Checkpoint:
    pos: int  # index position: events [0, pos) are folded in
    state: SessionState  # trimmed (see the module's docstring); never changed once taken
    omitted: dict[str, int]  # polls, questions, chapters left out of the trimmed state


def _copy_poll(poll: dict[str, Any]) -> dict[str, Any]:
    # The folds replace counts and each vote's list; they change the votes dict in place.
    return {**poll, "votes": dict(poll["votes"])}


def _copy_question(question: dict[str, Any]) -> dict[str, Any]:
    return {**question, "upvoters": set(question["upvoters"])}


def _open_stroke(el: dict[str, Any]) -> bool:
    """Only a stroke still being drawn changes in place (extended, ended); the rest is replaced."""
    return el.get("kind") == "stroke" and not el.get("done", False)


class Timeline:
    def __init__(self, header: dict[str, Any]) -> None:
        self.fold = SessionState(
            header["id"], header["title"], recording=header.get("recording", "on"), history=False
        )
        self.pos = 0
        self.chat_seqs: list[int] = []
        self.chat_msgs: list[dict[str, Any]] = []
        self.chat_deleted: list[int] = []  # per message: seq of the event that deleted it, or 0
        self.deletions: list[int] = []  # seqs of chat.deleted events that removed a message
        self._chat_at: dict[str, int] = {}  # message id -> position in the lists above
        self._pages: dict[str, dict[str, Any]] = {}  # the last checkpoint's page copies
        self._dirty: set[str] = set()  # pages changed since then
        # The same for participants, polls and questions: copies taken at earlier checkpoints
        # are shared by later ones until the item changes.
        self._copies: dict[str, dict[str, dict[str, Any]]] = {"people": {}, "polls": {}, "questions": {}}
        self._changed: dict[str, set[str]] = {"people": set(), "polls": set(), "questions": set()}
        self.checkpoints: list[_Checkpoint] = []
        self._scratch = SessionState(self.fold.id, self.fold.title, history=False)
        self._checkpoint()

    # -- building -------------------------------------------------------------------------------

    def extend(self, events: Iterable[tuple[Event, bool]]) -> None:
        """Fold the next events of the log (each with whether it is visible in the replay)."""
        state = self.fold
        for event, visible in events:
            if visible:
                kind = event.type
                if kind in _CHAT:
                    self._chat(event)
                    state.seq, state.t = event.seq, event.t  # the chat lives in the timeline
                else:
                    data = event.data
                    if kind.startswith("wb."):
                        self._dirty.add(data.get("page", ""))
                    elif kind.startswith(("participant.", "hand.")):
                        self._changed["people"].add(data.get("id", ""))
                    elif kind.startswith("poll."):
                        self._changed["polls"].add(data.get("poll_id", data.get("id", "")))
                    elif kind.startswith("qa."):
                        self._changed["questions"].add(data.get("id", ""))
                    elif kind == "session.ended":
                        self._changed["people"].update(state.participants)  # hands go down
                    apply(state, event)
            self.pos += 1
            if self.pos % CHECKPOINT_EVENTS == 0:
                self._checkpoint()

    def _chat(self, event: Event) -> None:
        if event.type == "chat.message":
            scratch = self._scratch
            scratch.chat, scratch.seq = {}, event.seq - 1
            apply(scratch, event)  # the chat fold itself, so the message has its usual shape
            (msg,) = scratch.chat.values()
            self._chat_at[msg["id"]] = len(self.chat_msgs)
            self.chat_seqs.append(msg["seq"])
            self.chat_msgs.append(msg)
            self.chat_deleted.append(0)
        else:
            i = self._chat_at.get(event.data["id"])
            if i is not None and not self.chat_deleted[i]:
                self.chat_deleted[i] = event.seq
                self.deletions.append(event.seq)

    def _checkpoint(self) -> None:
        s = self.fold
        cp = SessionState(s.id, s.title, s.status, s.recording, s.seq, s.t, history=False)
        cp.participants = self._share("people", s.participants, lambda p: dict(p))
        polls = history._recent_polls(s)
        cp.polls = self._share("polls", polls, _copy_poll)
        cp.drafts = dict(s.drafts)  # few (a trainer's prepared polls), never changed in place
        questions = history._last(s.questions, history.SNAPSHOT_QUESTIONS)
        cp.questions = self._share("questions", questions, _copy_question)
        cp.chapters = [dict(c) for c in s.chapters[-history.SNAPSHOT_CHAPTERS :]]
        board = s.board
        for page, items in board["pages"].items():
            if page in self._dirty or page not in self._pages:
                self._pages[page] = {k: dict(el) if _open_stroke(el) else el for k, el in items.items()}
                for el in self._pages[page].values():
                    if _open_stroke(el):
                        el["points"] = list(el["points"])
        self._dirty.clear()
        cp.board = {
            "pages": {page: self._pages[page] for page in board["pages"]},
            "current": board["current"],
            "learners_can_draw": board["learners_can_draw"],
            "index": {},
        }
        omitted = {
            "polls": len(s.polls) - len(polls),
            "questions": len(s.questions) - len(questions),
            "chapters": max(0, len(s.chapters) - history.SNAPSHOT_CHAPTERS),
        }
        self.checkpoints.append(_Checkpoint(self.pos, cp, omitted))

    def _share(self, kind: str, items: dict[str, dict[str, Any]], copy_one: Any) -> dict[str, dict[str, Any]]:
        """Checkpoint copies of `items`: the previous copy of each unchanged one, else a new copy."""
        copies, changed = self._copies[kind], self._changed[kind]
        for key, item in items.items():
            if key in changed or key not in copies:
                copies[key] = copy_one(item)
        changed.clear()
        return {key: copies[key] for key in items}

    # -- reading --------------------------------------------------------------------------------

    def checkpoint_before(self, hi: int) -> _Checkpoint:
        """The newest checkpoint at or before index position `hi`."""
        return self.checkpoints[min(hi // CHECKPOINT_EVENTS, len(self.checkpoints) - 1)]

    def base(self, cp: _Checkpoint, pages_touched: set[str]) -> SessionState:
        """A working copy of a checkpoint to fold events into: what those events may change is
        copied (the small sections, and the pages they draw on), the rest is shared."""
        src = cp.state
        work = SessionState(src.id, src.title, src.status, src.recording, src.seq, src.t, history=False)
        work.participants = {k: dict(v) for k, v in src.participants.items()}
        work.polls = {k: _copy_poll(p) for k, p in src.polls.items()}
        work.drafts = dict(src.drafts)
        work.questions = {k: _copy_question(q) for k, q in src.questions.items()}
        work.chapters = list(src.chapters)
        pages = dict(src.board["pages"])
        for page in pages_touched & pages.keys():
            items = pages[page]
            pages[page] = own = dict(items)
            for k, el in items.items():
                if _open_stroke(el):
                    own[k] = {**el, "points": list(el["points"])}
        work.board = {**src.board, "pages": pages, "index": {}}
        return work

    def fold_into(self, work: SessionState, events: Iterable[tuple[Event, bool]]) -> None:
        """Fold events after a checkpoint into its working copy (chat aside: see the timeline)."""
        for event, visible in events:
            if not visible:
                continue
            if event.type in _CHAT:
                work.seq, work.t = event.seq, event.t
            else:
                apply(work, event)

    def chat_count(self, seq: int) -> int:
        """Messages shown at `seq` (sent by then and not deleted by then)."""
        return bisect.bisect_right(self.chat_seqs, seq) - bisect.bisect_right(self.deletions, seq)

    def chat_before(self, seq: int, before: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """As of `seq`: the last `limit` messages older than `before`, in order, and whether
        more are older."""
        i = bisect.bisect_left(self.chat_seqs, min(before, seq + 1))
        out: list[dict[str, Any]] = []

        def shown(j: int) -> bool:
            gone = self.chat_deleted[j]
            return not gone or gone > seq

        while i > 0 and len(out) < limit:
            i -= 1
            if shown(i):
                out.append(self.chat_msgs[i])
        out.reverse()
        more = any(shown(j) for j in range(i - 1, -1, -1))
        return out, more

    def chat_view(
        self, messages: list[dict[str, Any]], audience: str, viewer: str | None
    ) -> list[dict[str, Any]]:
        state = SessionState("", "", history=False)
        state.chat = {m["id"]: m for m in messages}
        return chat._view(state, audience, viewer)  # type: ignore[arg-type]
