"""Exports of a recording: the whole thing as JSON or msgpack, the chat as WebVTT or plain text,
and poll and Q&A results as CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

import msgpack

FORMATS = {
    "recording.json": "application/json",
    "recording.msgpack": "application/msgpack",
    "chat.vtt": "text/vtt; charset=utf-8",
    "chat.txt": "text/plain; charset=utf-8",
    "polls.csv": "text/csv; charset=utf-8",
    "questions.csv": "text/csv; charset=utf-8",
}
CUE_MS = 5000  # how long a chat cue shows when no later message ends it sooner


def clock(ms: int, vtt: bool = True) -> str:
    h, rest = divmod(max(0, ms), 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, milli = divmod(rest, 1000)
    return f"{h:02}:{m:02}:{s:02}.{milli:03}" if vtt else f"{h:02}:{m:02}:{s:02}"


def whole(manifest: dict[str, Any], events: Iterable[dict[str, Any]], fmt: str) -> bytes:
    doc = {"recording": manifest, "events": list(events)}
    if fmt == "json":
        return json.dumps(doc, ensure_ascii=False).encode()
    return msgpack.packb(doc, use_bin_type=True)


def _messages(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages that were not deleted, in order."""
    messages: dict[str, dict[str, Any]] = {}
    for e in events:
        if e["type"] == "chat.message":
            messages[e["data"]["id"]] = {"t": e["t"], "name": e["data"]["name"], "text": e["data"]["text"]}
        elif e["type"] == "chat.deleted":
            messages.pop(e["data"]["id"], None)
    return list(messages.values())


def one_line(text: str) -> str:
    """A name on one line: any run of whitespace, line breaks of every kind included, is one space
    (names are single-line at the core today; older logs may hold anything)."""
    return " ".join(str(text).split())


def _text_lines(text: str) -> list[str]:
    """A message's non-blank lines, split at every kind of line break."""
    return [line.strip() for line in str(text).splitlines() if line.strip()]


def _vtt_text(text: str) -> str:
    # Cue text is parsed for tags and entities and may not contain "-->": escape all three.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chat_vtt(events: Iterable[dict[str, Any]]) -> bytes:
    """One cue per message. A blank line would end the cue, so a message keeps its lines but not
    its blank ones, and the name before it is one line."""
    messages = _messages(events)
    out = ["WEBVTT", ""]
    for i, m in enumerate(messages):
        end = m["t"] + CUE_MS
        if i + 1 < len(messages):
            end = max(m["t"] + 1, min(end, messages[i + 1]["t"]))
        text = "\n".join(_text_lines(m["text"]))
        out += [
            str(i + 1),
            f"{clock(m['t'])} --> {clock(end)}",
            _vtt_text(f"{one_line(m['name'])}: {text}"),
            "",
        ]
    return "\n".join(out).encode()


def chat_txt(events: Iterable[dict[str, Any]]) -> bytes:
    """One line per message: line breaks inside a message show as " ⏎ ", so no text can start a
    line of its own (and pass for another message)."""
    lines = [
        f"[{clock(m['t'], vtt=False)}] {one_line(m['name'])}: {' ⏎ '.join(_text_lines(m['text']))}"
        for m in _messages(events)
    ]
    return ("\n".join(lines) + "\n").encode() if lines else b""


# A cell starting with one of these is a formula (or becomes one) in Excel, LibreOffice or Google
# Sheets; full-width forms are read as such by some locales' Excel.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")


def csv_cell(value: Any) -> Any:
    """OWASP's CSV injection rule: a text cell that could start a formula gets a leading single
    quote (shown as text, the quote hidden); numbers stay numbers. The writer quotes every text
    cell and doubles its quotes."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv(rows: list[list[Any]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_NONNUMERIC).writerows([[csv_cell(v) for v in row] for row in rows])
    return buf.getvalue().encode()


def polls_csv(state: dict[str, Any]) -> bytes:
    """One row per option of every poll, from the final state as trainers saw it."""
    rows: list[list[Any]] = [
        ["poll_id", "t_ms", "question", "option_index", "option", "votes", "correct", "voters", "anonymous"]
    ]
    for poll in state["polls"]:
        correct = set(poll["correct"] or [])
        for i, option in enumerate(poll["options"]):
            rows.append(
                [
                    poll["id"],
                    poll["t"],
                    poll["question"],
                    i,
                    option,
                    poll["counts"][i] if poll["counts"] else 0,
                    "yes" if i in correct else ("no" if poll["quiz"] else ""),
                    poll["voters"] or 0,
                    "yes" if poll["anonymous"] else "no",
                ]
            )
    return _csv(rows)


def questions_csv(state: dict[str, Any]) -> bytes:
    rows: list[list[Any]] = [["question_id", "t_ms", "question", "asked_by", "votes", "status", "answer"]]
    for q in sorted(state["questions"], key=lambda q: q["seq"]):
        asked_by = "anonymous" if q["anonymous"] else (q["name"] or "")
        rows.append([q["id"], q["t"], q["text"], asked_by, q["votes"], q["status"], q["answer"] or ""])
    return _csv(rows)
