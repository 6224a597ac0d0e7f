"""Memory housekeeping for many connections: `HeapTrimmer` and `LongLived`.

`HeapTrimmer` gives the heap back to the system after bursts of large, short-lived buffers.

A class joining at once makes a snapshot per learner (tens to hundreds of KiB each, as JSON).
They are freed as soon as they are written, but glibc keeps freed chunks between live ones in
its heap, so the server's resident memory would stay at the burst's high-water mark. Once enough
large buffers have come and gone, `malloc_trim` (off the event loop) returns those pages.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable

from .tasks import Periodic

log = logging.getLogger(__name__)

TRIM_AFTER_BYTES = 8 * 1024 * 1024  # large buffers written since the last trim
TRIM_EVERY_S = 2.0


def _malloc_trim() -> Callable[[], None] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


class HeapTrimmer(Periodic):
    def __init__(self, after_bytes: int = TRIM_AFTER_BYTES, every_s: float = TRIM_EVERY_S) -> None:
        super().__init__(every_s)
        self.after_bytes = after_bytes
        self.pending = 0
        self.trims = 0
        self._trim = _malloc_trim()

    def note(self, nbytes: int) -> None:
        """A large buffer was written and is about to be freed."""
        self.pending += nbytes

    def start(self) -> None:
        if self._trim is not None:
            super().start()

    async def tick(self) -> None:
        if self._trim is None or self.pending < self.after_bytes:
            return
        self.pending = 0
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._trim)
            self.trims += 1
        except Exception:  # never let housekeeping take the server down
            log.exception("malloc_trim failed")


UNFREEZE_EVERY_S = 600.0


class LongLived(Periodic):
    """Keep full garbage collections from walking every connection's objects again and again.

    With thousands of learners the process holds a few hundred thousand objects that live as long
    as their connections; a full collection walks them all (100+ ms at 2,000 learners) and stalls
    every delivery meanwhile. What survives a full collection is moved out of the collector's
    sight (`gc.freeze`), so later ones walk only what is newer. Every `every_s` it is all handed
    back (`gc.unfreeze`), so cycles among objects that have died since are still collected.
    """

    def __init__(self, every_s: float = UNFREEZE_EVERY_S) -> None:
        super().__init__(every_s)
        self.freezes = 0

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "stop" and info.get("generation") == 2:
            gc.freeze()
            self.freezes += 1

    def start(self) -> None:
        if self._task is None:
            gc.callbacks.append(self._on_gc)
            super().start()

    async def close(self) -> None:
        if self._task is not None:
            gc.callbacks.remove(self._on_gc)
            await super().close()
            gc.unfreeze()

    async def tick(self) -> None:
        gc.unfreeze()
