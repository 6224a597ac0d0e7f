"""Background tasks: stop one cleanly, run a housekeeping step every few seconds, and sleep to the
next tick of a shared grid (`next_tick`, or wait that long for something else: `until_tick`) so
that a process's periodic tasks wake up together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


async def cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it has stopped."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def until_tick(period: float) -> float:
    """Seconds from now until the next multiple of `period` on the running loop's clock, in
    (0, period]: the timeout of a wait that should end on the shared grid (`next_tick`)."""
    loop = asyncio.get_running_loop()
    return period - loop.time() % period


async def next_tick(period: float) -> None:
    """Sleep until the next multiple of `period` on the loop's clock (CLOCK_MONOTONIC, the same in
    every process of the machine). Periodic tasks whose periods divide each other then wake up in
    one pass of the event loop (one system call to wait instead of one each), and the sockets that
    became readable meanwhile are read in the same pass: an idle server wakes up a few times a
    second, not once per timer."""
    await asyncio.sleep(until_tick(period))


async def paced(n: int, size: int, pause: float) -> AsyncIterator[tuple[int, int]]:
    """(start, stop) over `n` items in slices of `size`, sleeping `pause` seconds between two: a
    burst of writes spread out, so other work (a join storm's commands) is served in between."""
    for start in range(0, n, size):
        if start:
            await asyncio.sleep(pause)
        yield start, min(start + size, n)


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
            await next_tick(self.every_s)
            await self.tick()

    async def tick(self) -> None:
        raise NotImplementedError
