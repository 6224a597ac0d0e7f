"""Chat: cleaning, limits, mutes, the per-participant rate limit, and deletion by trainers."""

from __future__ import annotations

import pytest

from classroom.core.limits import CHAT_LEN

from .conftest import L1, L2, TRAINER_ID, Harness


def texts(h: Harness, pid: str = L1) -> list[str]:
    return [m["text"] for m in h.state.view("learner", pid)["chat"]]


def test_send_emits_a_message_with_name_role_and_id(h: Harness):
    out = h.run(L1, "chat.send", {"text": "Hello"}, t=100_000)
    (event,) = out.events
    assert event.type == "chat.message"
    assert event.actor == L1
    assert event.data == {"id": f"m{event.seq}", "text": "Hello", "name": "Lea", "role": "learner"}
    assert out.reply == {"id": f"m{event.seq}"}
    assert h.state.view("trainer")["chat"] == [
        {
            "id": f"m{event.seq}",
            "author": L1,
            "name": "Lea",
            "role": "learner",
            "text": "Hello",
            "t": 100_000,
            "seq": event.seq,
        }
    ]


def test_trainer_messages_carry_the_trainer_role(h: Harness):
    out = h.run(TRAINER_ID, "chat.send", {"text": "Welcome"})
    assert out.events[0].data["role"] == "trainer"
    assert out.events[0].data["name"] == "Tess"


def test_text_is_trimmed_and_control_characters_stripped(h: Harness):
    out = h.run(L1, "chat.send", {"text": "  \x00hi\x07 there\x1b[31m\x7f \r\n"})
    assert out.events[0].data["text"] == "hi there[31m"


def test_newlines_and_tabs_inside_the_text_survive(h: Harness):
    out = h.run(L1, "chat.send", {"text": "line one\nline\ttwo"})
    assert out.events[0].data["text"] == "line one\nline\ttwo"


def test_text_is_nfc_normalised(h: Harness):
    out = h.run(L1, "chat.send", {"text": "cafe\u0301"})
    assert out.events[0].data["text"] == "caf\u00e9"


def test_text_at_the_cap_is_accepted_and_one_more_is_too_long(h: Harness):
    h.run(L1, "chat.send", {"text": "x" * CHAT_LEN})
    err = h.refuse(L2, "chat.send", {"text": "x" * (CHAT_LEN + 1)}, "too_long")
    assert "text" in err.message
    assert texts(h) == ["x" * CHAT_LEN]


@pytest.mark.parametrize("text", ["", "   ", "\x00\x01", " \r\n\t "])
def test_empty_text_is_invalid(h: Harness, text: str):
    h.refuse(L1, "chat.send", {"text": text}, "invalid_payload")


@pytest.mark.parametrize(
    "payload",
    [{"text": 5}, {"text": None}, {"text": ["hi"]}, {}, {"text": "hi", "extra": 1}, ["hi"], "hi"],
)
def test_wrong_shape_is_invalid(h: Harness, payload: object):
    h.refuse(L1, "chat.send", payload, "invalid_payload")


def test_muted_learner_is_refused_and_unmute_restores(h: Harness):
    out = h.run(TRAINER_ID, "participant.mute", {"participant_id": L1})
    assert [(e.type, e.data) for e in out.events] == [("participant.muted", {"id": L1})]
    h.refuse(L1, "chat.send", {"text": "let me talk"}, "muted")
    # Others are not affected.
    h.run(L2, "chat.send", {"text": "I can talk"})
    out = h.run(TRAINER_ID, "participant.unmute", {"participant_id": L1})
    assert [(e.type, e.data) for e in out.events] == [("participant.unmuted", {"id": L1})]
    h.run(L1, "chat.send", {"text": "thanks"})
    assert texts(h) == ["I can talk", "thanks"]


def test_muted_refusals_do_not_spend_chat_tokens(h: Harness):
    # A muted learner's refusal does not spend a chat token: after unmuting, a full burst remains.
    h.run(TRAINER_ID, "participant.mute", {"participant_id": L1}, t=1_000_000)
    for _ in range(10):
        h.refuse(L1, "chat.send", {"text": "x"}, "muted", t=1_000_000)
    h.run(TRAINER_ID, "participant.unmute", {"participant_id": L1}, t=1_000_000)
    for i in range(5):
        h.run(L1, "chat.send", {"text": f"m{i}"}, t=1_000_000)
    h.refuse(L1, "chat.send", {"text": "m5"}, "rate_limited", t=1_000_000)


def test_rate_limit_is_a_burst_of_five_refilled_over_five_seconds(h: Harness):
    t0 = 1_000_000
    for i in range(5):
        h.run(L1, "chat.send", {"text": f"burst {i}"}, t=t0)
    h.refuse(L1, "chat.send", {"text": "one too many"}, "rate_limited", t=t0)
    # Another participant has their own bucket.
    h.run(L2, "chat.send", {"text": "not me"}, t=t0)
    # 999 ms refill less than one token; 1000 ms refill exactly one.
    h.refuse(L1, "chat.send", {"text": "too soon"}, "rate_limited", t=t0 + 999)
    h.run(L1, "chat.send", {"text": "refilled one"}, t=t0 + 1000)
    h.refuse(L1, "chat.send", {"text": "again too soon"}, "rate_limited", t=t0 + 1000)
    # A long pause refills the whole burst, but never more than the burst.
    t1 = t0 + 60_000
    for i in range(5):
        h.run(L1, "chat.send", {"text": f"second burst {i}"}, t=t1)
    h.refuse(L1, "chat.send", {"text": "capped"}, "rate_limited", t=t1)
    lea = [m["text"] for m in h.state.view("trainer")["chat"] if m["author"] == L1]
    assert lea == [f"burst {i}" for i in range(5)] + ["refilled one"] + [
        f"second burst {i}" for i in range(5)
    ]


def test_trainer_deletes_a_message(h: Harness):
    keep = h.run(L1, "chat.send", {"text": "keep me"}).reply["id"]
    drop = h.run(L2, "chat.send", {"text": "drop me"}).reply["id"]
    out = h.run(TRAINER_ID, "chat.delete", {"message_id": drop})
    assert [(e.type, e.data) for e in out.events] == [("chat.deleted", {"id": drop})]
    assert [m["id"] for m in h.state.view("learner", L1)["chat"]] == [keep]
    assert [m["id"] for m in h.state.view("trainer")["chat"]] == [keep]
    # Deleting it again: it no longer exists.
    h.refuse(TRAINER_ID, "chat.delete", {"message_id": drop}, "not_found")


def test_delete_unknown_message_is_not_found(h: Harness):
    h.run(L1, "chat.send", {"text": "hi"})
    h.refuse(TRAINER_ID, "chat.delete", {"message_id": "m999"}, "not_found")
    h.refuse(TRAINER_ID, "chat.delete", {"message_id": 3}, "invalid_payload")


def test_learner_cannot_delete_even_their_own_message(h: Harness):
    mid = h.run(L1, "chat.send", {"text": "oops"}).reply["id"]
    h.refuse(L1, "chat.delete", {"message_id": mid}, "forbidden")
    assert texts(h) == ["oops"]


def test_messages_keep_the_name_at_the_time_of_sending(h: Harness):
    h.run(L1, "chat.send", {"text": "before"})
    h.join(L1, "Lea Renamed", "learner")  # a rename arrives as a join with a new name
    h.run(L1, "chat.send", {"text": "after"})
    assert [(m["name"], m["text"]) for m in h.state.view("learner", L2)["chat"]] == [
        ("Lea", "before"),
        ("Lea Renamed", "after"),
    ]
