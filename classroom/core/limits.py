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
POLL_DRAFTS_MAX = 50  # polls a trainer has prepared and not opened yet
WB_TEXT_LEN = 500
WB_WIDTH = 800  # logical board width; coordinates run 0..WB_WIDTH, 0..WB_HEIGHT
WB_HEIGHT = 450
WB_POINTS_PER_MESSAGE = 500  # x,y pairs in one begin/extend command
WB_POINTS_PER_STROKE = 5000
WB_ELEMENTS_PER_PAGE = 5000
WB_PAGES = 50
WB_UNDO_DEPTH = 100
# What the board may hold, in elements and in points (an element's weight: a stroke's x,y pairs, 2 for
# a shape, 1 + len/4 for a text). Memory, the log and every join snapshot grow with it.
WB_POINTS_PER_PAGE = 200_000
WB_POINTS_PER_SESSION = 1_000_000  # on all pages together
WB_ELEMENTS_PER_SESSION = 50_000
# Learners together may fill at most this share of a page's or the session's budgets: whatever they
# draw, a trainer can still draw on the rest.
WB_LEARNER_SHARE = 0.75
# What one learner may draw in a whole session, counted as drawn (erasing gives nothing back).
WB_POINTS_PER_LEARNER = 100_000
# The undo/redo history a participant keeps, in points per stack (oldest entries go first).
WB_HISTORY_POINTS = 400_000
PAYLOAD_BYTES = 64 * 1024
PAYLOAD_DEPTH = 16  # nesting of lists and objects in one socket packet
REACTIONS = ("👍", "👏", "❤️", "😂", "😮", "🎉", "🤔", "🙌")


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `burst` commands, refilled at `burst` per `per_ms`."""

    burst: int
    per_ms: int


# A replay viewer's progress reports (POST .../viewers/{viewer}/progress): at most this many are
# stored per viewer, and they come at most at this rate (a player reports every few seconds).
PROGRESS_REPORTS = 10_000
PROGRESS_RATE = Rate(30, 30_000)
PROGRESS_VIEWERS = 10_000  # viewers whose rate buckets are kept in memory (least recent dropped)


# Learners at one network address (when the edge says where they connect from) share this many
# times one person's bucket of every kind: new identities from one learner link do not multiply it.
ADDRESS_SHARE = 4


@dataclass(frozen=True, slots=True)
class Rates:
    chat: Rate = Rate(5, 5_000)
    reaction: Rate = Rate(5, 3_000)
    question: Rate = Rate(3, 30_000)
    hand: Rate = Rate(6, 10_000)
    board: Rate = Rate(120, 1_000)
    points: Rate = Rate(3_000, 1_000)  # whiteboard points per learner
