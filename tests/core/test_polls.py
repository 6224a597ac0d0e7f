"""Polls and quizzes: open, vote and change one's vote, close, share; what each audience sees."""

from __future__ import annotations

from typing import Any

import pytest

from classroom.core import Event, project
from classroom.core.limits import POLL_DRAFTS_MAX

from .conftest import L1, L2, TRAINER_ID, Harness, fold_projected, replay

L3 = "l3"


def open_poll(h: Harness, **kw: Any) -> str:
    payload = {"question": "Pick one", "options": ["a", "b", "c"], **kw}
    return h.run(TRAINER_ID, "poll.open", payload).reply["id"]


def poll_of(view: dict[str, Any], poll_id: str) -> dict[str, Any]:
    (poll,) = [p for p in view["polls"] if p["id"] == poll_id]
    return poll


def tpoll(h: Harness, poll_id: str) -> dict[str, Any]:
    return poll_of(h.state.view("trainer", TRAINER_ID), poll_id)


def lpoll(h: Harness, poll_id: str, pid: str = L1) -> dict[str, Any]:
    return poll_of(h.state.view("learner", pid), poll_id)


@pytest.fixture
def h3(h: Harness) -> Harness:
    h.join(L3, "Lou", "learner")
    return h


# -- opening ------------------------------------------------------------------------------------


def test_open_emits_the_poll_and_replies_its_id(h: Harness):
    out = h.run(TRAINER_ID, "poll.open", {"question": " Best? ", "options": [" x ", "y"]}, t=50_000)
    (event,) = out.events
    assert event.type == "poll.opened"
    assert out.reply == {"id": f"p{event.seq}"}
    assert event.data == {
        "id": f"p{event.seq}",
        "question": "Best?",
        "options": ["x", "y"],
        "multiple": False,
        "anonymous": False,
        "quiz": False,
        "correct": None,
    }
    assert tpoll(h, out.reply["id"]) == {
        "id": out.reply["id"],
        "question": "Best?",
        "options": ["x", "y"],
        "multiple": False,
        "anonymous": False,
        "quiz": False,
        "correct": None,
        "status": "open",
        "shared": False,
        "counts": [0, 0],
        "voters": 0,
        "votes": {},
        "my_choices": None,
        "t": 50_000,
        "seq": event.seq,
    }


@pytest.mark.parametrize("n", [2, 3, 10])
def test_two_to_ten_options(h: Harness, n: int):
    pid = open_poll(h, options=[f"o{i}" for i in range(n)])
    assert tpoll(h, pid)["counts"] == [0] * n


def test_one_option_is_out_of_range(h: Harness):
    h.refuse(TRAINER_ID, "poll.open", {"question": "Q", "options": ["only"]}, "out_of_range")
    h.refuse(TRAINER_ID, "poll.open", {"question": "Q", "options": []}, "out_of_range")


def test_eleven_options_is_out_of_range(h: Harness):
    opts = [f"o{i}" for i in range(11)]
    h.refuse(TRAINER_ID, "poll.open", {"question": "Q", "options": opts}, "out_of_range")


def test_more_choices_than_the_limit_is_out_of_range(h: Harness):
    pid = open_poll(h, options=[f"o{i}" for i in range(10)], multiple=True)
    h.refuse(L1, "poll.vote", {"poll_id": pid, "choices": list(range(11))}, "out_of_range")


@pytest.mark.parametrize(
    "payload, code",
    [
        ({"question": "", "options": ["a", "b"]}, "invalid_payload"),
        ({"question": "Q", "options": ["a", " "]}, "invalid_payload"),
        ({"question": "Q", "options": ["a", "b" * 201]}, "too_long"),
        ({"question": "Q" * 501, "options": ["a", "b"]}, "too_long"),
        ({"question": "Q", "options": "ab"}, "invalid_payload"),
        ({"question": "Q", "options": ["a", "b"], "multiple": "yes"}, "invalid_payload"),
        ({"question": "Q", "options": ["a", "b"], "correct": [2]}, "out_of_range"),
        ({"question": "Q", "options": ["a", "b"], "correct": []}, "out_of_range"),
        ({"question": "Q", "options": ["a", "b"], "correct": [0, 1]}, "out_of_range"),
        ({"question": "Q", "options": ["a", "b"], "correct": [0, 0], "multiple": True}, "invalid_payload"),
    ],
)
def test_open_validation(h: Harness, payload: dict[str, Any], code: str):
    h.refuse(TRAINER_ID, "poll.open", payload, code)


def test_quiz_correct_is_sorted(h: Harness):
    pid = open_poll(h, multiple=True, correct=[2, 0])
    assert tpoll(h, pid)["correct"] == [0, 2]
    assert tpoll(h, pid)["quiz"] is True


# -- voting -------------------------------------------------------------------------------------


def test_single_choice_vote(h: Harness):
    pid = open_poll(h)
    out = h.run(L1, "poll.vote", {"poll_id": pid, "choices": [1]})
    (event,) = out.events
    assert event.type == "poll.voted"
    assert event.actor == L1
    assert event.data == {
        "poll_id": pid,
        "anonymous": False,
        "choices": [1],
        "previous": None,
        "counts": [0, 1, 0],
        "voters": 1,
    }
    assert out.reply == {"choices": [1]}
    assert tpoll(h, pid)["votes"] == {L1: [1]}
    assert lpoll(h, pid, L1)["my_choices"] == [1]
    assert lpoll(h, pid, L2)["my_choices"] is None


def test_single_choice_poll_takes_exactly_one(h: Harness):
    pid = open_poll(h)
    h.refuse(L1, "poll.vote", {"poll_id": pid, "choices": [0, 1]}, "out_of_range")
    h.refuse(L1, "poll.vote", {"poll_id": pid, "choices": []}, "out_of_range")


def test_multiple_choice_vote_is_sorted_and_counted(h: Harness):
    pid = open_poll(h, multiple=True)
    out = h.run(L1, "poll.vote", {"poll_id": pid, "choices": [2, 0]})
    assert out.reply == {"choices": [0, 2]}
    h.run(L2, "poll.vote", {"poll_id": pid, "choices": [0, 1, 2]})
    assert tpoll(h, pid)["counts"] == [2, 1, 2]
    assert tpoll(h, pid)["voters"] == 2
    h.refuse(L1, "poll.vote", {"poll_id": pid, "choices": [1, 1]}, "invalid_payload")


@pytest.mark.parametrize("choices", [[3], [-1], [0, 3]])
def test_choice_out_of_range(h: Harness, choices: list[int]):
    pid = open_poll(h, multiple=True)
    h.refuse(L1, "poll.vote", {"poll_id": pid, "choices": choices}, "out_of_range")


@pytest.mark.parametrize("choices", [[True], ["0"], [0.0], 0, None])
def test_choices_must_be_a_list_of_integers(h: Harness, choices: object):
    pid = open_poll(h)
    h.refuse(L1, "poll.vote", {"poll_id": pid, "choices": choices}, "invalid_payload")


def test_vote_on_unknown_poll(h: Harness):
    h.refuse(L1, "poll.vote", {"poll_id": "p404", "choices": [0]}, "not_found")


def test_changing_a_vote_moves_the_counts_exactly(h3: Harness):
    h = h3
    pid = open_poll(h, multiple=True)
    h.run(L1, "poll.vote", {"poll_id": pid, "choices": [0, 1]})
    h.run(L2, "poll.vote", {"poll_id": pid, "choices": [1]})
    assert tpoll(h, pid)["counts"] == [1, 2, 0]
    out = h.run(L1, "poll.vote", {"poll_id": pid, "choices": [2]})
    assert out.events[0].data["previous"] == [0, 1]
    assert out.events[0].data["counts"] == [0, 1, 1]
    assert out.events[0].data["voters"] == 2  # a change is not a new voter
    h.run(L3, "poll.vote", {"poll_id": pid, "choices": [0, 1, 2]})
    h.run(L2, "poll.vote", {"poll_id": pid, "choices": [0, 2]})
    poll = tpoll(h, pid)
    assert poll["counts"] == [2, 1, 3]
    assert poll["voters"] == 3
    assert poll["votes"] == {L1: [2], L2: [0, 2], L3: [0, 1, 2]}
    # The counts always equal a recount of the votes.
    recount = [sum(c in v for v in poll["votes"].values()) for c in range(3)]
    assert recount == poll["counts"]


def test_repeating_the_same_vote_changes_nothing(h: Harness):
    pid = open_poll(h)
    h.run(L1, "poll.vote", {"poll_id": pid, "choices": [2]})
    seq = h.state.seq
    for _ in range(5):
        out = h.run(L1, "poll.vote", {"poll_id": pid, "choices": [2]})
        assert out.events == []
        assert out.reply == {"choices": [2]}
    assert h.state.seq == seq
    assert tpoll(h, pid)["counts"] == [0, 0, 1]
    assert tpoll(h, pid)["voters"] == 1


def test_same_multiple_vote_in_another_order_is_a_repeat(h: Harness):
    pid = open_poll(h, multiple=True)
    h.run(L1, "poll.vote", {"poll_id": pid, "choices": [0, 2]})
    out = h.run(L1, "poll.vote", {"poll_id": pid, "choices": [2, 0]})
    assert out.events == []
    assert tpoll(h, pid)["counts"] == [1, 0, 1]


def test_trainer_cannot_vote(h: Harness):
    pid = open_poll(h)
    h.refuse(TRAINER_ID, "poll.vote", {"poll_id": pid, "choices": [0]}, "forbidden")
    assert tpoll(h, pid)["voters"] == 0


# -- close and share -----------------------------------------------------------------------------


def test_close_then_votes_are_refused(h: Harness):
    pid = open_poll(h)
    h.run(L1, "poll.vote", {"poll_id": pid, "choices": [0]})
    out = h.run(TRAINER_ID, "poll.close", {"poll_id": pid})
    assert [(e.type, e.data) for e in out.events] == [
        ("poll.closed", {"poll_id": pid, "counts": [1, 0, 0], "voters": 1})
    ]
    assert tpoll(h, pid)["status"] == "closed"
    assert lpoll(h, pid)["status"] == "closed"
    h.refuse(L2, "poll.vote", {"poll_id": pid, "choices": [1]}, "poll_closed")
    h.refuse(L1, "poll.vote", {"poll_id": pid, "choices": [1]}, "poll_closed")
    h.refuse(TRAINER_ID, "poll.close", {"poll_id": pid}, "poll_closed")


def test_share_requires_a_closed_poll(h: Harness):
    pid = open_poll(h)
    h.refuse(TRAINER_ID, "poll.share", {"poll_id": pid}, "poll_open")
    h.refuse(TRAINER_ID, "poll.share", {"poll_id": "p404"}, "not_found")
    h.refuse(TRAINER_ID, "poll.close", {"poll_id": "p404"}, "not_found")


def test_learners_see_counts_only_once_shared(h: Harness):
    pid = open_poll(h)
    h.run(L1, "poll.vote", {"poll_id": pid, "choices": [1]})
    h.run(L2, "poll.vote", {"poll_id": pid, "choices": [2]})
    assert lpoll(h, pid)["counts"] is None
    assert lpoll(h, pid)["voters"] is None
    assert lpoll(h, pid)["votes"] is None
    assert tpoll(h, pid)["counts"] == [0, 1, 1]
    h.run(TRAINER_ID, "poll.close", {"poll_id": pid})
    assert lpoll(h, pid)["counts"] is None
    out = h.run(TRAINER_ID, "poll.share", {"poll_id": pid})
    assert [(e.type, e.data) for e in out.events] == [
        ("poll.shared", {"poll_id": pid, "counts": [0, 1, 1], "voters": 2, "correct": None})
    ]
    shared = lpoll(h, pid)
    assert (shared["shared"], shared["counts"], shared["voters"]) == (True, [0, 1, 1], 2)
    assert shared["votes"] is None  # individual votes stay with the trainer
    assert shared["my_choices"] == [1]
    # Sharing again is a no-op.
    assert h.run(TRAINER_ID, "poll.share", {"poll_id": pid}).events == []


def test_quiz_answer_hidden_from_learners_until_shared(h: Harness):
    out = h.run(TRAINER_ID, "poll.open", {"question": "2+2?", "options": ["3", "4"], "correct": [1]})
    opened = out.events[0]
    pid = out.reply["id"]
    assert opened.data["correct"] == [1]
    assert opened.data["quiz"] is True
    # The stream: trainers get the answer, learners do not (and still learn it is a quiz).
    assert project(opened, "trainer")["data"]["correct"] == [1]
    learner_copy = project(opened, "learner")
    assert learner_copy["data"]["correct"] is None
    assert learner_copy["data"]["quiz"] is True
    assert learner_copy["data"]["options"] == ["3", "4"]
    assert learner_copy["actor"] == TRAINER_ID
    assert opened.data["correct"] == [1]  # projecting never alters the event
    # The snapshot.
    assert tpoll(h, pid)["correct"] == [1]
    assert lpoll(h, pid)["correct"] is None
    h.run(L1, "poll.vote", {"poll_id": pid, "choices": [0]})
    h.run(TRAINER_ID, "poll.close", {"poll_id": pid})
    assert lpoll(h, pid)["correct"] is None
    shared = h.run(TRAINER_ID, "poll.share", {"poll_id": pid}).events[0]
    assert shared.data["correct"] == [1]
    assert project(shared, "learner")["data"]["correct"] == [1]
    assert lpoll(h, pid)["correct"] == [1]
    assert lpoll(h, pid, L2)["correct"] == [1]


# -- projections of votes -------------------------------------------------------------------------


def vote_event(h: Harness, pid: str, voter: str, choices: list[int]) -> Event:
    (event,) = h.run(voter, "poll.vote", {"poll_id": pid, "choices": choices}).events
    return event


def test_named_poll_vote_projection(h: Harness):
    pid = open_poll(h)
    event = vote_event(h, pid, L1, [0])
    assert project(event, "trainer") is event.wire()
    assert project(event, "learner", False) is None
    assert project(event, "learner", True) == {
        "seq": event.seq,
        "t": event.t,
        "type": "poll.voted",
        "actor": L1,
        "data": {"poll_id": pid, "choices": [0]},
    }


def test_anonymous_poll_hides_who_voted_what(h: Harness):
    pid = open_poll(h, anonymous=True)
    h.run(L2, "poll.vote", {"poll_id": pid, "choices": [2]})
    event = vote_event(h, pid, L1, [0])
    trainer_copy = project(event, "trainer")
    assert trainer_copy == {
        "seq": event.seq,
        "t": event.t,
        "type": "poll.voted",
        "actor": None,
        "data": {"poll_id": pid, "counts": [1, 0, 1], "voters": 2},
    }
    assert "choices" not in trainer_copy["data"]
    assert "previous" not in trainer_copy["data"]
    # Trainers get the same copy even if a trainer were the actor (no one's own copy differs).
    assert project(event, "trainer", True)["actor"] is None
    assert project(event, "learner", False) is None
    assert project(event, "learner", True) == {
        "seq": event.seq,
        "t": event.t,
        "type": "poll.voted",
        "actor": L1,
        "data": {"poll_id": pid, "choices": [0]},
    }
    # The snapshot: counts for the trainer, but no individual votes; each learner sees their own.
    poll = tpoll(h, pid)
    assert poll["votes"] is None
    assert poll["counts"] == [1, 0, 1]
    assert lpoll(h, pid, L1)["my_choices"] == [0]
    assert lpoll(h, pid, L2)["my_choices"] == [2]


def test_anonymous_vote_change_projection_hides_previous(h: Harness):
    pid = open_poll(h, anonymous=True)
    vote_event(h, pid, L1, [0])
    event = vote_event(h, pid, L1, [1])
    assert event.data["previous"] == [0]
    assert project(event, "trainer")["data"] == {"poll_id": pid, "counts": [0, 1, 0], "voters": 1}
    assert project(event, "learner", True)["data"] == {"poll_id": pid, "choices": [1]}


def test_close_projection_hides_counts_from_learners(h: Harness):
    pid = open_poll(h)
    vote_event(h, pid, L1, [0])
    (event,) = h.run(TRAINER_ID, "poll.close", {"poll_id": pid}).events
    assert project(event, "trainer") is event.wire()
    assert project(event, "learner") == {
        "seq": event.seq,
        "t": event.t,
        "type": "poll.closed",
        "actor": TRAINER_ID,
        "data": {"poll_id": pid},
    }


def test_polls_are_listed_in_opening_order(h: Harness):
    a = open_poll(h)
    b = open_poll(h, anonymous=True)
    c = open_poll(h, correct=[0])
    assert [p["id"] for p in h.state.view("learner", L1)["polls"]] == [a, b, c]
    assert [p["id"] for p in h.state.view("trainer")["polls"]] == [a, b, c]


# -- drafts: polls prepared before (or during) the class, opened later -------------------------


def draft(h: Harness, **kw: Any) -> str:
    payload = {"question": "Secret plan?", "options": ["a", "b"], **kw}
    return h.run(TRAINER_ID, "poll.draft", payload).reply["id"]


def test_a_trainer_drafts_before_the_start_and_learners_see_nothing(fresh: Harness):
    payload = {"question": "Secret plan?", "options": ["a", "b"], "correct": [1]}
    out = fresh.run(TRAINER_ID, "poll.draft", payload)
    (event,) = out.events
    assert event.type == "poll.drafted"
    assert out.reply == {"id": f"p{event.seq}"}
    assert project(event, "trainer") is event.wire()
    assert project(event, "learner") is None and project(event, "learner", True) is None
    assert fresh.tview()["drafts"] == [
        {
            "id": out.reply["id"],
            "question": "Secret plan?",
            "options": ["a", "b"],
            "multiple": False,
            "anonymous": False,
            "quiz": True,
            "correct": [1],
            "t": event.t,
            "seq": event.seq,
        }
    ]
    assert fresh.tview()["polls"] == []
    for pid in (L1, None):
        view = fresh.state.view("learner", pid)
        assert view["drafts"] == [] and view["polls"] == []
        assert "Secret plan?" not in repr(view)
    assert fresh.state.view("learner", L1, bounded=True)["more"]["polls"] == 0


def test_opening_a_draft_is_an_ordinary_poll_opened_with_its_id(fresh: Harness):
    pid = draft(fresh, correct=[0])
    fresh.refuse(TRAINER_ID, "poll.open_draft", {"poll_id": pid}, "session_not_live")
    fresh.run(TRAINER_ID, "session.start", {})
    out = fresh.run(TRAINER_ID, "poll.open_draft", {"poll_id": pid})
    (event,) = out.events
    assert out.reply == {"id": pid}
    assert event.type == "poll.opened"
    assert event.data == {
        "id": pid,
        "question": "Secret plan?",
        "options": ["a", "b"],
        "multiple": False,
        "anonymous": False,
        "quiz": True,
        "correct": [0],
    }
    assert project(event, "learner")["data"]["correct"] is None  # a quiz's answer stays hidden
    assert fresh.tview()["drafts"] == []
    assert lpoll(fresh, pid)["question"] == "Secret plan?"
    assert lpoll(fresh, pid)["seq"] == event.seq and lpoll(fresh, pid)["t"] == event.t
    fresh.run(L1, "poll.vote", {"poll_id": pid, "choices": [1]})
    assert tpoll(fresh, pid)["counts"] == [0, 1]
    # It is no draft any more: opening or discarding it again is refused.
    err = fresh.refuse(TRAINER_ID, "poll.open_draft", {"poll_id": pid}, "not_found")
    assert "opened already" in err.message
    fresh.refuse(TRAINER_ID, "poll.discard", {"poll_id": pid}, "not_found")


def test_drafts_are_for_trainers_and_bounded(fresh: Harness):
    fresh.refuse(L1, "poll.draft", {"question": "Q?", "options": ["a", "b"]}, "forbidden")
    pid = draft(fresh)
    fresh.refuse(L1, "poll.discard", {"poll_id": pid}, "forbidden")
    fresh.run(TRAINER_ID, "session.start", {})
    fresh.refuse(L1, "poll.open_draft", {"poll_id": pid}, "forbidden")
    fresh.refuse(L1, "poll.vote", {"poll_id": pid, "choices": [0]}, "not_found")  # not a poll yet
    fresh.refuse(TRAINER_ID, "poll.draft", {"question": "Q?", "options": ["a"]}, "out_of_range")
    fresh.refuse(TRAINER_ID, "poll.open_draft", {"poll_id": "p999"}, "not_found")
    fresh.refuse(TRAINER_ID, "poll.open_draft", {}, "invalid_payload")
    for _ in range(POLL_DRAFTS_MAX - 1):
        draft(fresh)
    fresh.refuse(TRAINER_ID, "poll.draft", {"question": "Q?", "options": ["a", "b"]}, "limit_reached")
    fresh.run(TRAINER_ID, "poll.discard", {"poll_id": pid})
    draft(fresh)


def test_discarding_a_draft_removes_it_for_trainers_only(fresh: Harness):
    pid = draft(fresh)
    (event,) = fresh.run(TRAINER_ID, "poll.discard", {"poll_id": pid}).events
    assert event.type == "poll.discarded" and event.data == {"poll_id": pid}
    assert project(event, "learner") is None
    assert fresh.tview()["drafts"] == []
    fresh.refuse(TRAINER_ID, "poll.discard", {"poll_id": pid}, "not_found")


def test_an_opened_draft_pages_in_opening_order_once(h: Harness):
    early = draft(h)
    a = open_poll(h)
    h.run(TRAINER_ID, "poll.open_draft", {"poll_id": early})
    b = open_poll(h)
    order = [a, early, b]
    assert [p["id"] for p in h.lview()["polls"]] == order
    for audience, pid in (("trainer", TRAINER_ID), ("learner", L1)):
        reply = h.run(pid, "poll.history", {"before": h.state.seq + 1}).reply
        assert [p["id"] for p in reply["polls"]] == order, audience
        assert reply["more"] is False


def test_clients_folding_drafts_agree_with_the_server(fresh: Harness):
    start = {aud: fresh.state.view(aud, pid) for aud, pid in (("trainer", TRAINER_ID), ("learner", L1))}
    events_from = len(fresh.events)
    kept = draft(fresh, question="Kept")
    gone = draft(fresh)
    fresh.run(TRAINER_ID, "poll.discard", {"poll_id": gone})
    fresh.run(TRAINER_ID, "session.start", {})
    opened = draft(fresh, question="Opened live")
    fresh.run(TRAINER_ID, "poll.open_draft", {"poll_id": opened})
    events = fresh.events[events_from:]
    for (aud, pid), snapshot in zip((("trainer", TRAINER_ID), ("learner", L1)), start.values(), strict=True):
        client = fold_projected(snapshot, pid, aud, events)
        assert client.view(aud, pid) == fresh.state.view(aud, pid), aud
    assert [d["id"] for d in fresh.tview()["drafts"]] == [kept]
    assert replay(fresh.events).view("trainer") == fresh.state.view("trainer")
