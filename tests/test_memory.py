"""A join's snapshot is not kept alive after it is written, and freed heap goes back to the system."""

from __future__ import annotations

import asyncio
import gc

from engineio.packet import Packet

from classroom.heap import HeapTrimmer, LongLived
from signaling.websocket import LARGE_PACKET


def large_packets() -> list[Packet]:
    return [
        o
        for o in gc.get_objects()
        if isinstance(o, Packet) and isinstance(o.data, str | bytes) and len(o.data) >= LARGE_PACKET
    ]


async def test_a_joins_snapshot_is_let_go_once_written(server):
    info, trainer = await server.live_session()
    for i in range(8):  # a board worth ~50 KB of JSON
        points = [v for j in range(250) for v in (100 + i + j % 300, 100 + j % 200)]
        await trainer.request("wb.stroke.begin", points=points)
    learners = [await server.client(info["join_url"], f"L{i}") for i in range(3)]
    assert all(len(c.view()["board"]["pages"][0]["elements"]) == 8 for c in learners)
    await asyncio.sleep(0.1)  # the writers have sent the acks (and the no-op after them)
    assert large_packets() == []  # without the no-op, each writer holds its snapshot for 10 s
    await learners[0].request("chat.send", text="still talking")
    await trainer.wait_for("chat.message", lambda e: e["data"]["text"] == "still talking")


async def test_trims_the_heap_after_enough_large_buffers():
    heap = HeapTrimmer(after_bytes=1000, every_s=0.01)
    heap.start()
    try:
        heap.note(500)
        await asyncio.sleep(0.1)
        assert heap.trims == 0  # not enough yet
        heap.note(600)
        for _ in range(100):
            if heap.trims:
                break
            await asyncio.sleep(0.01)
        assert heap.trims == 1 and heap.pending == 0
    finally:
        await heap.close()


async def test_survivors_of_a_full_collection_are_set_aside_then_handed_back():
    long_lived = LongLived(every_s=0.2)
    long_lived.start()
    try:
        keep = [[i] for i in range(1000)]  # noqa: F841 - live objects for the collection to keep
        gc.collect()
        assert long_lived.freezes == 1 and gc.get_freeze_count() >= 1000
        gc.collect(0)  # a young collection leaves them be
        assert long_lived.freezes == 1
        for _ in range(100):
            if gc.get_freeze_count() == 0:
                break
            await asyncio.sleep(0.02)
        assert gc.get_freeze_count() == 0  # handed back, so dead cycles among them are found
    finally:
        await long_lived.close()
    gc.collect()
    assert gc.get_freeze_count() == 0 and gc.callbacks.count(long_lived._on_gc) == 0
