"""The whiteboard: strokes, shapes, text, erase, clear, undo/redo, pages, permission and limits."""

from __future__ import annotations

from typing import Any

import pytest

import classroom.core.whiteboard as wb

from .conftest import L1, L2, TRAINER_ID, Harness

LINE = {"kind": "line", "x1": 0, "y1": 0, "x2": 800, "y2": 450}


def begin(h: Harness, pid: str, points: list[float], **kw: Any) -> str:
    return h.run(pid, "wb.stroke.begin", {"points": points, **kw}).reply["id"]


def shape(h: Harness, pid: str = TRAINER_ID, **kw: Any) -> str:
    return h.run(pid, "wb.shape", {**LINE, **kw}).reply["id"]


def board(h: Harness) -> dict[str, Any]:
    return h.state.view("learner", L1)["board"]


def elements(h: Harness, page: str = "w1") -> list[dict[str, Any]]:
    (p,) = [p for p in board(h)["pages"] if p["id"] == page]
    return p["elements"]


@pytest.fixture
def drawing(h: Harness) -> Harness:
    """Learners may draw."""
    h.run(TRAINER_ID, "wb.permit", {"learners_can_draw": True})
    return h


def test_empty_board():
    from classroom.core import SessionState

    assert SessionState("s", "T").view("learner")["board"] == {
        "pages": [{"id": "w1", "elements": []}],
        "current": "w1",
        "learners_can_draw": False,
    }


# -- strokes ---------------------------------------------------------------------------------


def test_stroke_begin_extend_end_grows_points(h: Harness):
    out = h.run(TRAINER_ID, "wb.stroke.begin", {"points": [1, 2, 3, 4], "color": "#ff0000", "width": 5})
    (event,) = out.events
    eid = out.reply["id"]
    assert eid == f"e{event.seq}"
    assert event.type == "wb.element.added"
    assert event.data == {
        "page": "w1",
        "element": {
            "id": eid,
            "kind": "stroke",
            "color": "#ff0000",
            "width": 5,
            "points": [1, 2, 3, 4],
            "done": False,
        },
    }
    out = h.run(TRAINER_ID, "wb.stroke.extend", {"element_id": eid, "points": [5, 6]})
    assert [(e.type, e.data) for e in out.events] == [
        ("wb.stroke.extended", {"page": "w1", "id": eid, "points": [5, 6]})
    ]
    h.run(TRAINER_ID, "wb.stroke.extend", {"element_id": eid, "points": [7.5, 8.5, 800, 450]})
    out = h.run(TRAINER_ID, "wb.stroke.end", {"element_id": eid})
    assert [(e.type, e.data) for e in out.events] == [("wb.stroke.ended", {"page": "w1", "id": eid})]
    assert elements(h) == [
        {
            "id": eid,
            "kind": "stroke",
            "color": "#ff0000",
            "width": 5,
            "points": [1, 2, 3, 4, 5, 6, 7.5, 8.5, 800, 450],
            "done": True,
            "author": TRAINER_ID,
            "z": event.seq,
        }
    ]


def test_extending_someone_elses_stroke_is_not_owner(drawing: Harness):
    h = drawing
    eid = begin(h, L1, [1, 1])
    h.refuse(L2, "wb.stroke.extend", {"element_id": eid, "points": [2, 2]}, "not_owner")
    h.refuse(TRAINER_ID, "wb.stroke.extend", {"element_id": eid, "points": [2, 2]}, "not_owner")
    h.refuse(L2, "wb.stroke.end", {"element_id": eid}, "not_owner")
    assert elements(h)[0]["points"] == [1, 1]


def test_extend_or_end_after_end_is_stroke_ended(h: Harness):
    eid = begin(h, TRAINER_ID, [1, 1])
    h.run(TRAINER_ID, "wb.stroke.end", {"element_id": eid})
    h.refuse(TRAINER_ID, "wb.stroke.extend", {"element_id": eid, "points": [2, 2]}, "stroke_ended")
    h.refuse(TRAINER_ID, "wb.stroke.end", {"element_id": eid}, "stroke_ended")


def test_extend_a_shape_is_invalid(h: Harness):
    sid = shape(h)
    h.refuse(TRAINER_ID, "wb.stroke.extend", {"element_id": sid, "points": [2, 2]}, "invalid_payload")
    h.refuse(TRAINER_ID, "wb.stroke.end", {"element_id": sid}, "invalid_payload")


def test_extend_unknown_element(h: Harness):
    h.refuse(TRAINER_ID, "wb.stroke.extend", {"element_id": "e404", "points": [2, 2]}, "not_found")
    h.refuse(TRAINER_ID, "wb.stroke.end", {"element_id": "e404"}, "not_found")


@pytest.mark.parametrize(
    "points, code",
    [
        ([1, 2, 3], "invalid_payload"),  # odd length
        ([801, 2], "out_of_range"),  # x off the board
        ([1, 451], "out_of_range"),  # y off the board
        ([-0.5, 2], "out_of_range"),
        ([1, float("nan")], "invalid_payload"),
        ([float("inf"), 1], "invalid_payload"),
        ([1, "2"], "invalid_payload"),
        ([1], "out_of_range"),  # fewer than one pair
        ([], "out_of_range"),
        ([1.0] * 1002, "out_of_range"),  # more than 500 pairs in one message
    ],
)
def test_bad_points(h: Harness, points: list[Any], code: str):
    h.refuse(TRAINER_ID, "wb.stroke.begin", {"points": points}, code)
    eid = begin(h, TRAINER_ID, [0, 0])
    h.refuse(TRAINER_ID, "wb.stroke.extend", {"element_id": eid, "points": points}, code)


def test_board_corners_are_on_the_board(h: Harness):
    eid = begin(h, TRAINER_ID, [0, 0, 800, 450, 800, 0, 0, 450])
    assert elements(h)[0]["id"] == eid


@pytest.mark.parametrize(
    "payload, code",
    [
        ({**LINE, "x2": 800.5}, "out_of_range"),
        ({**LINE, "y1": -1}, "out_of_range"),
        ({**LINE, "kind": "circle"}, "invalid_payload"),
        ({**LINE, "color": "red"}, "invalid_payload"),
        ({**LINE, "width": 0.4}, "out_of_range"),
        ({**LINE, "width": 41}, "out_of_range"),
        ({**LINE, "x1": float("nan")}, "invalid_payload"),
    ],
)
def test_bad_shapes(h: Harness, payload: dict[str, Any], code: str):
    h.refuse(TRAINER_ID, "wb.shape", payload, code)


def test_shape_and_text_elements(h: Harness):
    sid = shape(h, kind="ellipse", color="#00FF00", width=2.5)
    out = h.run(TRAINER_ID, "wb.text", {"x": 10, "y": 20, "text": "  Hello\x01 ", "size": 12})
    tid = out.reply["id"]
    assert [e["id"] for e in elements(h)] == [sid, tid]
    s, t = elements(h)
    assert {k: s[k] for k in ("kind", "x1", "y1", "x2", "y2", "color", "width", "author")} == {
        "kind": "ellipse",
        "x1": 0,
        "y1": 0,
        "x2": 800,
        "y2": 450,
        "color": "#00FF00",
        "width": 2.5,
        "author": TRAINER_ID,
    }
    assert {k: t[k] for k in ("kind", "x", "y", "text", "size", "color")} == {
        "kind": "text",
        "x": 10,
        "y": 20,
        "text": "Hello",
        "size": 12,
        "color": "#000000",
    }
    h.refuse(TRAINER_ID, "wb.text", {"x": 1, "y": 1, "text": "x" * 501}, "too_long")
    h.refuse(TRAINER_ID, "wb.text", {"x": 1, "y": 1, "text": "hi", "size": 97}, "out_of_range")


# -- permission --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, payload",
    [
        ("wb.stroke.begin", {"points": [1, 1]}),
        ("wb.shape", LINE),
        ("wb.text", {"x": 1, "y": 1, "text": "hi"}),
        ("wb.undo", {}),
        ("wb.redo", {}),
    ],
)
def test_learners_cannot_draw_until_permitted(h: Harness, name: str, payload: dict[str, Any]):
    h.refuse(L1, name, payload, "forbidden")


def test_permit_lets_learners_draw_and_revoking_stops_them(h: Harness):
    h.refuse(L1, "wb.stroke.begin", {"points": [1, 1]}, "forbidden")
    out = h.run(TRAINER_ID, "wb.permit", {"learners_can_draw": True})
    assert [(e.type, e.data) for e in out.events] == [("wb.permission", {"learners_can_draw": True})]
    assert board(h)["learners_can_draw"] is True
    assert h.run(TRAINER_ID, "wb.permit", {"learners_can_draw": True}).events == []
    eid = begin(h, L1, [1, 1])
    h.run(L1, "wb.stroke.extend", {"element_id": eid, "points": [2, 2]})
    h.run(TRAINER_ID, "wb.permit", {"learners_can_draw": False})
    h.refuse(L1, "wb.stroke.extend", {"element_id": eid, "points": [3, 3]}, "forbidden")
    h.refuse(L1, "wb.erase", {"element_id": eid}, "forbidden")
    assert elements(h)[0]["points"] == [1, 1, 2, 2]
    h.refuse(TRAINER_ID, "wb.permit", {"learners_can_draw": "yes"}, "invalid_payload")
    h.refuse(TRAINER_ID, "wb.permit", {}, "invalid_payload")


# -- erase and clear -----------------------------------------------------------------------------


def test_learner_erasing_the_trainers_element_is_not_owner(drawing: Harness):
    h = drawing
    sid = shape(h, TRAINER_ID)
    other = shape(h, L2)
    h.refuse(L1, "wb.erase", {"element_id": sid}, "not_owner")
    h.refuse(L1, "wb.erase", {"element_id": other}, "not_owner")
    assert [e["id"] for e in elements(h)] == [sid, other]


def test_learner_erases_own_and_trainer_erases_anyones(drawing: Harness):
    h = drawing
    a = shape(h, L1)
    b = shape(h, L2)
    c = shape(h, TRAINER_ID)
    out = h.run(L1, "wb.erase", {"element_id": a})
    assert [(e.type, e.actor, e.data) for e in out.events] == [
        ("wb.element.removed", L1, {"page": "w1", "ids": [a], "reason": "erase"})
    ]
    h.run(TRAINER_ID, "wb.erase", {"element_id": b})
    assert [e["id"] for e in elements(h)] == [c]
    h.refuse(TRAINER_ID, "wb.erase", {"element_id": b}, "not_found")


def test_clear_removes_every_element_of_the_page(drawing: Harness):
    h = drawing
    ids = [shape(h, L1), shape(h, TRAINER_ID), begin(h, L2, [1, 1])]
    out = h.run(TRAINER_ID, "wb.clear", {})
    assert [(e.type, e.data) for e in out.events] == [("wb.page.cleared", {"page": "w1", "ids": ids})]
    assert elements(h) == []
    assert h.state.board["index"] == {}
    # Clearing an empty page emits nothing; the strokes are gone for their authors too.
    assert h.run(TRAINER_ID, "wb.clear", {}).events == []
    h.refuse(L2, "wb.stroke.extend", {"element_id": ids[2], "points": [2, 2]}, "not_found")
    h.refuse(TRAINER_ID, "wb.clear", {"page_id": "w404"}, "not_found")


# -- undo / redo ---------------------------------------------------------------------------------


def test_nothing_to_undo_or_redo(drawing: Harness):
    h = drawing
    h.refuse(TRAINER_ID, "wb.undo", {}, "nothing_to_undo")
    h.refuse(TRAINER_ID, "wb.redo", {}, "nothing_to_undo")
    shape(h, L1)
    # Someone else's history is not mine.
    h.refuse(TRAINER_ID, "wb.undo", {}, "nothing_to_undo")
    h.refuse(L2, "wb.undo", {}, "nothing_to_undo")


def test_undo_redo_of_an_add_restores_exactly(drawing: Harness):
    h = drawing
    shape(h, TRAINER_ID)
    before = h.state.view("trainer")["board"]
    sid = shape(h, TRAINER_ID, kind="rect")
    after = h.state.view("trainer")["board"]
    out = h.run(TRAINER_ID, "wb.undo", {})
    assert [(e.type, e.data) for e in out.events] == [
        ("wb.element.removed", {"page": "w1", "ids": [sid], "reason": "undo", "entry": 1})
    ]
    assert h.state.view("trainer")["board"] == before
    out = h.run(TRAINER_ID, "wb.redo", {})
    assert [e.type for e in out.events] == ["wb.element.restored"]
    assert out.events[0].data["reason"] == "redo"
    assert h.state.view("trainer")["board"] == after
    # Undo twice then redo twice walks the history both ways.
    h.run(TRAINER_ID, "wb.undo", {})
    h.run(TRAINER_ID, "wb.undo", {})
    assert elements(h) == []
    h.refuse(TRAINER_ID, "wb.undo", {}, "nothing_to_undo")
    h.run(TRAINER_ID, "wb.redo", {})
    assert h.state.view("trainer")["board"] == before
    h.run(TRAINER_ID, "wb.redo", {})
    assert h.state.view("trainer")["board"] == after
    h.refuse(TRAINER_ID, "wb.redo", {}, "nothing_to_undo")


def test_undo_of_an_extended_stroke_and_redo_brings_all_points_back(h: Harness):
    eid = begin(h, TRAINER_ID, [1, 1])
    h.run(TRAINER_ID, "wb.stroke.extend", {"element_id": eid, "points": [2, 2, 3, 3]})
    h.run(TRAINER_ID, "wb.stroke.end", {"element_id": eid})
    full = h.state.view("trainer")["board"]
    h.run(TRAINER_ID, "wb.undo", {})
    assert elements(h) == []
    h.run(TRAINER_ID, "wb.redo", {})
    assert h.state.view("trainer")["board"] == full
    assert elements(h)[0]["points"] == [1, 1, 2, 2, 3, 3]
    assert elements(h)[0]["done"] is True


def test_undo_erase_restores_in_place_and_redo_erases_again(h: Harness):
    a, b, c = shape(h), shape(h, kind="rect"), shape(h, kind="arrow")
    before = h.state.view("trainer")["board"]
    h.run(TRAINER_ID, "wb.erase", {"element_id": b})
    erased = h.state.view("trainer")["board"]
    assert [e["id"] for e in elements(h)] == [a, c]
    out = h.run(TRAINER_ID, "wb.undo", {})
    assert [e.type for e in out.events] == ["wb.element.restored"]
    assert out.events[0].data["reason"] == "undo"
    assert h.state.view("trainer")["board"] == before  # back between a and c
    assert [e["id"] for e in elements(h)] == [a, b, c]
    out = h.run(TRAINER_ID, "wb.redo", {})
    assert out.events[0].data == {"page": "w1", "ids": [b], "reason": "redo", "entry": 0}
    assert h.state.view("trainer")["board"] == erased


def test_undo_clear_restores_everyones_elements(drawing: Harness):
    h = drawing
    shape(h, L1)
    shape(h, TRAINER_ID)
    begin(h, L2, [5, 5])
    before = h.state.view("trainer")["board"]
    h.run(TRAINER_ID, "wb.clear", {})
    cleared = h.state.view("trainer")["board"]
    h.run(TRAINER_ID, "wb.undo", {})
    assert h.state.view("trainer")["board"] == before
    h.run(TRAINER_ID, "wb.redo", {})
    assert h.state.view("trainer")["board"] == cleared
    h.run(TRAINER_ID, "wb.undo", {})
    assert h.state.view("trainer")["board"] == before
    # The learners' own histories still work on the restored elements.
    h.run(L2, "wb.undo", {})
    assert [e["author"] for e in elements(h)] == [L1, TRAINER_ID]


def test_undo_leaves_other_participants_actions_alone(drawing: Harness):
    h = drawing
    mine = shape(h, TRAINER_ID)
    theirs = shape(h, L1)
    h.run(TRAINER_ID, "wb.undo", {})
    assert [e["id"] for e in elements(h)] == [theirs]
    h.run(L1, "wb.undo", {})
    assert elements(h) == []
    h.run(TRAINER_ID, "wb.redo", {})
    assert [e["id"] for e in elements(h)] == [mine]
    h.run(L1, "wb.redo", {})
    assert [e["id"] for e in elements(h)] == [mine, theirs]


def test_undo_of_erase_between_others_actions(drawing: Harness):
    h = drawing
    a = shape(h, L1)
    h.run(L1, "wb.erase", {"element_id": a})
    b = shape(h, L2)  # someone else's later action
    h.run(L1, "wb.undo", {})  # undoes L1's erase, not L2's add
    assert [e["id"] for e in elements(h)] == [a, b]
    h.run(L1, "wb.undo", {})  # then L1's add
    assert [e["id"] for e in elements(h)] == [b]


def test_undo_skips_own_entries_that_others_already_erased(drawing: Harness):
    h = drawing
    first = shape(h, L1)
    second = shape(h, L1)
    h.run(TRAINER_ID, "wb.erase", {"element_id": second})
    out = h.run(L1, "wb.undo", {})
    assert out.events[0].data == {"page": "w1", "ids": [first], "reason": "undo", "entry": 0}
    assert elements(h) == []
    # The undone entry and the dead one above it leave the history; the redo stack holds the add.
    assert h.state.undo[L1] == []
    assert [(e["op"], [el["id"] for el in e["elements"]]) for e in h.state.redo[L1]] == [("add", [first])]
    # The trainer's own undo brings their erase back: the second element returns.
    h.run(TRAINER_ID, "wb.undo", {})
    assert [e["id"] for e in elements(h)] == [second]


def test_a_new_action_clears_the_redo_history(h: Harness):
    shape(h)
    h.run(TRAINER_ID, "wb.undo", {})
    shape(h, kind="rect")
    h.refuse(TRAINER_ID, "wb.redo", {}, "nothing_to_undo")
    assert [e["kind"] for e in elements(h)] == ["rect"]


def test_undo_history_is_bounded(h: Harness, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(wb, "WB_UNDO_DEPTH", 2)
    a = shape(h)
    shape(h)
    shape(h)
    h.run(TRAINER_ID, "wb.undo", {})
    h.run(TRAINER_ID, "wb.undo", {})
    h.refuse(TRAINER_ID, "wb.undo", {}, "nothing_to_undo")
    assert [e["id"] for e in elements(h)] == [a]


# -- pages ---------------------------------------------------------------------------------------


def test_page_add_and_switch(h: Harness):
    first = shape(h)
    out = h.run(TRAINER_ID, "wb.page.add", {})
    added, switched = out.events
    page = out.reply["id"]
    assert page == f"w{added.seq}"
    assert (added.type, added.data) == ("wb.page.added", {"page": page})
    assert (switched.type, switched.data) == ("wb.page.switched", {"page": page})
    assert board(h)["current"] == page
    assert [p["id"] for p in board(h)["pages"]] == ["w1", page]
    # New drawings go to the current page unless a page is named.
    second = shape(h)
    third = shape(h, page_id="w1")
    assert [e["id"] for e in elements(h, page)] == [second]
    assert [e["id"] for e in elements(h, "w1")] == [first, third]
    out = h.run(TRAINER_ID, "wb.page.switch", {"page_id": "w1"})
    assert [(e.type, e.data) for e in out.events] == [("wb.page.switched", {"page": "w1"})]
    assert board(h)["current"] == "w1"
    assert h.run(TRAINER_ID, "wb.page.switch", {"page_id": "w1"}).events == []
    h.refuse(TRAINER_ID, "wb.page.switch", {"page_id": "w404"}, "not_found")
    h.refuse(TRAINER_ID, "wb.page.switch", {}, "invalid_payload")
    h.refuse(TRAINER_ID, "wb.shape", {**LINE, "page_id": "w404"}, "not_found")
    # Clearing one page leaves the other alone, and erase finds elements on any page.
    h.run(TRAINER_ID, "wb.clear", {"page_id": page})
    assert elements(h, page) == []
    h.run(TRAINER_ID, "wb.erase", {"element_id": third})
    assert [e["id"] for e in elements(h, "w1")] == [first]


def test_page_limit(h: Harness, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(wb, "WB_PAGES", 3)
    h.run(TRAINER_ID, "wb.page.add", {})
    h.run(TRAINER_ID, "wb.page.add", {})
    h.refuse(TRAINER_ID, "wb.page.add", {}, "limit_reached")
    assert len(board(h)["pages"]) == 3


# -- limits --------------------------------------------------------------------------------------


def test_elements_per_page_limit(drawing: Harness, monkeypatch: pytest.MonkeyPatch):
    h = drawing
    monkeypatch.setattr(wb, "WB_ELEMENTS_PER_PAGE", 3)
    shape(h)
    begin(h, L1, [1, 1])
    h.run(L2, "wb.text", {"x": 1, "y": 1, "text": "third"})
    h.refuse(TRAINER_ID, "wb.shape", LINE, "limit_reached")
    h.refuse(L1, "wb.stroke.begin", {"points": [1, 1]}, "limit_reached")
    h.refuse(L2, "wb.text", {"x": 1, "y": 1, "text": "fourth"}, "limit_reached")
    # Another page has room.
    page = h.run(TRAINER_ID, "wb.page.add", {}).reply["id"]
    shape(h)
    assert len(elements(h, page)) == 1
    assert len(elements(h, "w1")) == 3


def test_restore_respects_the_page_limit(drawing: Harness, monkeypatch: pytest.MonkeyPatch):
    h = drawing
    monkeypatch.setattr(wb, "WB_ELEMENTS_PER_PAGE", 2)
    a = shape(h)
    shape(h)
    h.run(TRAINER_ID, "wb.erase", {"element_id": a})
    shape(h, L1)  # the page is full again
    h.refuse(TRAINER_ID, "wb.undo", {}, "limit_reached")
    h.run(L1, "wb.undo", {})
    h.run(TRAINER_ID, "wb.undo", {})
    assert a in [e["id"] for e in elements(h)]


def test_points_per_stroke_limit(h: Harness, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(wb, "WB_POINTS_PER_STROKE", 3)
    eid = begin(h, TRAINER_ID, [1, 1, 2, 2])
    h.run(TRAINER_ID, "wb.stroke.extend", {"element_id": eid, "points": [3, 3]})
    h.refuse(TRAINER_ID, "wb.stroke.extend", {"element_id": eid, "points": [4, 4]}, "limit_reached")
    assert elements(h)[0]["points"] == [1, 1, 2, 2, 3, 3]


def test_board_rate_limit_applies_to_learners_only(drawing: Harness):
    h = drawing
    t0 = 1_000_000
    for i in range(120):
        h.run(L1, "wb.shape", {**LINE, "x1": i}, t=t0)
    h.refuse(L1, "wb.shape", LINE, "rate_limited", t=t0)
    for _ in range(130):
        h.run(TRAINER_ID, "wb.shape", LINE, t=t0)
    h.run(L1, "wb.shape", LINE, t=t0 + 10)  # 120 per second: a token every ~8.3 ms
