"""Open recordings, cached, with every blocking read run in a small thread pool."""

from __future__ import annotations

import asyncio
import shutil
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from . import codec
from .paths import events_path, recording_dir, valid_id
from .replay import Recording, RecordingError

T = TypeVar("T")
CACHED = 32


class Library:
    def __init__(self, root: Path, is_writing: Callable[[str], bool] = lambda _: False) -> None:
        self.root = root
        self._is_writing = is_writing
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="replay")
        self._open: OrderedDict[str, Recording] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}

    def exists(self, session_id: str) -> bool:
        """Is there a recording (not just a crash-guard log of a session recorded off)? A log
        whose header is unreadable is one: reading it reports the damage."""
        if not valid_id(session_id):
            return False
        try:
            with open(events_path(self.root, session_id), "rb") as f:
                head = f.read(4096)
        except OSError:
            return False
        first = next(codec.iter_log(head), None)
        if first is None:
            return bool(head)
        return first[2]["h"].get("recording") != "off"

    async def read(self, session_id: str, fn: Callable[[Recording], T]) -> T:
        """Run `fn(recording)` in the pool. One reader per recording at a time: its index is
        extended in place."""
        if not self.exists(session_id):
            raise RecordingError(session_id, "no recording")
        rec = self._open.get(session_id)
        if rec is None:
            rec = self._open[session_id] = Recording(self.root, session_id)
            while len(self._open) > CACHED:
                old, _ = self._open.popitem(last=False)
                self._locks.pop(old, None)
        self._open.move_to_end(session_id)
        rec.live = self._is_writing(session_id)
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, rec)

    async def delete(self, session_id: str) -> None:
        self._open.pop(session_id, None)
        await asyncio.get_running_loop().run_in_executor(
            self._pool, lambda: shutil.rmtree(recording_dir(self.root, session_id), ignore_errors=True)
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)
