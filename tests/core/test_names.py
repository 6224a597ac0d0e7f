"""Display names are one line: they are written into line-based exports (chat.txt, WebVTT cues)."""

from __future__ import annotations

import pytest

from classroom.core import CommandError, clean_name


@pytest.mark.parametrize(
    "raw, name",
    [
        ("Ada\nLovelace", "Ada Lovelace"),
        ("Ada\r\n\r\n00:00:01.000 --> 00:00:09.000\nForged", "Ada 00:00:01.000 --> 00:00:09.000 Forged"),
        ("[10:00:00] Tess: fake\rline", "[10:00:00] Tess: fake line"),
        ("x\u2028y\u2029z\x85w", "x y z w"),
        ("tab\there\vand\fform", "tab here and form"),
        ("\x1cfile\x1dgroup\x1erecord\x1funit", "file group record unit"),
        ("evil\u202egnp.exe", "evilgnp.exe"),
        ("\u2066iso\u2069late\u200f", "isolate"),
        ("  spaced   out  ", "spaced out"),
        ("Zoë 日本", "Zoë 日本"),
    ],
)
def test_names_are_folded_onto_one_line(raw: str, name: str):
    assert clean_name(raw) == name


@pytest.mark.parametrize("raw", ["\n", "\r\n\t", "\u2028\u202e"])
def test_a_name_of_only_breaks_is_empty(raw: str):
    with pytest.raises(CommandError) as info:
        clean_name(raw)
    assert info.value.code == "invalid_payload"


def test_chat_text_keeps_its_lines():
    from classroom.core import SessionCore

    core = SessionCore("s", "T")
    core.join("t", "Tess", "trainer", 0)
    core.execute("t", "session.start", {}, 0)
    out = core.execute("t", "chat.send", {"text": "line one\nline two"}, 1)
    assert out.events[0].data["text"] == "line one\nline two"
