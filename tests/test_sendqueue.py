"""`SendQueue` behaves as engine.io expects of an `asyncio.Queue`, and hands items to a sink."""

from __future__ import annotations

import asyncio

import pytest

from signaling.sendqueue import SendQueue


async def test_items_come_out_in_order_to_one_waiting_consumer():
    q = SendQueue()
    q.put_nowait("a")
    assert await q.get() == "a"
    waiting = asyncio.ensure_future(q.get())
    await asyncio.sleep(0)
    await q.put("b")
    q.put_nowait("c")
    assert await waiting == "b"
    assert q.qsize() == 1 and q.get_nowait() == "c" and q.empty()
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()


async def test_a_timed_out_get_loses_nothing():
    q = SendQueue()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(q.get(), 0.01)
    q.put_nowait("kept")
    assert await asyncio.wait_for(q.get(), 1) == "kept"


async def test_join_waits_for_every_item_to_be_done():
    q = SendQueue()
    await q.join()  # nothing queued: returns at once
    q.put_nowait(1)
    q.put_nowait(2)
    joined = asyncio.ensure_future(q.join())
    q.get_nowait()
    q.task_done()
    await asyncio.sleep(0)
    assert not joined.done()
    q.get_nowait()
    q.task_done()
    await asyncio.wait_for(joined, 1)
    with pytest.raises(ValueError):
        q.task_done()


async def test_an_attached_sink_gets_what_waited_then_each_item_as_it_is_put():
    q = SendQueue()
    q.put_nowait("open")
    written: list[str] = []
    q.attach(written.append)
    assert written == ["open"] and q.empty()
    await q.put("ack")
    assert written == ["open", "ack"]
    await asyncio.wait_for(q.join(), 1)  # written counts as done
    q.detach()
    q.put_nowait("later")
    assert written == ["open", "ack"] and q.get_nowait() == "later"
