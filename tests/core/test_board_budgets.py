"""What one participant and one session may draw: points per second, and elements and points per
page, per session and per learner, folded in the state so a rebuilt server enforces the same."""

from __future__ import annotations

from typing import Any

import pytest

import classroom.core.whiteboard as wb
from classroom.core import SessionCore, SessionState, apply
from classroom.core.limits import Rates
from recorder.codec import dump_state, load_state

from .conftest import L1, L2, SESSION_ID, TITLE, TRAINER_ID, Harness, replay

LINE = {"kind": "line", "x1": 0, "y1": 0, "x2": 800, "y2": 450}


def pts(n: int) -> list[float]:
    return [v for i in range(n) for v in (float(i % 800), float(i % 450))]


@pytest.fixture
def drawing(h: Harness) -> Harness:
    h.run(TRAINER_ID, "wb.permit", {"learners_can_draw": True})
    return h


def stroke(h: Harness, pid: str, n: int, t: int | None = None, **kw: Any) -> str:
    return h.run(pid, "wb.stroke.begin", {"points": pts(n), **kw}, t=t).reply["id"]


def test_points_per_second_per_learner(drawing: Harness):
    h = drawing
    t0 = 1_000_000
    burst = Rates().points.burst
    for _ in range(burst // 500):
        stroke(h, L1, 500, t=t0)
    h.refuse(L1, "wb.stroke.begin", {"points": pts(1)}, "rate_limited", t=t0)
    # The refusal spent nothing, the other learner has a bucket of their own, the trainer none.
    h.refuse(L1, "wb.stroke.begin", {"points": pts(1)}, "rate_limited", t=t0)
    stroke(h, L2, 500, t=t0)
    for _ in range(20):
        stroke(h, TRAINER_ID, 500, t=t0)
    stroke(h, L1, 30, t=t0 + 10)  # 3000 a second: 30 points every 10 ms


def test_an_extension_spends_points_too(drawing: Harness):
    h = drawing
    t0 = 1_000_000
    eid = stroke(h, L1, 500, t=t0)
    for _ in range(Rates().points.burst // 500 - 1):
        h.run(L1, "wb.stroke.extend", {"element_id": eid, "points": pts(500)}, t=t0)
    h.refuse(L1, "wb.stroke.extend", {"element_id": eid, "points": pts(1)}, "rate_limited", t=t0)


def test_learners_fill_at_most_their_share_of_a_page_and_the_trainer_still_draws(
    drawing: Harness, monkeypatch: pytest.MonkeyPatch
):
    h = drawing
    monkeypatch.setattr(wb, "WB_POINTS_PER_PAGE", 100)
    stroke(h, L1, 40)
    stroke(h, L2, 35)
    err = h.refuse(L1, "wb.stroke.begin", {"points": pts(1)}, "board_full")
    assert "75" in err.message
    eid = stroke(h, TRAINER_ID, 20)
    h.run(TRAINER_ID, "wb.stroke.extend", {"element_id": eid, "points": pts(5)})
    h.refuse(TRAINER_ID, "wb.shape", LINE, "board_full")  # 100 points: full for everyone
    # Erasing gives room back; another page has its own budget.
    h.run(TRAINER_ID, "wb.erase", {"element_id": eid})
    h.run(TRAINER_ID, "wb.shape", LINE)
    h.run(TRAINER_ID, "wb.page.add", {})
    stroke(h, L1, 20)


def test_session_budgets_over_all_pages(drawing: Harness, monkeypatch: pytest.MonkeyPatch):
    h = drawing
    monkeypatch.setattr(wb, "WB_POINTS_PER_SESSION", 200)
    monkeypatch.setattr(wb, "WB_ELEMENTS_PER_SESSION", 8)
    stroke(h, L1, 100)
    h.run(TRAINER_ID, "wb.page.add", {})
    stroke(h, L2, 50)  # 150 = the learners' share of 200 points
    h.refuse(L2, "wb.shape", LINE, "board_full")
    stroke(h, TRAINER_ID, 50)
    h.refuse(TRAINER_ID, "wb.stroke.begin", {"points": pts(1)}, "board_full")
    h.run(TRAINER_ID, "wb.clear", {"page_id": "w1"})
    for _ in range(5):  # with the stroke on the second page, the learners' share of 8 elements
        h.run(L1, "wb.shape", LINE)
    h.refuse(L1, "wb.shape", LINE, "board_full")


def test_learners_fill_at_most_their_share_of_a_pages_elements(
    drawing: Harness, monkeypatch: pytest.MonkeyPatch
):
    h = drawing
    monkeypatch.setattr(wb, "WB_ELEMENTS_PER_PAGE", 4)
    for _ in range(3):
        h.run(L1, "wb.shape", LINE)
    h.refuse(L2, "wb.shape", LINE, "board_full")
    h.run(TRAINER_ID, "wb.shape", LINE)


def test_what_one_learner_draws_is_bounded_and_erasing_gives_nothing_back(
    drawing: Harness, monkeypatch: pytest.MonkeyPatch
):
    h = drawing
    monkeypatch.setattr(wb, "WB_POINTS_PER_LEARNER", 100)
    eid = stroke(h, L1, 60)
    h.run(L1, "wb.stroke.extend", {"element_id": eid, "points": pts(40)})
    h.run(L1, "wb.erase", {"element_id": eid})
    err = h.refuse(L1, "wb.stroke.begin", {"points": pts(1)}, "board_full")
    assert "one learner" in err.message
    stroke(h, L2, 60)  # someone else's budget
    # Undo brings back what was drawn without drawing anew.
    h.run(L1, "wb.undo", {})
    assert eid in h.state.board["index"]


def test_undo_history_is_bounded_in_points(h: Harness, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(wb, "WB_HISTORY_POINTS", 250)
    ids = [stroke(h, TRAINER_ID, 100) for _ in range(4)]
    stack = h.state.undo[TRAINER_ID]
    assert [e["elements"][0]["id"] for e in stack] == ids[2:]
    assert sum(e["w"] for e in stack) <= 250
    h.run(TRAINER_ID, "wb.clear", {})  # one entry of 400 points: kept alone, it is the newest
    assert [e["w"] for e in h.state.undo[TRAINER_ID]] == [400]
    h.run(TRAINER_ID, "wb.undo", {})
    assert sorted(h.state.board["index"]) == sorted(ids)


def usage(state: SessionState) -> Any:
    return wb._usage(state), state.board["drawn"]


def test_the_counters_are_a_fold_a_rebuilt_server_enforces_the_same(
    drawing: Harness, monkeypatch: pytest.MonkeyPatch
):
    h = drawing
    monkeypatch.setattr(wb, "WB_POINTS_PER_LEARNER", 100)
    a = stroke(h, L1, 50)
    h.run(L1, "wb.stroke.extend", {"element_id": a, "points": pts(30)})
    b = stroke(h, L2, 10)
    h.run(TRAINER_ID, "wb.text", {"x": 1, "y": 1, "text": "x" * 40})
    h.run(TRAINER_ID, "wb.erase", {"element_id": b})
    assert usage(h.state) == ({"w1": [2, 80 + 11, 1, 80]}, {L1: 80, L2: 10})

    rebuilt = replay(h.events)
    assert usage(rebuilt) == usage(h.state)
    core = SessionCore(SESSION_ID, TITLE, state=rebuilt)
    with pytest.raises(Exception) as info:
        core.execute(L1, "wb.stroke.begin", {"points": pts(21)}, h.clock + 10_000)
    assert getattr(info.value, "code", None) == "board_full"

    # A state saved before the counters existed gets them from its elements.
    saved = dump_state(h.state)
    saved["board"] = {k: v for k, v in saved["board"].items() if k not in ("used", "drawn")}
    old = load_state(saved)
    assert wb._usage(old) == wb._usage(h.state)
    for event in h.events[-1:]:
        apply(old, event)


def test_a_clients_state_from_a_snapshot_counts_the_same(drawing: Harness):
    h = drawing
    stroke(h, L1, 10)
    h.run(TRAINER_ID, "wb.shape", LINE)
    client = SessionState.from_view(h.state.view("learner", L1), L1)
    assert wb._usage(client) == wb._usage(h.state)
