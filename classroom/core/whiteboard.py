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
    WB_HEIGHT,
    WB_PAGES,
    WB_POINTS_PER_MESSAGE,
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


def _spend(ctx: Context) -> None:
    """Take a board token: last, once everything else about the command is known to be fine."""
    ctx.limit("board", ctx.rates.board)


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
    _spend(ctx)
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
    _spend(ctx)
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


def _insert(board: dict[str, Any], page: str, elements: list[dict[str, Any]]) -> None:
    items = board["pages"].setdefault(page, {})
    last_z = next(reversed(items.values()))["z"] if items else 0
    for el in elements:
        items[el["id"]] = _copy(el)
        board["index"][el["id"]] = page
    if any(el["z"] < last_z for el in elements):  # a restore goes back to its place in z-order
        board["pages"][page] = dict(sorted(items.items(), key=lambda kv: kv[1]["z"]))


def _remove(board: dict[str, Any], page: str, ids: list[str]) -> list[dict[str, Any]]:
    items = board["pages"].get(page, {})
    removed = [items.pop(i) for i in ids if i in items]
    for el in removed:
        board["index"].pop(el["id"], None)
    return removed


def _push(stack: list[dict[str, Any]], entry: dict[str, Any]) -> None:
    stack.append(entry)
    if len(stack) > WB_UNDO_DEPTH:
        del stack[0]


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
    _insert(state.board, event.data["page"], [el])
    _record(state, event, "add", event.data["page"], [el])


@folds("wb.stroke.extended")
def _extended(state: SessionState, event: Event) -> None:
    el = state.board["pages"].get(event.data["page"], {}).get(event.data["id"])
    if el is not None:
        el["points"].extend(event.data["points"])


@folds("wb.stroke.ended")
def _ended(state: SessionState, event: Event) -> None:
    el = state.board["pages"].get(event.data["page"], {}).get(event.data["id"])
    if el is not None:
        el["done"] = True


@folds("wb.element.removed", "wb.page.cleared")
def _removed(state: SessionState, event: Event) -> None:
    page = event.data["page"]
    removed = _remove(state.board, page, event.data["ids"])
    # Undoing an add or redoing an erase leaves an "add"/"remove" entry on the other stack.
    reason = event.data.get("reason")
    op = "add" if reason == "undo" else "remove"
    _record(state, event, op, page, removed)


@folds("wb.element.restored")
def _restored(state: SessionState, event: Event) -> None:
    page = event.data["page"]
    elements = event.data["elements"]
    _insert(state.board, page, elements)
    op = "remove" if event.data["reason"] == "undo" else "add"
    _record(state, event, op, page, elements)


@folds("wb.page.added")
def _page_added(state: SessionState, event: Event) -> None:
    state.board["pages"][event.data["page"]] = {}


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
    board = {
        "pages": {},
        "current": view["current"],
        "learners_can_draw": view["learners_can_draw"],
        "index": {},
    }
    for page in view["pages"]:
        board["pages"][page["id"]] = {}
        _insert(board, page["id"], page["elements"])
    state.board = board


section("board", _view, _load)
