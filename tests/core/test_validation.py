"""Payload validation: strict shapes, text cleaning, and the mapping of failures to stable codes."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from pydantic import Field

from classroom.core import CODES, CommandError, SessionCore, SessionState, clean_name
from classroom.core.limits import CHAT_LEN, NAME_LEN
from classroom.core.validation import Payload, Text, parse

from .conftest import L1, TRAINER_ID, Harness


class Sample(Payload):
    text: Text(10)  # type: ignore[valid-type]
    n: Annotated[int, Field(ge=0, le=5)] = 0
    items: list[int] = Field(default_factory=lambda: [0], min_length=1, max_length=3)
    flag: bool = False


def code_of(payload: Any) -> str:
    with pytest.raises(CommandError) as info:
        parse(Sample, payload)
    assert info.value.code in CODES
    return info.value.code


def test_a_valid_payload_parses_to_a_frozen_model():
    got = parse(Sample, {"text": " hi ", "n": 5, "items": [1, 2, 3], "flag": True})
    assert (got.text, got.n, got.items, got.flag) == ("hi", 5, [1, 2, 3], True)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        got.n = 1  # type: ignore[misc]


def test_a_missing_payload_is_an_empty_object():
    class Nothing(Payload):
        pass

    assert parse(Nothing, None) == Nothing()
    assert code_of(None) == "invalid_payload"  # `text` is required


@pytest.mark.parametrize("payload", [[], "text", 3, True])
def test_the_payload_must_be_an_object(payload: Any):
    with pytest.raises(CommandError) as info:
        parse(Sample, payload)
    assert info.value.code == "invalid_payload"
    assert info.value.message == "the payload must be an object"


@pytest.mark.parametrize(
    "payload, code",
    [
        ({"text": "x" * 11}, "too_long"),
        ({"text": ""}, "invalid_payload"),
        ({"text": " \t\n "}, "invalid_payload"),
        ({"text": 1}, "invalid_payload"),
        ({"text": "ok", "n": 6}, "out_of_range"),
        ({"text": "ok", "n": -1}, "out_of_range"),
        ({"text": "ok", "n": "1"}, "invalid_payload"),  # strict: no coercion from strings
        ({"text": "ok", "n": 1.0}, "invalid_payload"),
        ({"text": "ok", "n": True}, "invalid_payload"),
        ({"text": "ok", "items": []}, "out_of_range"),
        ({"text": "ok", "items": [1, 2, 3, 4]}, "out_of_range"),
        ({"text": "ok", "flag": 1}, "invalid_payload"),
        ({"text": "ok", "flag": "true"}, "invalid_payload"),
        ({"text": "ok", "other": 1}, "invalid_payload"),  # unknown fields are refused
    ],
)
def test_codes(payload: dict[str, Any], code: str):
    assert code_of(payload) == code


def test_the_message_names_the_field():
    with pytest.raises(CommandError) as info:
        parse(Sample, {"text": "ok", "items": [1, "x"]})
    assert info.value.code == "invalid_payload"
    assert info.value.message.startswith("items.1: ")


def test_text_cleaning():
    assert parse(Sample, {"text": "\x00 a\x1fb\x7f \x0b"}).text == "ab"
    assert parse(Sample, {"text": "a\tb\nc"}).text == "a\tb\nc"
    assert parse(Sample, {"text": "e\u0301"}).text == "\u00e9"


def test_clean_name():
    assert clean_name("  Ada\x00 ") == "Ada"
    assert clean_name("x" * NAME_LEN) == "x" * NAME_LEN
    for bad, code in [("", "invalid_payload"), ("  \x01 ", "invalid_payload"), (None, "invalid_payload")]:
        with pytest.raises(CommandError) as info:
            clean_name(bad)
        assert info.value.code == code
    with pytest.raises(CommandError) as info:
        clean_name("x" * (NAME_LEN + 1))
    assert info.value.code == "too_long"
    assert info.value.message.startswith("name: ")


def test_every_error_code_is_documented(h: Harness):
    # Every refusal the other tests provoke uses a documented code; spot-check a few here.
    for pid, name, payload in [
        (L1, "chat.send", {"text": ""}),
        (L1, "poll.open", {}),
        (TRAINER_ID, "wb.undo", {}),
        (TRAINER_ID, "nope", {}),
    ]:
        with pytest.raises(CommandError) as info:
            h.core.execute(pid, name, payload, 10**9)
        assert info.value.code in CODES


# -- bugs -------------------------------------------------------------------------------------------


def test_length_limit_holds_after_normalisation(h: Harness):
    text = "\ufb2c" * CHAT_LEN  # HEBREW LETTER SHIN WITH DAGESH AND SHIN DOT: 1 char, 3 after NFC
    try:
        out = h.core.execute(L1, "chat.send", {"text": text}, 10**9)
    except CommandError as exc:
        assert exc.code == "too_long"
    else:
        assert len(out.events[0].data["text"]) <= CHAT_LEN


def test_name_limit_holds_after_normalisation():
    try:
        name = clean_name("\ufb2c" * NAME_LEN)
    except CommandError as exc:
        assert exc.code == "too_long"
    else:
        assert len(name) <= NAME_LEN


def test_c1_control_characters_are_stripped(h: Harness):
    out = h.run(L1, "chat.send", {"text": "a\x9b31mb\x80c\x9f"})
    assert out.events[0].data["text"] == "a31mbc"


def test_a_view_is_a_copy_not_a_window_into_the_state():
    core = SessionCore("s", "T")
    core.join(TRAINER_ID, "Tess", "trainer", 0)
    core.join(L1, "Lea", "learner", 0)
    core.execute(TRAINER_ID, "session.start", {}, 0)
    opened = core.execute(
        TRAINER_ID, "poll.open", {"question": "Q", "options": ["a", "b"], "correct": [1]}, 0
    )
    poll_id = opened.reply["id"]
    core.execute(L1, "poll.vote", {"poll_id": poll_id, "choices": [0]}, 0)
    before = [core.state.view(a, v) for a, v in (("trainer", TRAINER_ID), ("learner", L1))]

    def scribble(value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                scribble(v)
        elif isinstance(value, list):
            for v in value:
                scribble(v)
            value.append("scribble")

    for audience, viewer in (("trainer", TRAINER_ID), ("learner", L1)):
        scribble(core.state.view(audience, viewer))  # type: ignore[arg-type]
    after = [core.state.view(a, v) for a, v in (("trainer", TRAINER_ID), ("learner", L1))]
    assert after == before
    assert opened.events[0].data["correct"] == [1]


def test_from_view_does_not_share_lists_with_the_snapshot_for_board_and_chat():
    core = SessionCore("s", "T")
    core.join(TRAINER_ID, "Tess", "trainer", 0)
    core.execute(TRAINER_ID, "session.start", {}, 0)
    core.execute(TRAINER_ID, "wb.stroke.begin", {"points": [1, 1]}, 0)
    snapshot = core.state.view("trainer", TRAINER_ID)
    client = SessionState.from_view(snapshot, TRAINER_ID)
    snapshot["board"]["pages"][0]["elements"][0]["points"].append(9)
    assert client.view("trainer", TRAINER_ID)["board"]["pages"][0]["elements"][0]["points"] == [1, 1]
