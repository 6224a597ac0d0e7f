"""Background tasks: stop one cleanly, or run a housekeeping step every few seconds."""

from __future__ import annotations

import asyncio
import contextlib


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it has stopped."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Periodic:
    """Housekeeping every `every_s` seconds on the event loop, from `start` until `close`."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            await self.tick()

    async def tick(self) -> None:
        raise NotImplementedError
