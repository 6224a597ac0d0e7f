"""The pure session core: commands in, events out, state as a fold of the events."""

from .errors import CODES, CommandError
from .events import AUDIENCES, Audience, Event
from .registry import COMMANDS, LEARNER, TRAINER, project
from .session import Outcome, SessionCore, clean_name
from .state import SessionState, apply

__all__ = [
    "AUDIENCES",
    "CODES",
    "COMMANDS",
    "LEARNER",
    "TRAINER",
    "Audience",
    "CommandError",
    "Event",
    "Outcome",
    "SessionCore",
    "SessionState",
    "apply",
    "clean_name",
    "project",
]
