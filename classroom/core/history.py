"""Bounded snapshots and paging: a join costs the same however long the session has run.

A join snapshot (`SessionState.view(..., bounded=True)`) carries the recent part of every section
whose size grows with history: the last chat messages, the current whiteboard page's elements
(other pages are listed with `elements: null`), the open polls and the most recent ones, the most
recent questions, the online (and muted, and most recently seen) participants and the last
chapters. `more` says how many of each were left out. Clients fetch the rest on demand with the
read-only commands below, which answer from the live state and change nothing.

Each item is rendered by its feature's own view function (over a shallow copy of the state that
holds just the items to show), so a bounded view hides exactly what the full view hides. Building
one touches only the items it shows (plus one pass over open polls and online participants), never
the whole history.

Clients fold live events on top of a bounded snapshot: events about items they do not hold are
ignored by the folds, and events on a whiteboard page they have not loaded are skipped until the
page is fetched (`apply` in state.py). A page fetched at seq S replaces the client's copy, and
events on it up to S that arrive after the reply are skipped (`load_page`).
"""

from __future__ import annotations

import bisect
import copy
import itertools
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from pydantic import Field

from . import chat, lifecycle, polls, presence, qa, whiteboard
from .errors import CommandError
from .events import Audience
from .registry import TRAINER
from .state import BOUNDED, SECTIONS, SessionState, section
from .validation import Payload, parse

# -- bounds (documented in docs/protocol.md, "Join") -------------------------------------------

SNAPSHOT_CHAT = 100  # the last chat messages
SNAPSHOT_POLLS = 20  # the most recent polls, plus up to SNAPSHOT_POLLS open ones older than those
SNAPSHOT_QUESTIONS = 50  # the most recent questions
SNAPSHOT_OFFLINE = 100  # offline participants (the most recently joined); all online and muted ones
SNAPSHOT_CHAPTERS = 100  # the last chapter marks (the replay manifest lists every one)
PAGE_LIMIT = 100  # items in one history reply at most
# What a join reply stays under, apart from the current whiteboard page (bounded by the drawing
# limits), the online participants (bounded by the connections) and trainers' per-voter poll
# `votes` (bounded by the voters): 100 messages of 2,000 characters, 50 questions with
# 2,000-character answers, 40 polls, 50 draft polls (trainers), 100 offline participants, 100
# chapters, 4 bytes a character at worst, with room for the JSON around them.
SNAPSHOT_BYTES = 3 * 1024 * 1024


def _with(state: SessionState, **fields: Any) -> SessionState:
    """A shallow copy of the state with some fields replaced: a feature's view function renders
    just these items, so the bounded view hides exactly what the full one hides."""
    proxy = copy.copy(state)
    for name, value in fields.items():
        setattr(proxy, name, value)
    return proxy


def _last(items: dict[str, dict[str, Any]], n: int) -> dict[str, dict[str, Any]]:
    """The last n entries of an insertion-ordered dict, in order, in O(n)."""
    tail = list(itertools.islice(reversed(items.items()), n))
    tail.reverse()
    return dict(tail)


# -- an index by seq of the items of a section, kept per state object -------------------------


class _SeqIndex:
    """Seqs and ids of the items a section ever held, in order. Dicts of chat messages, polls and
    questions are in seq order (items are added at the end and only ever removed), so new items
    are found by walking back from the end; removed ones stay here and are skipped on reading."""

    __slots__ = ("ids", "seqs")

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.ids: list[str] = []

    def update(self, items: dict[str, dict[str, Any]]) -> None:
        last = self.seqs[-1] if self.seqs else -1
        new = []
        for item in reversed(items.values()):
            if item["seq"] <= last:
                break
            new.append(item)
        for item in reversed(new):
            self.seqs.append(item["seq"])
            self.ids.append(item["id"])

    def before(self, items: dict[str, dict[str, Any]], seq: int, limit: int) -> tuple[list[str], bool]:
        """Ids of the last `limit` items older than `seq`, in order, and whether more are older."""
        self.update(items)
        i = bisect.bisect_left(self.seqs, seq)
        out: list[str] = []
        while i > 0 and len(out) < limit:
            i -= 1
            if self.ids[i] in items:
                out.append(self.ids[i])
        out.reverse()
        more = any(self.ids[j] in items for j in range(i - 1, -1, -1))
        return out, more


def _index(state: SessionState, name: str) -> _SeqIndex:
    # Kept beside the dataclass fields: not part of the state's value (equality, disk snapshots).
    per_state = vars(state).setdefault("_seq_index", {})
    ix = per_state.get(name)
    if ix is None:
        ix = per_state[name] = _SeqIndex()
    return ix


# -- bounded views ------------------------------------------------------------------------------


def _chat(state: SessionState, audience: Audience, viewer: str | None) -> list[dict[str, Any]]:
    return chat._view(_with(state, chat=_last(state.chat, SNAPSHOT_CHAT)), audience, viewer)


def _recent_polls(state: SessionState) -> dict[str, dict[str, Any]]:
    recent = _last(state.polls, SNAPSHOT_POLLS)
    if len(recent) < len(state.polls):
        # Open polls older than the recent ones stay in view (few: a trainer opens them).
        older_open = [p for p in state.polls.values() if p["status"] == "open" and p["id"] not in recent]
        recent = {p["id"]: p for p in older_open[-SNAPSHOT_POLLS:]} | recent
    return recent


def _polls(state: SessionState, audience: Audience, viewer: str | None) -> list[dict[str, Any]]:
    return polls._view(_with(state, polls=_recent_polls(state)), audience, viewer)


def _questions(state: SessionState, audience: Audience, viewer: str | None) -> list[dict[str, Any]]:
    return qa._view(_with(state, questions=_last(state.questions, SNAPSHOT_QUESTIONS)), audience, viewer)


def _shown_people(state: SessionState) -> dict[str, dict[str, Any]]:
    people = state.participants
    offline = 0
    keep = []
    for p in reversed(people.values()):
        if p["online"] or p["muted"]:
            keep.append(p)
        elif offline < SNAPSHOT_OFFLINE:
            offline += 1
            keep.append(p)
    if len(keep) == len(people):
        return people
    return {p["id"]: p for p in reversed(keep)}


def _participants(state: SessionState, audience: Audience, viewer: str | None) -> list[dict[str, Any]]:
    return presence._view(_with(state, participants=_shown_people(state)), audience, viewer)


def _chapters(state: SessionState, audience: Audience, viewer: str | None) -> list[dict[str, Any]]:
    return lifecycle._view(_with(state, chapters=state.chapters[-SNAPSHOT_CHAPTERS:]), audience, viewer)


def _board(state: SessionState, audience: Audience, viewer: str | None) -> dict[str, Any]:
    board = state.board
    current = board["current"]
    unloaded = board.get("unloaded", ())
    shown = {current: board["pages"].get(current, {})} if current not in unloaded else {}
    view = whiteboard._view(_with(state, board={**board, "pages": shown}), audience, viewer)
    elements = {p["id"]: p["elements"] for p in view["pages"]}
    view["pages"] = [{"id": page, "elements": elements.get(page)} for page in board["pages"]]
    return view


def _more(state: SessionState, audience: Audience, viewer: str | None) -> dict[str, int]:
    """How many of each section a bounded view leaves out (0 in a full view)."""
    return {
        "chat": max(0, len(state.chat) - SNAPSHOT_CHAT),
        "polls": len(state.polls) - len(_recent_polls(state)),
        "questions": max(0, len(state.questions) - SNAPSHOT_QUESTIONS),
        "participants": len(state.participants) - len(_shown_people(state)),
        "chapters": max(0, len(state.chapters) - SNAPSHOT_CHAPTERS),
    }


def crowd_view(
    state: SessionState, audience: Audience, viewer: str | None, shown: Iterable[str]
) -> dict[str, Any]:
    """A learner's join snapshot in a large session: the bounded view with only the participants
    in `shown` (the trainers and the viewer), so a join costs the same whatever the audience; the
    counts come with the presence summary instead. `more.participants` counts the rest."""
    people = state.participants
    few = {pid: people[pid] for pid in shown if pid in people}
    view = _with(state, participants=few).view(audience, viewer, bounded=True)
    view["more"]["participants"] = len(people) - len(few)
    return view


_NOTHING_MORE = {"chat": 0, "polls": 0, "questions": 0, "participants": 0, "chapters": 0}

BOUNDED.update(
    chat=_chat,
    polls=_polls,
    questions=_questions,
    participants=_participants,
    chapters=_chapters,
    board=_board,
    more=_more,
)

# The full view of `more` (replay exports, tests) leaves nothing out.
section("more", lambda state, audience, viewer: dict(_NOTHING_MORE), lambda state, view, viewer: None)

# A bounded board lists pages it did not send with `elements: null`: a client state loaded from
# it remembers them as not loaded (and skips their events, see `state.apply`) until fetched.
_board_view, _board_load = SECTIONS["board"]


def _load_board(state: SessionState, view: dict[str, Any], viewer: str | None) -> None:
    pages = [{"id": p["id"], "elements": p["elements"] or []} for p in view["pages"]]
    _board_load(state, {**view, "pages": pages}, viewer)
    unloaded = {p["id"] for p in view["pages"] if p["elements"] is None}
    if unloaded:
        state.board["unloaded"] = unloaded


section("board", _board_view, _load_board)


# -- folding fetched history into a client's state --------------------------------------------


def _merge(items: dict[str, dict[str, Any]], older: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Add the items not held yet, keeping seq order (a client's copy is never older)."""
    added = {k: v for k, v in older.items() if k not in items}
    if not added:
        return items
    return dict(sorted((items | added).items(), key=lambda kv: kv[1]["seq"]))


def load_page(state: SessionState, page: dict[str, Any], seq: int) -> None:
    """Put a whiteboard page fetched at `seq` into a client's state: it replaces the client's
    copy, and that page's events up to `seq` still on their way are skipped (`state.apply`)."""
    board = state.board
    page_id = page["id"]
    whiteboard.replace_page(state, page_id, page["elements"])
    unloaded = board.get("unloaded")
    if unloaded:
        unloaded.discard(page_id)
    board.setdefault("loaded", {})[page_id] = seq


def merge_reply(state: SessionState, command: str, reply: dict[str, Any], viewer: str | None) -> None:
    """Fold a history reply (acknowledged at `reply["seq"]`) into a client's state."""
    if command == "chat.history":
        state.chat = _merge(state.chat, {m["id"]: dict(m) for m in reply["messages"]})
    elif command == "poll.history":
        tmp = SessionState(state.id, state.title, history=False)
        polls._load(tmp, reply["polls"], viewer)
        state.polls = _merge(state.polls, tmp.polls)
    elif command == "qa.history":
        tmp = SessionState(state.id, state.title, history=False)
        qa._load(tmp, reply["questions"], viewer)
        state.questions = _merge(state.questions, tmp.questions)
    elif command == "board.page.get":
        load_page(state, reply["page"], reply["seq"])


# -- read-only commands -------------------------------------------------------------------------

Limit = Annotated[int, Field(ge=1, le=PAGE_LIMIT)]


class Before(Payload):
    before: Annotated[int, Field(ge=0)]  # a seq: items older than this one
    limit: Limit = 50


class PageGet(Payload):
    page_id: str


Query = Callable[[SessionState, Audience, str | None, Any], dict[str, Any]]
QUERIES: dict[str, tuple[type[Payload], Query]] = {}


def query(name: str, model: type[Payload]) -> Callable[[Query], Query]:
    def register(fn: Query) -> Query:
        QUERIES[name] = (model, fn)
        return fn

    return register


@query("chat.history", Before)
def chat_history(state: SessionState, audience: Audience, viewer: str | None, cmd: Before) -> dict[str, Any]:
    ids, more = _index(state, "chat").before(state.chat, cmd.before, cmd.limit)
    shown = {i: state.chat[i] for i in ids}
    return {"messages": chat._view(_with(state, chat=shown), audience, viewer), "more": more}


@query("poll.history", Before)
def poll_history(state: SessionState, audience: Audience, viewer: str | None, cmd: Before) -> dict[str, Any]:
    ids, more = _index(state, "polls").before(state.polls, cmd.before, cmd.limit)
    shown = {i: state.polls[i] for i in ids}
    return {"polls": polls._view(_with(state, polls=shown), audience, viewer), "more": more}


@query("qa.history", Before)
def qa_history(state: SessionState, audience: Audience, viewer: str | None, cmd: Before) -> dict[str, Any]:
    ids, more = _index(state, "questions").before(state.questions, cmd.before, cmd.limit)
    shown = {i: state.questions[i] for i in ids}
    out = qa._view(_with(state, questions=shown), audience, viewer)
    out.sort(key=lambda q: q["seq"])
    return {"questions": out, "more": more}


@query("board.page.get", PageGet)
def page_get(state: SessionState, audience: Audience, viewer: str | None, cmd: PageGet) -> dict[str, Any]:
    board = state.board
    if cmd.page_id not in board["pages"]:
        raise CommandError("not_found", f"no page {cmd.page_id[:60]!r}")
    shown = {**board, "pages": {cmd.page_id: board["pages"][cmd.page_id]}}
    view = whiteboard._view(_with(state, board=shown), audience, viewer)
    return {"page": view["pages"][0]}


def run_query(state: SessionState, pid: str, name: str, payload: Any) -> dict[str, Any] | None:
    """Answer a read-only command, or None when `name` is not one. Any participant may read, in
    any session status (an ended session's history too); nothing changes."""
    entry = QUERIES.get(name)
    if entry is None:
        return None
    actor = state.participants.get(pid)
    if actor is None:
        raise CommandError("not_joined", "join the session first")
    model, fn = entry
    audience: Audience = TRAINER if actor["role"] == TRAINER else "learner"
    return fn(state, audience, pid, parse(model, payload))
