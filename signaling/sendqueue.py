"""The send queue of one engine.io connection, lean enough to keep thousands of idle ones.

engine.io gives every connection an `asyncio.Queue` for the packets its writer sends, and its
writer waits on it with `wait_for(queue.get(), ...)`, which wraps the wait in a task. An idle
connection so holds four deques, an event and a task (~4 KiB) for a queue that sees only acks and
pings: Classcast's broadcasts never pass through it (`fanout.py` writes frames directly). This
queue has the same interface, for engine.io's one consumer, and holds a list only while packets
wait and a bare future only while the writer does. On a websocket served by `websocket.py` it has
no consumer at all: a sink writes each packet as it is put.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class SendQueue:
    """`asyncio.Queue`'s interface as engine.io's socket uses it, for a single consumer."""

    __slots__ = ("_getters", "_items", "_joiners", "_sink", "_unfinished")

    def __init__(self, *_: Any, **__: Any) -> None:
        self._items: list[Any] | None = None
        self._getters: list[asyncio.Future[Any]] | None = None
        self._unfinished = 0
        self._joiners: list[asyncio.Future[None]] | None = None
        self._sink: Callable[[Any], None] | None = None

    def attach(self, sink: Callable[[Any], None]) -> None:
        """From now on hand every item to `sink` as it is put (a websocket writing it at once),
        after those already waiting: no consumer task needed."""
        self._sink = sink
        while self._items:
            self._deliver(self.get_nowait())

    def detach(self) -> None:
        self._sink = None

    def _deliver(self, item: Any) -> None:
        assert self._sink is not None
        try:
            self._sink(item)
        finally:
            self.task_done()

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        self._unfinished += 1
        if self._sink is not None:
            self._deliver(item)
            return
        while self._getters:
            getter = self._getters.pop(0)
            if not getter.done():  # not given up (timed out)
                getter.set_result(item)
                return
        self._getters = None
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.pop(0)
        if not self._items:
            self._items = None
        return item

    def get(self) -> asyncio.Future[Any]:
        """An awaitable for the next item: a plain future, so `wait_for` needs no task for it.
        If the wait is cancelled (a timeout), a later item stays queued for the next get."""
        fut = asyncio.get_running_loop().create_future()
        if self._items:
            fut.set_result(self.get_nowait())
        elif self._getters is None:
            self._getters = [fut]
        else:
            self._getters.append(fut)
        return fut

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joiners:
            for fut in self._joiners:
                if not fut.done():
                    fut.set_result(None)
            self._joiners = None

    async def join(self) -> None:
        if self._unfinished == 0:
            return
        fut = asyncio.get_running_loop().create_future()
        if self._joiners is None:
            self._joiners = []
        self._joiners.append(fut)
        await fut
