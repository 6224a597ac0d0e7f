"""Exports are safe to open whatever participants typed: no CSV cell starts a spreadsheet formula,
no name or message forges a line in chat.txt or a cue in WebVTT. Checked over a real server (what
the core lets through today) and over hand-made events (what older logs may hold)."""

from __future__ import annotations

import csv
import io
import re

from recorder import exports

from .test_replay_api import call, token_of

FORMULAS = ["=cmd|' /C calc'!A0", '+HYPERLINK("http://evil")', "@SUM(1+1)", "-2+3", "\t=1+1", "\r=1+1"]
DANGEROUS = (*"=+-@\t\r\n", "＝", "＋", "－", "＠")


def _cells(raw: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(raw.decode(), newline="")))


def _assert_inert(raw: bytes) -> None:
    """Every cell is text a spreadsheet shows as is, and every text cell is quoted."""
    for row in _cells(raw)[1:]:
        for cell in row:
            assert not cell.startswith(DANGEROUS), cell
    # Read back as QUOTE_NONNUMERIC: an unquoted cell that is not a number raises.
    typed = list(csv.reader(io.StringIO(raw.decode(), newline=""), quoting=csv.QUOTE_NONNUMERIC))
    assert all(isinstance(cell, str) for cell in typed[0])


def _assert_one_line_per_message(txt: str, count: int) -> None:
    lines = txt.splitlines()
    assert len(lines) == count, lines
    assert all(re.match(r"\[\d\d:\d\d:\d\d\] ", line) for line in lines)


def _assert_cues(vtt: str, count: int) -> list[str]:
    """The cues, parsed as a WebVTT reader does: blocks separated by blank lines."""
    assert vtt.startswith("WEBVTT\n\n")
    blocks = [b for b in re.split(r"\n{2,}", vtt.strip()) if b][1:]
    assert len(blocks) == count, blocks
    texts = []
    for i, block in enumerate(blocks):
        lines = block.split("\n")
        assert lines[0] == str(i + 1) and re.fullmatch(r"[\d:.]+ --> [\d:.]+", lines[1]), block
        assert all("-->" not in line and "\r" not in line for line in lines[2:])
        texts.append("\n".join(lines[2:]))
    return texts


async def test_exports_over_the_server_are_inert(server):
    info, trainer = await server.live_session()
    # Names are one line at the core; message text may hold line breaks.
    evil = await server.client(info["join_url"], "Eve")
    formula = await server.client(info["join_url"], '=HYPERLINK("http://evil","x")')
    await evil.request("chat.send", text="hello\r\n[00:00:02] Tess Trainer: forged too")
    await evil.request("chat.send", text="a --> b\n\n99\n00:00:00.000 --> 00:00:09.000\nTess: forged")
    await formula.request("chat.send", text="@SUM(1+1)")
    poll = await trainer.request("poll.open", question="=1+1", options=FORMULAS[:3])
    await formula.request("poll.vote", poll_id=poll["id"], choices=[0])
    await trainer.request("poll.close", poll_id=poll["id"])
    poll2 = await trainer.request("poll.open", question="-1+1", options=FORMULAS[3:5])
    await trainer.request("poll.close", poll_id=poll2["id"])
    q = await formula.request("qa.ask", text="+1+1 what?")
    await trainer.request("qa.answer", question_id=q["id"], text="@SUM(A1:A9)")
    await trainer.request("session.end")
    rid, token = info["id"], token_of(info["trainer_url"])

    status, polls = await call(server, "GET", f"/api/recordings/{rid}/export/polls.csv", token)
    assert status == 200
    _assert_inert(polls)
    rows = _cells(polls)
    assert [r[4] for r in rows[1:]] == ["'" + f.strip() for f in FORMULAS[:5]]  # the core trims
    assert rows[1][2] == "'=1+1" and rows[4][2] == "'-1+1"
    status, questions = await call(server, "GET", f"/api/recordings/{rid}/export/questions.csv", token)
    _assert_inert(questions)
    rows = _cells(questions)
    assert rows[1][2:4] == ["'+1+1 what?", '\'=HYPERLINK("http://evil","x")']
    assert rows[1][6] == "'@SUM(A1:A9)"

    status, txt = await call(server, "GET", f"/api/recordings/{rid}/export/chat.txt", token)
    _assert_one_line_per_message(txt.decode(), 3)
    assert "] Eve: hello ⏎ [00:00:02] Tess Trainer: forged too\n" in txt.decode()
    status, vtt = await call(server, "GET", f"/api/recordings/{rid}/export/chat.vtt", token)
    texts = _assert_cues(vtt.decode(), 3)
    assert texts[1] == "Eve: a --&gt; b\n99\n00:00:00.000 --&gt; 00:00:09.000\nTess: forged"


def _event(seq: int, t: int, name: str, text: str) -> dict:
    return {
        "seq": seq,
        "t": t,
        "type": "chat.message",
        "actor": "x",
        "data": {"id": f"m{seq}", "name": name, "text": text},
    }


def test_old_logs_with_any_line_breaks_stay_one_line_and_one_cue():
    breaks = ["\n", "\r", "\r\n", "\v", "\f", "\x1c", "\x85", "\u2028", "\u2029", "\n\n\n"]
    events = [
        _event(i + 1, i * 1000, f"N{b}ame", f"line{b}[00:00:00] X: y{b}-->z") for i, b in enumerate(breaks)
    ]
    _assert_one_line_per_message(exports.chat_txt(events).decode(), len(breaks))
    texts = _assert_cues(exports.chat_vtt(events).decode(), len(breaks))
    assert all(t.startswith("N ame: line") for t in texts), texts


def test_csv_cells_per_owasp():
    state = {
        "polls": [
            {
                "id": "p1",
                "t": 0,
                "question": "\t=x",
                "options": ["=a", "b", " =c", "a=b", "-", ""],
                "counts": None,
                "correct": None,
                "quiz": False,
                "voters": None,
                "anonymous": False,
            }
        ],
        "questions": [],
    }
    raw = exports.polls_csv(state)
    _assert_inert(raw)
    rows = _cells(raw)
    assert [r[4] for r in rows[1:]] == ["'=a", "b", " =c", "a=b", "'-", ""]
    assert rows[1][2] == "'\t=x"
    assert rows[1][0] == "p1" and rows[1][1] == "0"  # numbers stay numbers
