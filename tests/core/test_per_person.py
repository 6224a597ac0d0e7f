"""Limits per person, not per connection or identity: learners at one address share their rate
buckets, and a new identity where a learner is muted starts muted. The edge says where each
participant connects from (`SessionCore.place`); the core stays pure."""

from __future__ import annotations

from classroom.core import SessionCore
from classroom.core.limits import ADDRESS_SHARE, Rates

from .conftest import L1, L2, SESSION_ID, TITLE, TRAINER_ID, Harness

T0 = 1_000_000


def chat(h: Harness, pid: str, t: int = T0) -> None:
    h.run(pid, "chat.send", {"text": "spam"}, t=t)


def test_new_identities_at_one_address_share_a_bucket(h: Harness):
    burst = Rates().chat.burst
    ids = [f"x{i}" for i in range(ADDRESS_SHARE + 2)]
    for pid in ids:
        h.core.place(pid, "10.0.0.9")
        h.join(pid, pid, "learner")
    sent = 0
    for pid in ids:
        for _ in range(burst):
            try:
                h.core.execute(pid, "chat.send", {"text": "spam"}, T0)
                sent += 1
            except Exception as exc:
                assert getattr(exc, "code", None) == "rate_limited"
                assert "network address" in str(exc)
    assert sent == burst * ADDRESS_SHARE
    # Someone elsewhere is not affected, nor is a learner at an address the edge does not count.
    h.core.place(L1, "10.0.0.10")
    chat(h, L1)
    chat(h, L2)


def test_one_identity_keeps_its_own_bucket_too(h: Harness):
    h.core.place(L1, "10.0.0.9")
    for _ in range(Rates().chat.burst):
        chat(h, L1)
    h.refuse(L1, "chat.send", {"text": "more"}, "rate_limited", t=T0)


def test_a_muted_learner_coming_back_as_someone_new_is_muted(h: Harness):
    h.core.place(L1, "10.0.0.9")
    h.run(TRAINER_ID, "participant.mute", {"participant_id": L1})
    h.core.place("again", "10.0.0.9")
    events = h.join("again", "Lea again", "learner")
    assert [(e.type, e.actor, e.data) for e in events] == [
        ("participant.joined", "again", {"id": "again", "name": "Lea again", "role": "learner"}),
        ("participant.muted", None, {"id": "again"}),
    ]
    h.refuse("again", "chat.send", {"text": "hi"}, "muted")
    # The trainer can unmute them; after the first one is unmuted, newcomers start unmuted.
    h.run(TRAINER_ID, "participant.unmute", {"participant_id": "again"})
    h.run(TRAINER_ID, "participant.unmute", {"participant_id": L1})
    h.core.place("third", "10.0.0.9")
    assert [e.type for e in h.join("third", "Third", "learner")] == ["participant.joined"]


def test_the_same_identity_rejoining_keeps_its_mute(h: Harness):
    h.run(TRAINER_ID, "participant.mute", {"participant_id": L1})
    h.leave(L1)
    h.join(L1, "Lea", "learner")
    h.refuse(L1, "chat.send", {"text": "hi"}, "muted")


def test_elsewhere_or_uncounted_newcomers_are_not_muted(h: Harness):
    h.core.place(L1, "10.0.0.9")
    h.run(TRAINER_ID, "participant.mute", {"participant_id": L1})
    h.core.place("other", "10.0.0.10")
    assert [e.type for e in h.join("other", "Other", "learner")] == ["participant.joined"]
    assert [e.type for e in h.join("nowhere", "Nowhere", "learner")] == ["participant.joined"]


def test_a_rebuilt_core_has_no_addresses_but_keeps_mutes():
    core = SessionCore(SESSION_ID, TITLE)
    core.join(L1, "Lea", "learner", 0)
    core.join(TRAINER_ID, "Tess", "trainer", 0)
    core.execute(TRAINER_ID, "session.start", {}, 0)
    core.execute(TRAINER_ID, "participant.mute", {"participant_id": L1}, 0)
    rebuilt = SessionCore(SESSION_ID, TITLE, state=core.state)
    assert rebuilt.state.participants[L1]["muted"]
