"""Every size and rate bound of a session, in one place (documented in docs/protocol.md)."""

from __future__ import annotations

from dataclasses import dataclass

NAME_LEN = 60
TITLE_LEN = 200
CHAT_LEN = 2000
QUESTION_LEN = 1000
ANSWER_LEN = 2000
POLL_QUESTION_LEN = 500
POLL_OPTION_LEN = 200
POLL_OPTIONS_MIN = 2
POLL_OPTIONS_MAX = 10
WB_TEXT_LEN = 500
WB_WIDTH = 800  # logical board width; coordinates run 0..WB_WIDTH, 0..WB_HEIGHT
WB_HEIGHT = 450
WB_POINTS_PER_MESSAGE = 500  # x,y pairs in one begin/extend command
WB_POINTS_PER_STROKE = 5000
WB_ELEMENTS_PER_PAGE = 5000
WB_PAGES = 50
WB_UNDO_DEPTH = 100
PAYLOAD_BYTES = 64 * 1024
REACTIONS = ("👍", "👏", "❤️", "😂", "😮", "🎉", "🤔", "🙌")


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `burst` commands, refilled at `burst` per `per_ms`."""

    burst: int
    per_ms: int


@dataclass(frozen=True, slots=True)
class Rates:
    chat: Rate = Rate(5, 5_000)
    reaction: Rate = Rate(5, 3_000)
    question: Rate = Rate(3, 30_000)
    hand: Rate = Rate(6, 10_000)
    board: Rate = Rate(120, 1_000)
