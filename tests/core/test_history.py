"""Bounded snapshots and history paging in the pure core: what a join carries whatever the
history, that it hides what the full view hides, that paging returns every item once in order,
and that a client folding live events on a bounded snapshot stays consistent."""

from __future__ import annotations

import copy

from classroom.core import Event, SessionState, apply, project
from classroom.core.history import (
    SNAPSHOT_CHAT,
    SNAPSHOT_POLLS,
    SNAPSHOT_QUESTIONS,
    merge_reply,
)

from .conftest import L1, L2, TRAINER_ID, Harness


def chat_many(h: Harness, n: int) -> list[str]:
    return [h.run(TRAINER_ID, "chat.send", {"text": f"m {i}"}).reply["id"] for i in range(n)]


def query(h: Harness, pid: str, name: str, payload: dict) -> dict:
    out = h.run(pid, name, payload)
    assert out.events == []
    return {"ok": True, "seq": h.state.seq, **out.reply}


def test_a_bounded_view_within_the_bounds_is_the_full_view_but_for_other_pages(h: Harness):
    chat_many(h, 3)
    h.run(TRAINER_ID, "wb.shape", {"kind": "rect", "x1": 1, "y1": 1, "x2": 5, "y2": 5})
    h.run(TRAINER_ID, "wb.page.add", {})
    for audience, viewer in h.viewers():
        full = h.state.view(audience, viewer)  # type: ignore[arg-type]
        bounded = h.state.view(audience, viewer, bounded=True)  # type: ignore[arg-type]
        assert bounded["more"] == full["more"] == {k: 0 for k in full["more"]}
        assert bounded["board"]["pages"][0]["elements"] is None  # not the current page
        assert bounded["board"]["pages"][1] == full["board"]["pages"][1]
        bounded["board"] = full["board"]
        assert bounded == full


def test_the_snapshot_holds_the_recent_part_of_each_growing_section(h: Harness):
    ids = chat_many(h, SNAPSHOT_CHAT + 30)
    polls = []
    for i in range(SNAPSHOT_POLLS + 5):
        polls.append(h.run(TRAINER_ID, "poll.open", {"question": f"q{i}", "options": ["a", "b"]}).reply["id"])
        if i:  # the first stays open: an old open poll is still shown
            h.run(TRAINER_ID, "poll.close", {"poll_id": polls[-1]})
    questions = []
    for i in range(SNAPSHOT_QUESTIONS + 7):
        questions.append(h.run(TRAINER_ID, "qa.ask", {"text": f"why {i}?"}).reply["id"])
    view = h.state.view("learner", L1, bounded=True)
    assert [m["id"] for m in view["chat"]] == ids[-SNAPSHOT_CHAT:]
    assert view["more"]["chat"] == 30
    assert [p["id"] for p in view["polls"]] == [polls[0], *polls[-SNAPSHOT_POLLS:]]
    assert view["more"]["polls"] == 4
    assert {q["id"] for q in view["questions"]} == set(questions[-SNAPSHOT_QUESTIONS:])
    assert view["more"]["questions"] == 7


def test_bounded_items_hide_exactly_what_the_full_view_hides(h: Harness):
    h.run(TRAINER_ID, "chat.send", {"text": "filler"})
    poll = h.run(TRAINER_ID, "poll.open", {"question": "q", "options": ["a", "b"], "correct": [0]})
    h.run(L1, "poll.vote", {"poll_id": poll.reply["id"], "choices": [1]})
    h.run(L1, "qa.ask", {"text": "secret?", "anonymous": True})
    for i in range(SNAPSHOT_QUESTIONS + 3):
        h.run(TRAINER_ID, "qa.ask", {"text": f"q{i}?"})
    for audience, viewer in h.viewers():
        full = h.state.view(audience, viewer)  # type: ignore[arg-type]
        bounded = h.state.view(audience, viewer, bounded=True)  # type: ignore[arg-type]
        for name in ("polls", "questions", "participants", "chat"):
            by_id = {item["id"]: item for item in full[name]}
            for item in bounded[name]:
                assert item == by_id[item["id"]], (audience, viewer, name)
        # The anonymous question is older than the bounded set: paging shows it the same way.
        page = query(h, viewer or L2, "qa.history", {"before": bounded["questions"][0]["seq"] + 1})
        if audience == "learner" and viewer is not None:
            (anon,) = [q for q in page["questions"] if q["text"] == "secret?"]
            assert anon == next(
                q for q in h.state.view("learner", viewer)["questions"] if q["id"] == anon["id"]
            )


def test_chat_paging_returns_every_older_message_once_in_order_skipping_deleted(h: Harness):
    ids = chat_many(h, 450)
    for gone in ids[10:20] + ids[300:305]:
        h.run(TRAINER_ID, "chat.delete", {"message_id": gone})
    kept = [i for i in ids if i not in set(ids[10:20] + ids[300:305])]
    snapshot = h.state.view("learner", L1, bounded=True)
    seen = [m["id"] for m in snapshot["chat"]]
    before = snapshot["chat"][0]["seq"]
    while True:
        page = query(h, L1, "chat.history", {"before": before, "limit": 37})
        assert len(page["messages"]) <= 37
        seen = [m["id"] for m in page["messages"]] + seen
        if not page["more"]:
            break
        before = page["messages"][0]["seq"]
    assert seen == kept


def test_history_commands_refuse_bad_input_and_read_an_ended_session(h: Harness):
    chat_many(h, 3)
    h.refuse(L1, "chat.history", {"before": "x"}, "invalid_payload")
    h.refuse(L1, "chat.history", {"before": 5, "limit": 1000}, "out_of_range")
    h.refuse(L1, "chat.history", {"before": 5, "extra": 1}, "invalid_payload")
    h.refuse(L1, "board.page.get", {"page_id": "nope"}, "not_found")
    h.refuse("stranger", "chat.history", {"before": 5}, "not_joined")
    h.end()
    page = query(h, L1, "chat.history", {"before": h.state.seq + 1, "limit": 2})
    assert [m["text"] for m in page["messages"]] == ["m 1", "m 2"] and page["more"]


def _client_fold(snapshot: dict, viewer: str, audience: str, events: list[Event]) -> SessionState:
    client = SessionState.from_view(copy.deepcopy(snapshot), viewer)
    for event in events:
        wire = project(event, audience, event.actor == viewer)  # type: ignore[arg-type]
        if wire is not None:
            apply(client, Event.from_wire(copy.deepcopy(wire)))
    return client


def test_a_client_on_a_bounded_snapshot_folds_events_and_fetched_pages(h: Harness):
    ids = chat_many(h, SNAPSHOT_CHAT + 5)
    first = h.state.board["current"]
    h.run(TRAINER_ID, "wb.shape", {"kind": "rect", "x1": 1, "y1": 1, "x2": 5, "y2": 5})
    stroke = h.run(TRAINER_ID, "wb.stroke.begin", {"points": [1, 1, 2, 2]}).reply["id"]
    h.run(TRAINER_ID, "wb.page.add", {})
    snapshot = h.state.view("learner", L1, bounded=True)
    start = len(h.events)
    # Live: an old message deleted, drawing on the page the client has not loaded.
    h.run(TRAINER_ID, "chat.delete", {"message_id": ids[0]})
    h.run(TRAINER_ID, "wb.stroke.extend", {"element_id": stroke, "points": [3, 3]})
    client = _client_fold(snapshot, L1, "learner", h.events[start:])
    assert client.board["unloaded"] == {first}
    # The page fetched now; then an event on it that was already in the reply arrives late
    # (the outbox had not sent it yet), and a newer one.
    reply = query(h, L1, "board.page.get", {"page_id": first})
    late = h.events[-1]
    merge_reply(client, "board.page.get", reply, L1)
    h.run(TRAINER_ID, "wb.stroke.extend", {"element_id": stroke, "points": [4, 4]})
    for event in [late, h.events[-1]]:
        apply(client, Event.from_wire(copy.deepcopy(project(event, "learner"))))  # type: ignore[arg-type]
    mine = client.view("learner", L1)["board"]["pages"][0]
    assert mine == h.state.view("learner", L1)["board"]["pages"][0]
    assert mine["elements"][1]["points"] == [1, 1, 2, 2, 3, 3, 4, 4]
    # Older chat merges in, in order, without the deleted one.
    page = query(h, L1, "chat.history", {"before": min(m["seq"] for m in client.chat.values())})
    merge_reply(client, "chat.history", page, L1)
    assert list(client.chat) == ids[1:]
    assert client.view("learner", L1, bounded=True) == h.state.view("learner", L1, bounded=True)


def test_the_snapshot_stays_under_its_documented_bound_at_the_longest(h: Harness):
    import orjson

    from classroom.core.history import SNAPSHOT_BYTES
    from classroom.core.limits import POLL_DRAFTS_MAX

    wide = "😀"  # one character, four bytes of UTF-8
    for _ in range(SNAPSHOT_CHAT + 20):
        h.run(TRAINER_ID, "chat.send", {"text": wide * 2000})
    for _ in range(SNAPSHOT_QUESTIONS + 10):
        qid = h.run(TRAINER_ID, "qa.ask", {"text": wide * 1000}).reply["id"]
        h.run(TRAINER_ID, "qa.answer", {"question_id": qid, "text": wide * 2000})
    for _ in range(2 * SNAPSHOT_POLLS + 5):
        h.run(TRAINER_ID, "poll.open", {"question": wide * 500, "options": [wide * 200] * 10})
    for _ in range(POLL_DRAFTS_MAX):  # trainers get every draft
        h.run(TRAINER_ID, "poll.draft", {"question": wide * 500, "options": [wide * 200] * 10})
    for _ in range(120):
        h.run(TRAINER_ID, "session.mark", {"title": wide * 200})
    for audience, viewer in h.viewers():
        full = len(orjson.dumps(h.state.view(audience, viewer)))  # type: ignore[arg-type]
        bounded = len(orjson.dumps(h.state.view(audience, viewer, bounded=True)))  # type: ignore[arg-type]
        assert bounded < min(full, SNAPSHOT_BYTES), (audience, bounded, full)
