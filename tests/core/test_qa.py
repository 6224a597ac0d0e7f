"""Q&A: asking (optionally anonymously), upvotes, moderation, and the order learners see."""

from __future__ import annotations

from typing import Any

import pytest

from classroom.core import project

from .conftest import L1, L2, TRAINER_ID, Harness

L3, L4 = "l3", "l4"


def ask(h: Harness, pid: str, text: str, anonymous: bool = False) -> str:
    return h.run(pid, "qa.ask", {"text": text, "anonymous": anonymous}).reply["id"]


def question(view: dict[str, Any], qid: str) -> dict[str, Any]:
    (q,) = [q for q in view["questions"] if q["id"] == qid]
    return q


@pytest.fixture
def h4(h: Harness) -> Harness:
    h.join(L3, "Lou", "learner")
    h.join(L4, "Liv", "learner")
    return h


def test_ask_emits_and_replies_the_id(h: Harness):
    out = h.run(L1, "qa.ask", {"text": "  Why is the sky blue?\x00 "}, t=70_000)
    (event,) = out.events
    assert event.type == "qa.asked"
    assert event.actor == L1
    assert event.data == {
        "id": f"q{event.seq}",
        "text": "Why is the sky blue?",
        "anonymous": False,
        "name": "Lea",
    }
    assert out.reply == {"id": f"q{event.seq}"}
    assert h.state.view("learner", L2)["questions"] == [
        {
            "id": f"q{event.seq}",
            "text": "Why is the sky blue?",
            "anonymous": False,
            "author": L1,
            "name": "Lea",
            "status": "open",
            "votes": 0,
            "upvoted": False,
            "answer": None,
            "answered_by": None,
            "t": 70_000,
            "seq": event.seq,
        }
    ]


@pytest.mark.parametrize(
    "payload, code",
    [
        ({"text": ""}, "invalid_payload"),
        ({"text": "x" * 1001}, "too_long"),
        ({"text": "ok", "anonymous": 1}, "invalid_payload"),
        ({}, "invalid_payload"),
    ],
)
def test_ask_validation(h: Harness, payload: dict[str, Any], code: str):
    h.refuse(L1, "qa.ask", payload, code)


def test_ask_rate_limit_three_per_thirty_seconds(h: Harness):
    t0 = 1_000_000
    for i in range(3):
        h.run(L1, "qa.ask", {"text": f"q{i}"}, t=t0)
    h.refuse(L1, "qa.ask", {"text": "q3"}, "rate_limited", t=t0)
    h.refuse(L1, "qa.ask", {"text": "q3"}, "rate_limited", t=t0 + 9_999)
    h.run(L1, "qa.ask", {"text": "q3"}, t=t0 + 10_000)
    h.run(L2, "qa.ask", {"text": "other learner"}, t=t0 + 10_000)


def test_trainers_are_not_rate_limited(h: Harness):
    for i in range(20):
        h.run(TRAINER_ID, "qa.ask", {"text": f"q{i}"}, t=1_000_000)
    assert len(h.state.questions) == 20


def test_anonymous_question_hides_the_author_from_other_learners(h: Harness):
    out = h.run(L1, "qa.ask", {"text": "Is this silly?", "anonymous": True})
    (event,) = out.events
    qid = out.reply["id"]
    # The stream.
    assert project(event, "trainer") is event.wire()
    assert project(event, "learner", True) is event.wire()
    assert project(event, "learner", False) == {
        "seq": event.seq,
        "t": event.t,
        "type": "qa.asked",
        "actor": None,
        "data": {"id": qid, "text": "Is this silly?", "anonymous": True, "name": None},
    }
    assert event.actor == L1 and event.data["name"] == "Lea"  # projecting never alters the event
    # The snapshots.
    other = question(h.state.view("learner", L2), qid)
    assert (other["author"], other["name"], other["anonymous"]) == (None, None, True)
    guest = question(h.state.view("learner", None), qid)
    assert (guest["author"], guest["name"]) == (None, None)
    own = question(h.state.view("learner", L1), qid)
    assert (own["author"], own["name"]) == (L1, "Lea")
    trainer = question(h.state.view("trainer", TRAINER_ID), qid)
    assert (trainer["author"], trainer["name"]) == (L1, "Lea")


def test_named_question_shows_the_author_to_everyone(h: Harness):
    qid = ask(h, L1, "Named")
    assert question(h.state.view("learner", L2), qid)["author"] == L1
    assert question(h.state.view("learner", L2), qid)["name"] == "Lea"


def test_upvote_once_repeat_is_idempotent_and_unvote(h: Harness):
    qid = ask(h, L1, "Vote me")
    out = h.run(L2, "qa.upvote", {"question_id": qid})
    assert [(e.type, e.actor, e.data) for e in out.events] == [("qa.upvoted", L2, {"id": qid, "votes": 1})]
    assert out.reply == {"votes": 1}
    seq = h.state.seq
    again = h.run(L2, "qa.upvote", {"question_id": qid})
    assert again.events == []
    assert again.reply == {"votes": 1}
    assert h.state.seq == seq
    h.run(TRAINER_ID, "qa.upvote", {"question_id": qid})
    assert question(h.state.view("learner", L2), qid)["votes"] == 2
    assert question(h.state.view("learner", L2), qid)["upvoted"] is True
    assert question(h.state.view("learner", L1), qid)["upvoted"] is False
    out = h.run(L2, "qa.unvote", {"question_id": qid})
    assert [(e.type, e.data) for e in out.events] == [("qa.unvoted", {"id": qid, "votes": 1})]
    assert out.reply == {"votes": 1}
    assert question(h.state.view("learner", L2), qid)["upvoted"] is False
    # Unvoting without a vote changes nothing.
    assert h.run(L2, "qa.unvote", {"question_id": qid}).events == []
    assert question(h.state.view("trainer"), qid)["votes"] == 1


def test_upvote_projection_hides_the_voter_from_other_learners(h: Harness):
    qid = ask(h, L1, "Q")
    (event,) = h.run(L2, "qa.upvote", {"question_id": qid}).events
    assert project(event, "trainer") is event.wire()
    assert project(event, "learner", True) is event.wire()
    other = project(event, "learner", False)
    assert other["actor"] is None
    assert other["data"] == {"id": qid, "votes": 1}


def test_cannot_upvote_or_unvote_own_question(h: Harness):
    qid = ask(h, L1, "Mine")
    h.refuse(L1, "qa.upvote", {"question_id": qid}, "forbidden")
    h.refuse(L1, "qa.unvote", {"question_id": qid}, "forbidden")


def test_upvote_unknown_question(h: Harness):
    h.refuse(L1, "qa.upvote", {"question_id": "q404"}, "not_found")


@pytest.mark.parametrize("close", ["answer", "dismiss"])
def test_closed_questions_take_no_votes(h: Harness, close: str):
    qid = ask(h, L1, "Q")
    h.run(L2, "qa.upvote", {"question_id": qid})
    h.run(TRAINER_ID, f"qa.{close}", {"question_id": qid})
    h.refuse(TRAINER_ID, "qa.upvote", {"question_id": qid}, "question_closed")
    h.refuse(L2, "qa.unvote", {"question_id": qid}, "question_closed")
    # Reopening brings the votes back into play.
    h.run(TRAINER_ID, "qa.reopen", {"question_id": qid})
    out = h.run(TRAINER_ID, "qa.upvote", {"question_id": qid})
    assert out.reply == {"votes": 2}


def test_answer_dismiss_reopen(h: Harness):
    qid = ask(h, L1, "Q")
    out = h.run(TRAINER_ID, "qa.answer", {"question_id": qid, "text": " 42 "})
    assert [(e.type, e.data) for e in out.events] == [
        ("qa.answered", {"id": qid, "answer": "42", "by": "Tess"})
    ]
    q = question(h.state.view("learner", L2), qid)
    assert (q["status"], q["answer"], q["answered_by"]) == ("answered", "42", "Tess")
    # The same answer again is a no-op; a new answer replaces it.
    assert h.run(TRAINER_ID, "qa.answer", {"question_id": qid, "text": "42"}).events == []
    h.run(TRAINER_ID, "qa.answer", {"question_id": qid, "text": "43"})
    assert question(h.state.view("learner", L2), qid)["answer"] == "43"
    out = h.run(TRAINER_ID, "qa.dismiss", {"question_id": qid})
    assert [(e.type, e.data) for e in out.events] == [("qa.dismissed", {"id": qid})]
    assert question(h.state.view("learner", L2), qid)["status"] == "dismissed"
    assert h.run(TRAINER_ID, "qa.dismiss", {"question_id": qid}).events == []
    out = h.run(TRAINER_ID, "qa.reopen", {"question_id": qid})
    assert [(e.type, e.data) for e in out.events] == [("qa.reopened", {"id": qid})]
    assert question(h.state.view("learner", L2), qid)["status"] == "open"
    assert h.run(TRAINER_ID, "qa.reopen", {"question_id": qid}).events == []


def test_answer_without_text_marks_answered_live(h: Harness):
    qid = ask(h, L1, "Q")
    out = h.run(TRAINER_ID, "qa.answer", {"question_id": qid})
    assert out.events[0].data == {"id": qid, "answer": None, "by": "Tess"}
    assert question(h.state.view("learner", L1), qid)["status"] == "answered"
    assert h.run(TRAINER_ID, "qa.answer", {"question_id": qid, "text": None}).events == []


@pytest.mark.parametrize("name", ["qa.answer", "qa.dismiss", "qa.reopen"])
def test_moderating_an_unknown_question(h: Harness, name: str):
    h.refuse(TRAINER_ID, name, {"question_id": "q404"}, "not_found")


def test_answer_text_is_capped(h: Harness):
    qid = ask(h, L1, "Q")
    h.refuse(TRAINER_ID, "qa.answer", {"question_id": qid, "text": "x" * 2001}, "too_long")
    h.refuse(TRAINER_ID, "qa.answer", {"question_id": qid, "text": "  "}, "invalid_payload")


def test_learners_see_questions_ordered(h4: Harness):
    h = h4
    old_one_vote = ask(h, L1, "old, one vote")
    answered = ask(h, L1, "answered, many votes")
    dismissed = ask(h, L2, "dismissed")
    no_votes = ask(h, L2, "no votes")
    two_votes = ask(h, L3, "two votes")
    new_one_vote = ask(h, L3, "new, one vote")
    answered_no_votes = ask(h, L4, "answered, no votes, asked last")
    for voter, qid in [
        (L2, old_one_vote),
        (L1, two_votes),
        (L2, two_votes),
        (L1, new_one_vote),
        (L2, answered),
        (L3, answered),
        (L4, answered),
        (L1, dismissed),
        (L3, dismissed),
        (L4, dismissed),
    ]:
        h.run(voter, "qa.upvote", {"question_id": qid})
    h.run(TRAINER_ID, "qa.answer", {"question_id": answered_no_votes})
    h.run(TRAINER_ID, "qa.answer", {"question_id": answered, "text": "yes"})
    h.run(TRAINER_ID, "qa.dismiss", {"question_id": dismissed})
    expected = [two_votes, old_one_vote, new_one_vote, no_votes, answered, answered_no_votes, dismissed]
    for pid in (L1, L2, L3, L4, None):
        assert [q["id"] for q in h.state.view("learner", pid)["questions"]] == expected
    assert [q["id"] for q in h.state.view("trainer", TRAINER_ID)["questions"]] == expected
    # An unvote re-sorts.
    h.run(L1, "qa.unvote", {"question_id": two_votes})
    h.run(L2, "qa.unvote", {"question_id": two_votes})
    assert [q["id"] for q in h.state.view("learner", L1)["questions"]][:4] == [
        old_one_vote,
        new_one_vote,
        no_votes,
        two_votes,
    ]
    # Reopening puts a question back among the open ones by its votes.
    h.run(TRAINER_ID, "qa.reopen", {"question_id": dismissed})
    assert h.state.view("learner", L1)["questions"][0]["id"] == dismissed
