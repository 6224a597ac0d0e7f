"""Lifecycle (created -> live -> ended), chapters, and the checks every command goes through."""

from __future__ import annotations

import pytest

from classroom.core import COMMANDS, CommandError, SessionCore

from .conftest import BOTH, L1, L2, LEARNER_ONLY, TRAINER_ID, TRAINER_ONLY, VALID_PAYLOADS, Harness


def test_command_table_matches_the_roles_the_tests_expect():
    assert set(COMMANDS) == TRAINER_ONLY | LEARNER_ONLY | BOTH
    assert set(VALID_PAYLOADS) == set(COMMANDS)
    for name, cmd in COMMANDS.items():
        expected = (
            {"trainer"}
            if name in TRAINER_ONLY
            else {"learner"}
            if name in LEARNER_ONLY
            else {"trainer", "learner"}
        )
        assert set(cmd.roles) == expected, name


@pytest.mark.parametrize("name", sorted(TRAINER_ONLY))
def test_learner_is_refused_every_trainer_command(h: Harness, name: str):
    h.run(L1, "chat.send", {"text": "something in the state"})
    seq = h.state.seq
    view = h.state.view("trainer")
    err = h.refuse(L1, name, VALID_PAYLOADS[name], "forbidden")
    assert name in err.message
    assert h.state.seq == seq
    assert h.state.view("trainer") == view


@pytest.mark.parametrize("name", sorted(TRAINER_ONLY))
def test_learner_is_refused_trainer_commands_before_start_too(fresh: Harness, name: str):
    # The role check comes before the status check.
    fresh.refuse(L1, name, VALID_PAYLOADS[name], "forbidden")


@pytest.mark.parametrize("name", sorted(LEARNER_ONLY))
def test_trainer_is_refused_learner_only_commands(h: Harness, name: str):
    seq = h.state.seq
    h.refuse(TRAINER_ID, name, VALID_PAYLOADS[name], "forbidden")
    assert h.state.seq == seq


# Trainers may prepare polls before the start (drafts: tests/core/test_polls.py).
BEFORE_START = {"session.start", "session.end", "poll.draft", "poll.discard"}


def test_only_these_commands_work_before_the_start():
    assert {name for name, cmd in COMMANDS.items() if not cmd.needs_live} == BEFORE_START


@pytest.mark.parametrize("name", sorted(set(COMMANDS) - BEFORE_START))
def test_every_command_needs_a_live_session(fresh: Harness, name: str):
    pid = L1 if name in LEARNER_ONLY else TRAINER_ID
    assert fresh.state.status == "created"
    fresh.refuse(pid, name, VALID_PAYLOADS[name], "session_not_live")


def test_a_session_that_never_started_can_be_cancelled(fresh: Harness):
    fresh.run(TRAINER_ID, "session.end", {})
    assert fresh.state.status == "ended"
    assert fresh.events[-1].type == "session.ended" and fresh.events[-1].data == {"reason": "trainer"}
    fresh.refuse(TRAINER_ID, "session.start", {}, "session_ended")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_refused_after_the_end(h: Harness, name: str):
    h.run(TRAINER_ID, "session.end", {})
    pid = L1 if name in LEARNER_ONLY else TRAINER_ID
    h.refuse(pid, name, VALID_PAYLOADS[name], "session_ended")


@pytest.mark.parametrize("name", sorted(BOTH))
def test_learner_commands_after_server_end_are_session_ended(h: Harness, name: str):
    h.end("idle")
    h.refuse(L2, name, VALID_PAYLOADS[name], "session_ended")


def test_status_check_comes_before_payload_validation(fresh: Harness):
    fresh.refuse(TRAINER_ID, "chat.send", {"text": 42}, "session_not_live")
    fresh.run(TRAINER_ID, "session.start", {})
    fresh.refuse(TRAINER_ID, "chat.send", {"text": 42}, "invalid_payload")


def test_start_goes_live_and_emits_one_event(fresh: Harness):
    out = fresh.run(TRAINER_ID, "session.start", {})
    assert [(e.type, e.actor, e.data) for e in out.events] == [("session.started", TRAINER_ID, {})]
    assert out.events[0].seq == 4  # three joins came first
    assert out.reply == {}
    assert fresh.state.status == "live"
    assert fresh.state.view("learner", L1)["status"] == "live"


def test_start_twice_is_already_live(h: Harness):
    h.refuse(TRAINER_ID, "session.start", {}, "already_live")


def test_start_rejects_unknown_fields(fresh: Harness):
    fresh.refuse(TRAINER_ID, "session.start", {"when": "now"}, "invalid_payload")


def test_trainer_end_lowers_every_hand(h: Harness):
    h.run(L1, "hand.raise", {})
    h.run(L2, "hand.raise", {})
    out = h.run(TRAINER_ID, "session.end", {})
    assert [(e.type, e.data) for e in out.events] == [("session.ended", {"reason": "trainer"})]
    assert h.state.status == "ended"
    assert [p["hand"] for p in h.state.view("trainer")["participants"]] == [False, False, False]


def test_server_end_has_no_actor_and_is_idempotent(h: Harness):
    events = h.end("idle")
    assert [(e.type, e.actor, e.data) for e in events] == [("session.ended", None, {"reason": "idle"})]
    assert h.state.status == "ended"
    seq = h.state.seq
    assert h.end("again") == []
    assert h.state.seq == seq


def test_server_can_end_a_session_that_never_started(fresh: Harness):
    events = fresh.end("admin")
    assert [e.type for e in events] == ["session.ended"]
    fresh.refuse(TRAINER_ID, "session.start", {}, "session_ended")


def test_mark_records_a_chapter_with_time_and_id(h: Harness):
    out = h.run(TRAINER_ID, "session.mark", {"title": "  Part 2\x07 "}, t=123_000)
    event = out.events[0]
    assert event.type == "chapter.marked"
    assert out.reply == {"id": f"c{event.seq}"}
    assert event.data == {"id": f"c{event.seq}", "title": "Part 2"}
    assert h.state.view("learner", L1)["chapters"] == [
        {"id": f"c{event.seq}", "title": "Part 2", "t": 123_000}
    ]


def test_mark_title_is_required_and_capped(h: Harness):
    h.refuse(TRAINER_ID, "session.mark", {}, "invalid_payload")
    h.refuse(TRAINER_ID, "session.mark", {"title": "   "}, "invalid_payload")
    h.refuse(TRAINER_ID, "session.mark", {"title": "x" * 201}, "too_long")
    out = h.run(TRAINER_ID, "session.mark", {"title": "x" * 200})
    assert out.events[0].data["title"] == "x" * 200


def test_unknown_command(h: Harness):
    h.refuse(TRAINER_ID, "chat.shout", {"text": "hi"}, "unknown_command")
    h.refuse(TRAINER_ID, None, {}, "unknown_command")  # type: ignore[arg-type]


def test_command_from_someone_who_never_joined(h: Harness):
    h.refuse("stranger", "chat.send", {"text": "hi"}, "not_joined")


def test_join_with_an_unknown_role_is_refused():
    core = SessionCore("s", "T")
    with pytest.raises(CommandError) as info:
        core.join("x", "X", "admin", 0)
    assert info.value.code == "invalid_payload"
    assert core.state.seq == 0
    assert core.state.participants == {}


def test_seq_counts_from_one_without_gaps_and_t_is_the_callers_clock(h: Harness):
    h.run(L1, "chat.send", {"text": "a"}, t=500_000)
    h.run(TRAINER_ID, "wb.page.add", {}, t=600_000)  # two events from one command
    assert [e.seq for e in h.events] == list(range(1, len(h.events) + 1))
    assert [e.t for e in h.events[-3:]] == [500_000, 600_000, 600_000]
    assert h.state.seq == len(h.events)
    assert h.state.t == 600_000
    assert h.state.view("learner", L1)["t"] == 600_000


def test_error_as_ack():
    err = CommandError("muted", "you are muted")
    assert err.as_ack() == {"ok": False, "error": {"code": "muted", "message": "you are muted"}}


def test_recording_pause_and_resume(h: Harness):
    assert h.state.view("learner", L1)["recording"] == "on"
    out = h.run(TRAINER_ID, "recording.pause", {})
    assert [(e.type, e.actor, e.data) for e in out.events] == [("recording.paused", TRAINER_ID, {})]
    assert h.state.view("learner", L1)["recording"] == "paused"
    assert h.run(TRAINER_ID, "recording.pause", {}).events == []
    out = h.run(TRAINER_ID, "recording.resume", {})
    assert [e.type for e in out.events] == ["recording.resumed"]
    assert h.state.view("trainer")["recording"] == "on"
    assert h.run(TRAINER_ID, "recording.resume", {}).events == []


@pytest.mark.parametrize("name", ["recording.pause", "recording.resume"])
def test_recording_commands_in_a_session_without_recording(name: str):
    h = Harness(SessionCore("s", "T", recording=False))
    h.join(TRAINER_ID, "Tess", "trainer")
    h.run(TRAINER_ID, "session.start", {})
    assert h.state.view("trainer")["recording"] == "off"
    h.refuse(TRAINER_ID, name, {}, "recording_off")
    assert h.state.view("trainer")["recording"] == "off"


@pytest.mark.parametrize("name", sorted(BOTH | LEARNER_ONLY))
def test_learner_commands_need_a_live_session(fresh: Harness, name: str):
    fresh.refuse(L2, name, VALID_PAYLOADS[name], "session_not_live")
