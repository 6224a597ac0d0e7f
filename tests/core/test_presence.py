"""Presence: joining and leaving, raised hands, reactions, and chat mutes."""

from __future__ import annotations

from typing import Any

import pytest

from classroom.core import SessionCore
from classroom.core.limits import REACTIONS

from .conftest import L1, L2, TRAINER_ID, Harness


def person(h: Harness, pid: str, audience: str = "learner") -> dict[str, Any]:
    (p,) = [p for p in h.state.view(audience, L2)["participants"] if p["id"] == pid]  # type: ignore[arg-type]
    return p


def test_join_emits_and_lists_the_participant():
    core = SessionCore("s", "T")
    events = core.join("a", "Ada", "learner", 5)
    assert [(e.seq, e.t, e.type, e.actor, e.data) for e in events] == [
        (1, 5, "participant.joined", "a", {"id": "a", "name": "Ada", "role": "learner"})
    ]
    assert core.state.view("learner", "a")["participants"] == [
        {"id": "a", "name": "Ada", "role": "learner", "online": True, "hand": False, "muted": False}
    ]


def test_join_twice_is_idempotent(h: Harness):
    seq = h.state.seq
    view = h.state.view("trainer")
    assert h.join(L1, "Lea", "learner") == []
    assert h.state.seq == seq
    assert h.state.view("trainer") == view


def test_join_with_a_new_name_renames(h: Harness):
    events = h.join(L1, "Lea B.", "learner")
    assert [e.data for e in events] == [{"id": L1, "name": "Lea B.", "role": "learner"}]
    assert person(h, L1)["name"] == "Lea B."
    assert len(h.state.participants) == 3


def test_leave_and_rejoin_keep_hand_and_mute(h: Harness):
    h.run(L1, "hand.raise", {})
    h.run(TRAINER_ID, "participant.mute", {"participant_id": L1})
    events = h.leave(L1)
    assert [(e.type, e.actor, e.data) for e in events] == [("participant.left", L1, {"id": L1})]
    assert person(h, L1) == {
        "id": L1,
        "name": "Lea",
        "role": "learner",
        "online": False,
        "hand": True,
        "muted": True,
    }
    # Leaving again changes nothing; leaving as a stranger neither.
    assert h.leave(L1) == []
    assert h.leave("nobody") == []
    events = h.join(L1, "Lea", "learner")
    assert [e.type for e in events] == ["participant.joined"]
    assert person(h, L1) == {
        "id": L1,
        "name": "Lea",
        "role": "learner",
        "online": True,
        "hand": True,
        "muted": True,
    }
    h.refuse(L1, "chat.send", {"text": "still muted"}, "muted")


def test_raise_and_lower_own_hand(h: Harness):
    out = h.run(L1, "hand.raise", {})
    assert [(e.type, e.actor, e.data) for e in out.events] == [("hand.raised", L1, {"id": L1})]
    assert person(h, L1)["hand"] is True
    assert person(h, L2)["hand"] is False
    # Raising a raised hand is a no-op.
    assert h.run(L1, "hand.raise", {}).events == []
    assert h.run(L1, "hand.raise", {"participant_id": L1}).events == []
    out = h.run(L1, "hand.lower", {})
    assert [(e.type, e.actor, e.data) for e in out.events] == [("hand.lowered", L1, {"id": L1})]
    assert person(h, L1)["hand"] is False
    assert h.run(L1, "hand.lower", {}).events == []


def test_trainer_lowers_every_hand_at_once(h: Harness):
    h.run(L1, "hand.raise", {})
    h.run(L2, "hand.raise", {})
    out = h.run(TRAINER_ID, "hand.lower_all", {})
    assert [(e.type, e.actor, e.data) for e in out.events] == [
        ("hand.lowered", TRAINER_ID, {"id": L1}),
        ("hand.lowered", TRAINER_ID, {"id": L2}),
    ]
    assert out.reply == {"lowered": 2}
    assert not any(p["hand"] for p in h.state.view("trainer")["participants"])
    # Nothing raised: nothing to do, and still an answer.
    again = h.run(TRAINER_ID, "hand.lower_all", {})
    assert again.events == [] and again.reply == {"lowered": 0}
    h.refuse(TRAINER_ID, "hand.lower_all", {"participant_id": L1}, "invalid_payload")


def test_learner_cannot_raise_someone_elses_hand(h: Harness):
    h.refuse(L1, "hand.raise", {"participant_id": L2}, "forbidden")


def test_trainer_lowers_a_learners_hand(h: Harness):
    h.run(L1, "hand.raise", {})
    out = h.run(TRAINER_ID, "hand.lower", {"participant_id": L1})
    assert [(e.type, e.actor, e.data) for e in out.events] == [("hand.lowered", TRAINER_ID, {"id": L1})]
    assert person(h, L1)["hand"] is False


def test_learner_cannot_lower_another_learners_hand(h: Harness):
    h.run(L2, "hand.raise", {})
    h.refuse(L1, "hand.lower", {"participant_id": L2}, "forbidden")
    assert person(h, L2)["hand"] is True


def test_lower_hand_of_unknown_participant(h: Harness):
    h.refuse(TRAINER_ID, "hand.lower", {"participant_id": "ghost"}, "not_found")


def test_hand_raise_rate_limit(h: Harness):
    t0 = 1_000_000
    for _ in range(6):
        h.run(L1, "hand.raise", {}, t=t0)
        h.run(L1, "hand.lower", {}, t=t0)
    h.refuse(L1, "hand.raise", {}, "rate_limited", t=t0)
    assert person(h, L1)["hand"] is False


@pytest.mark.parametrize("emoji", REACTIONS)
def test_every_listed_reaction_is_accepted(h: Harness, emoji: str):
    seq = h.state.seq
    view = h.state.view("trainer")
    out = h.run(L1, "reaction.send", {"emoji": emoji})
    assert [(e.type, e.actor, e.data) for e in out.events] == [("reaction", L1, {"id": L1, "emoji": emoji})]
    # A reaction is a moment, not state: only seq and t move.
    after = h.state.view("trainer")
    assert after["seq"] == seq + 1
    assert {k: v for k, v in after.items() if k not in ("seq", "t")} == {
        k: v for k, v in view.items() if k not in ("seq", "t")
    }


@pytest.mark.parametrize("emoji", ["👎", "", "👍👍", ":+1:", 1, None])
def test_other_reactions_are_refused(h: Harness, emoji: object):
    h.refuse(L1, "reaction.send", {"emoji": emoji}, "invalid_payload")


def test_reactions_listed():
    assert REACTIONS == ("👍", "👏", "❤️", "😂", "😮", "🎉", "🤔", "🙌")


def test_reaction_rate_limit(h: Harness):
    t0 = 1_000_000
    for _ in range(5):
        h.run(L1, "reaction.send", {"emoji": "🎉"}, t=t0)
    h.refuse(L1, "reaction.send", {"emoji": "🎉"}, "rate_limited", t=t0)
    h.run(L1, "reaction.send", {"emoji": "🎉"}, t=t0 + 600)  # 5 per 3 s: one token per 600 ms


def test_mute_and_unmute(h: Harness):
    out = h.run(TRAINER_ID, "participant.mute", {"participant_id": L1})
    assert [(e.type, e.actor, e.data) for e in out.events] == [("participant.muted", TRAINER_ID, {"id": L1})]
    assert person(h, L1)["muted"] is True
    assert h.run(TRAINER_ID, "participant.mute", {"participant_id": L1}).events == []
    out = h.run(TRAINER_ID, "participant.unmute", {"participant_id": L1})
    assert [e.type for e in out.events] == ["participant.unmuted"]
    assert person(h, L1)["muted"] is False
    assert h.run(TRAINER_ID, "participant.unmute", {"participant_id": L1}).events == []


def test_mute_needs_a_learner_target(h: Harness):
    h.refuse(TRAINER_ID, "participant.mute", {}, "invalid_payload")
    h.refuse(TRAINER_ID, "participant.mute", {"participant_id": "ghost"}, "not_found")
    h.refuse(TRAINER_ID, "participant.mute", {"participant_id": TRAINER_ID}, "forbidden")


def test_participants_listed_in_joining_order(h: Harness):
    h.join("l3", "Lou", "learner")
    h.join("t2", "Tom", "trainer")
    assert [(p["id"], p["role"]) for p in h.state.view("learner", L1)["participants"]] == [
        (TRAINER_ID, "trainer"),
        (L1, "learner"),
        (L2, "learner"),
        ("l3", "learner"),
        ("t2", "trainer"),
    ]
