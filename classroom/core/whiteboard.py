"""The whiteboard: pages of elements (streamed freehand strokes, shapes, text), erase, clear,
per-participant undo/redo, page switching, and the trainer's switch that lets learners draw.

Coordinates are on a logical board of WB_WIDTH x WB_HEIGHT units so every screen scales the same.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from .context import Context
from .errors import CommandError
from .events import Audience, Event
from .limits import (
    WB_ELEMENTS_PER_PAGE,
    WB_ELEMENTS_PER_SESSION,
    WB_HEIGHT,
    WB_HISTORY_POINTS,
    WB_LEARNER_SHARE,
    WB_PAGES,
    WB_POINTS_PER_LEARNER,
    WB_POINTS_PER_MESSAGE,
    WB_POINTS_PER_PAGE,
    WB_POINTS_PER_SESSION,
    WB_POINTS_PER_STROKE,
    WB_TEXT_LEN,
    WB_UNDO_DEPTH,
    WB_WIDTH,
)
from .registry import TRAINER, command, folds, require
from .state import SessionState, section
from .validation import Color, Coord, Payload, Text

Width = Annotated[float, Field(ge=0.5, le=40)]
X = Annotated[Coord, Field(ge=0, le=WB_WIDTH)]
Y = Annotated[Coord, Field(ge=0, le=WB_HEIGHT)]


def _check_points(points: list[float]) -> list[float]:
    if len(points) % 2:
        raise ValueError("points are x,y pairs: the list needs an even length")
    for i, v in enumerate(points):
        if not (0 <= v <= (WB_WIDTH if i % 2 == 0 else WB_HEIGHT)):
            raise PydanticCustomError(
                "out_of_range",
                "point {n} is off the board ({w}x{h})",
                {"n": i // 2, "w": WB_WIDTH, "h": WB_HEIGHT},
            )
    return points


Points = Annotated[
    list[Coord], Field(min_length=2, max_length=2 * WB_POINTS_PER_MESSAGE), AfterValidator(_check_points)
]


class StrokeBegin(Payload):
    page_id: str | None = None
    color: Color = "#000000"
    width: Width = 3.0
    points: Points


class StrokeExtend(Payload):
    element_id: str
    points: Points


class ElementTarget(Payload):
    element_id: str


class Shape(Payload):
    page_id: str | None = None
    kind: Literal["line", "rect", "ellipse", "arrow"]
    x1: X
    y1: Y
    x2: X
    y2: Y
    color: Color = "#000000"
    width: Width = 3.0


class TextBox(Payload):
    page_id: str | None = None
    x: X
    y: Y
    text: Text(WB_TEXT_LEN)  # type: ignore[valid-type]
    color: Color = "#000000"
    size: Annotated[float, Field(ge=8, le=96)] = 24.0


class PageTarget(Payload):
    page_id: str | None = None


class Empty(Payload):
    pass


class Permit(Payload):
    learners_can_draw: bool


# -- decide ------------------------------------------------------------------------------------


def _may_draw(ctx: Context) -> None:
    require(
        ctx.is_trainer or ctx.state.board["learners_can_draw"],
        "forbidden",
        "only trainers can draw unless a trainer lets learners draw",
    )


def _spend(ctx: Context, points: int = 0) -> None:
    """Take a board token (and one per point drawn): last, once everything else about the
    command is known to be fine."""
    if points:
        ctx.limits(("board", ctx.rates.board, 1), ("points", ctx.rates.points, points))
    else:
        ctx.limit("board", ctx.rates.board)


# -- budgets: what the board may hold ------------------------------------------------------------
#
# `board["used"][page]` is [elements, points, learners' elements, learners' points] on that page now,
# `board["drawn"][learner]` the points that learner ever drew. Both are folded from the events like
# everything else, so a rebuilt server (or a replay) enforces exactly the same bounds.

ELEMENTS, POINTS, L_ELEMENTS, L_POINTS = range(4)


def weight(el: dict[str, Any]) -> int:
    """An element's size in points: what it costs in memory, in the log and in every snapshot."""
    if "points" in el:
        return len(el["points"]) // 2
    if "text" in el:
        return 1 + len(el["text"]) // 4
    return 2


def _is_learner(state: SessionState, pid: str | None) -> bool:
    p = state.participants.get(pid) if pid is not None else None
    return p is None or p["role"] != TRAINER


def _usage(state: SessionState) -> dict[str, list[int]]:
    """The per-page counters, computed once from the elements for a state saved before they existed."""
    board = state.board
    used = board.get("used")
    if used is None:
        used = board["used"] = {}
        drawn = board.setdefault("drawn", {})
        for page, items in board["pages"].items():
            counts = used[page] = [0, 0, 0, 0]
            for el in items.values():
                _count(state, counts, el.get("author"), 1, weight(el))
                if _is_learner(state, el.get("author")) and el.get("author") is not None:
                    drawn[el["author"]] = drawn.get(el["author"], 0) + weight(el)
    return used


def _count(state: SessionState, counts: list[int], author: str | None, elements: int, points: int) -> None:
    counts[ELEMENTS] += elements
    counts[POINTS] += points
    if _is_learner(state, author):
        counts[L_ELEMENTS] += elements
        counts[L_POINTS] += points


def _room(ctx: Context, page: str, elements: int, points: int, *, new: bool = True) -> None:
    """Refuse with `board_full` unless `elements`/`points` more fit on `page` and in the session
    (for a learner: within the learners' share, and within what one learner may draw)."""
    used = _usage(ctx.state)
    counts = used.get(page, [0, 0, 0, 0])
    totals = [sum(c[i] for c in used.values()) for i in range(4)]
    learner = not ctx.is_trainer
    share = WB_LEARNER_SHARE if learner else 1.0
    el_i, pt_i = (L_ELEMENTS, L_POINTS) if learner else (ELEMENTS, POINTS)
    who = "learners' drawings fill" if learner else "the drawings fill"
    checks = (
        (counts[pt_i] + points, WB_POINTS_PER_PAGE, "page", "points"),
        (totals[el_i] + elements, WB_ELEMENTS_PER_SESSION, "session", "elements"),
        (totals[pt_i] + points, WB_POINTS_PER_SESSION, "session", "points"),
    )
    for value, cap, where, unit in checks:
        if value > cap * share:
            raise CommandError(
                "board_full",
                f"{who} this {where}'s budget of {int(cap * share)} {unit}; "
                + ("clear or erase some, or add a page" if where == "page" else "clear or erase some"),
            )
    if learner and new:
        drawn = ctx.state.board["drawn"].get(ctx.actor_id, 0)
        if drawn + points > WB_POINTS_PER_LEARNER:
            raise CommandError(
                "board_full", f"you have drawn the {WB_POINTS_PER_LEARNER} points one learner may draw"
            )
    if learner and counts[L_ELEMENTS] + elements > WB_ELEMENTS_PER_PAGE * share:
        raise CommandError(
            "board_full", f"learners' drawings fill this page's {int(WB_ELEMENTS_PER_PAGE * share)} elements"
        )


def _page(ctx: Context, page_id: str | None) -> str:
    board = ctx.state.board
    page = page_id or board["current"]
    require(page in board["pages"], "not_found", f"no page {page!r}")
    return page


def _element(ctx: Context, element_id: str) -> tuple[str, dict[str, Any]]:
    page = ctx.state.board["index"].get(element_id)
    if page is None:
        raise CommandError("not_found", f"no element {element_id!r}")
    return page, ctx.state.board["pages"][page][element_id]


def _add(ctx: Context, page: str, element: dict[str, Any]) -> dict[str, Any]:
    require(
        len(ctx.state.board["pages"][page]) < WB_ELEMENTS_PER_PAGE,
        "limit_reached",
        f"a page holds at most {WB_ELEMENTS_PER_PAGE} elements; clear it or add a page",
    )
    points = weight(element)
    _room(ctx, page, 1, points)
    _spend(ctx, points)
    element_id = f"e{ctx.next_seq}"
    ctx.emit("wb.element.added", {"page": page, "element": {"id": element_id, **element}})
    return {"id": element_id}


@command("wb.stroke.begin", StrokeBegin)
def stroke_begin(ctx: Context, cmd: StrokeBegin) -> dict[str, Any]:
    _may_draw(ctx)
    element = {"kind": "stroke", "color": cmd.color, "width": cmd.width, "points": list(cmd.points)}
    return _add(ctx, _page(ctx, cmd.page_id), {**element, "done": False})


@command("wb.stroke.extend", StrokeExtend)
def stroke_extend(ctx: Context, cmd: StrokeExtend) -> None:
    _may_draw(ctx)
    page, el = _element(ctx, cmd.element_id)
    _own_stroke(ctx, el)
    require(
        len(el["points"]) + len(cmd.points) <= 2 * WB_POINTS_PER_STROKE,
        "limit_reached",
        f"a stroke has at most {WB_POINTS_PER_STROKE} points; begin a new one",
    )
    points = len(cmd.points) // 2
    _room(ctx, page, 0, points)
    _spend(ctx, points)
    ctx.emit("wb.stroke.extended", {"page": page, "id": el["id"], "points": list(cmd.points)})


@command("wb.stroke.end", ElementTarget)
def stroke_end(ctx: Context, cmd: ElementTarget) -> None:
    page, el = _element(ctx, cmd.element_id)
    _own_stroke(ctx, el)
    ctx.emit("wb.stroke.ended", {"page": page, "id": el["id"]})


def _own_stroke(ctx: Context, el: dict[str, Any]) -> None:
    require(el["author"] == ctx.actor_id, "not_owner", "that stroke belongs to someone else")
    require(el["kind"] == "stroke", "invalid_payload", "element_id: not a stroke")
    require(not el["done"], "stroke_ended", "that stroke is already finished")


@command("wb.shape", Shape)
def shape(ctx: Context, cmd: Shape) -> dict[str, Any]:
    _may_draw(ctx)
    element = cmd.model_dump(exclude={"page_id"})
    return _add(ctx, _page(ctx, cmd.page_id), element)


@command("wb.text", TextBox)
def text(ctx: Context, cmd: TextBox) -> dict[str, Any]:
    _may_draw(ctx)
    element = {"kind": "text", **cmd.model_dump(exclude={"page_id"})}
    return _add(ctx, _page(ctx, cmd.page_id), element)


@command("wb.erase", ElementTarget)
def erase(ctx: Context, cmd: ElementTarget) -> None:
    _may_draw(ctx)
    page, el = _element(ctx, cmd.element_id)
    require(
        el["author"] == ctx.actor_id or ctx.is_trainer,
        "not_owner",
        "only a trainer can erase someone else's drawing",
    )
    _spend(ctx)
    ctx.emit("wb.element.removed", {"page": page, "ids": [el["id"]], "reason": "erase"})


@command("wb.clear", PageTarget, roles=(TRAINER,))
def clear(ctx: Context, cmd: PageTarget) -> None:
    page = _page(ctx, cmd.page_id)
    ids = list(ctx.state.board["pages"][page])
    if ids:
        ctx.emit("wb.page.cleared", {"page": page, "ids": ids})


@command("wb.undo", Empty)
def undo(ctx: Context, _: Empty) -> None:
    _may_draw(ctx)
    _step(ctx, ctx.state.undo.get(ctx.actor_id, []), "undo")


@command("wb.redo", Empty)
def redo(ctx: Context, _: Empty) -> None:
    _may_draw(ctx)
    _step(ctx, ctx.state.redo.get(ctx.actor_id, []), "redo")


def _step(ctx: Context, stack: list[dict[str, Any]], reason: str) -> None:
    """Reverse the newest entry that still has an effect (others may have erased its elements)."""
    board = ctx.state.board
    for i in range(len(stack) - 1, -1, -1):
        entry = stack[i]
        page = entry["page"]
        if page not in board["pages"]:
            continue
        if (entry["op"] == "add" and reason == "undo") or (entry["op"] == "remove" and reason == "redo"):
            ids = [e["id"] for e in entry["elements"] if e["id"] in board["index"]]
            if ids:
                _spend(ctx)
                ctx.emit("wb.element.removed", {"page": page, "ids": ids, "reason": reason, "entry": i})
                return
        else:
            gone = [e for e in entry["elements"] if e["id"] not in board["index"]]
            if gone:
                require(
                    len(board["pages"][page]) + len(gone) <= WB_ELEMENTS_PER_PAGE,
                    "limit_reached",
                    f"a page holds at most {WB_ELEMENTS_PER_PAGE} elements",
                )
                _room(ctx, page, len(gone), sum(weight(e) for e in gone), new=False)
                _spend(ctx)
                ctx.emit(
                    "wb.element.restored",
                    {"page": page, "elements": [_copy(e) for e in gone], "reason": reason, "entry": i},
                )
                return
    raise CommandError("nothing_to_undo", f"nothing of yours to {reason}")


@command("wb.page.add", Empty, roles=(TRAINER,))
def page_add(ctx: Context, _: Empty) -> dict[str, Any]:
    require(len(ctx.state.board["pages"]) < WB_PAGES, "limit_reached", f"at most {WB_PAGES} pages")
    page = f"w{ctx.next_seq}"
    ctx.emit("wb.page.added", {"page": page})
    ctx.emit("wb.page.switched", {"page": page})
    return {"id": page}


@command("wb.page.switch", PageTarget, roles=(TRAINER,))
def page_switch(ctx: Context, cmd: PageTarget) -> None:
    require(cmd.page_id is not None, "invalid_payload", "page_id: field required")
    page = _page(ctx, cmd.page_id)
    if page != ctx.state.board["current"]:
        ctx.emit("wb.page.switched", {"page": page})


@command("wb.permit", Permit, roles=(TRAINER,))
def permit(ctx: Context, cmd: Permit) -> None:
    if ctx.state.board["learners_can_draw"] != cmd.learners_can_draw:
        ctx.emit("wb.permission", {"learners_can_draw": cmd.learners_can_draw})


# -- fold --------------------------------------------------------------------------------------


def _copy(el: dict[str, Any]) -> dict[str, Any]:
    out = dict(el)
    if "points" in out:
        out["points"] = list(out["points"])
    return out


def _insert(state: SessionState, page: str, elements: list[dict[str, Any]]) -> None:
    board = state.board
    items = board["pages"].setdefault(page, {})
    counts = _usage(state).setdefault(page, [0, 0, 0, 0])
    last_z = next(reversed(items.values()))["z"] if items else 0
    for el in elements:
        if el["id"] in items:
            continue  # already there (a fold must tolerate a repeat)
        items[el["id"]] = _copy(el)
        board["index"][el["id"]] = page
        _count(state, counts, el.get("author"), 1, weight(el))
    if any(el["z"] < last_z for el in elements):  # a restore goes back to its place in z-order
        board["pages"][page] = dict(sorted(items.items(), key=lambda kv: kv[1]["z"]))


def replace_page(state: SessionState, page: str, elements: list[dict[str, Any]]) -> None:
    """Put a page's elements (fetched by a client) in place of what the state held for it."""
    _remove(state, page, list(state.board["pages"].get(page, {})))
    state.board["pages"][page] = {}
    _insert(state, page, elements)


def _remove(state: SessionState, page: str, ids: list[str]) -> list[dict[str, Any]]:
    board = state.board
    items = board["pages"].get(page, {})
    removed = [items.pop(i) for i in ids if i in items]
    counts = _usage(state).setdefault(page, [0, 0, 0, 0])
    for el in removed:
        board["index"].pop(el["id"], None)
        _count(state, counts, el.get("author"), -1, -weight(el))
    return removed


def _push(stack: list[dict[str, Any]], entry: dict[str, Any]) -> None:
    """Keep at most WB_UNDO_DEPTH entries and WB_HISTORY_POINTS points (but always the newest)."""
    entry["w"] = sum(weight(e) for e in entry["elements"])
    stack.append(entry)
    if len(stack) > WB_UNDO_DEPTH:
        del stack[0]
    total = sum(e.get("w", 0) for e in stack)
    while total > WB_HISTORY_POINTS and len(stack) > 1:
        total -= stack.pop(0).get("w", 0)


def _record(state: SessionState, event: Event, op: str, page: str, elements: list[dict[str, Any]]) -> None:
    """Keep the actor's undo/redo history in step with the event (server side only)."""
    if not state.history or event.actor is None:
        return
    undo = state.undo.setdefault(event.actor, [])
    redo = state.redo.setdefault(event.actor, [])
    entry = {"op": op, "page": page, "elements": [_copy(e) for e in elements]}
    reason = event.data.get("reason")
    if reason == "undo":
        del undo[event.data["entry"] :]
        _push(redo, entry)
    elif reason == "redo":
        del redo[event.data["entry"] :]
        _push(undo, entry)
    else:
        _push(undo, entry)
        redo.clear()


@folds("wb.element.added")
def _added(state: SessionState, event: Event) -> None:
    el = {**event.data["element"], "author": event.actor, "z": event.seq}
    _insert(state, event.data["page"], [el])
    _drawn(state, event.actor, weight(el))
    _record(state, event, "add", event.data["page"], [el])


@folds("wb.stroke.extended")
def _extended(state: SessionState, event: Event) -> None:
    el = state.board["pages"].get(event.data["page"], {}).get(event.data["id"])
    if el is not None:
        el["points"].extend(event.data["points"])
        points = len(event.data["points"]) // 2
        _count(state, _usage(state).setdefault(event.data["page"], [0, 0, 0, 0]), el.get("author"), 0, points)
        _drawn(state, event.actor, points)


def _drawn(state: SessionState, actor: str | None, points: int) -> None:
    if actor is not None and _is_learner(state, actor):
        drawn = state.board.setdefault("drawn", {})
        drawn[actor] = drawn.get(actor, 0) + points


@folds("wb.stroke.ended")
def _ended(state: SessionState, event: Event) -> None:
    el = state.board["pages"].get(event.data["page"], {}).get(event.data["id"])
    if el is not None:
        el["done"] = True


@folds("wb.element.removed", "wb.page.cleared")
def _removed(state: SessionState, event: Event) -> None:
    page = event.data["page"]
    removed = _remove(state, page, event.data["ids"])
    # Undoing an add or redoing an erase leaves an "add"/"remove" entry on the other stack.
    reason = event.data.get("reason")
    op = "add" if reason == "undo" else "remove"
    _record(state, event, op, page, removed)


@folds("wb.element.restored")
def _restored(state: SessionState, event: Event) -> None:
    page = event.data["page"]
    elements = event.data["elements"]
    _insert(state, page, elements)
    op = "remove" if event.data["reason"] == "undo" else "add"
    _record(state, event, op, page, elements)


@folds("wb.page.added")
def _page_added(state: SessionState, event: Event) -> None:
    state.board["pages"][event.data["page"]] = {}
    _usage(state)[event.data["page"]] = [0, 0, 0, 0]


@folds("wb.page.switched")
def _page_switched(state: SessionState, event: Event) -> None:
    state.board["current"] = event.data["page"]


@folds("wb.permission")
def _permission(state: SessionState, event: Event) -> None:
    state.board["learners_can_draw"] = event.data["learners_can_draw"]


def _view(state: SessionState, audience: Audience, viewer: str | None) -> dict[str, Any]:
    board = state.board
    return {
        "pages": [
            {"id": page, "elements": [_copy(e) for e in items.values()]}
            for page, items in board["pages"].items()
        ],
        "current": board["current"],
        "learners_can_draw": board["learners_can_draw"],
    }


def _load(state: SessionState, view: dict[str, Any], viewer: str | None) -> None:
    state.board = {
        "pages": {},
        "current": view["current"],
        "learners_can_draw": view["learners_can_draw"],
        "index": {},
        "used": {},
        "drawn": {},
    }
    for page in view["pages"]:
        state.board["pages"][page["id"]] = {}
        _insert(state, page["id"], page["elements"])


section("board", _view, _load)
