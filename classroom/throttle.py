"""At most one log line per cause a while: shared by the HTTP side and the real-time edge."""

from __future__ import annotations

import logging
import time
from typing import Any


class LogThrottle:
    """At most one log line per cause per `every` seconds; the next line says how many were held
    back. Causes are names chosen by the code, never client data, so their number stays small."""

    def __init__(self, logger: logging.Logger, every: float = 60.0) -> None:
        self.logger = logger
        self.every = every
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(
        self, level: int, cause: str, msg: str, *args: Any, exc_info: bool | BaseException = False
    ) -> bool:
        now = time.monotonic()
        if now < self._next.get(cause, 0.0):
            self._held[cause] = self._held.get(cause, 0) + 1
            return False
        if len(self._next) > 1000:
            self._next.clear()
            self._held.clear()
        self._next[cause] = now + self.every
        held = self._held.pop(cause, 0)
        if held:
            msg += " (%d more like it in the last %.0f s)"
            args = (*args, held, self.every)
        self.logger.log(level, msg, *args, exc_info=exc_info)
        return True
