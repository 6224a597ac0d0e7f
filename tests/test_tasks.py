"""The shared grid of periodic work (`classroom/tasks.py`): `until_tick` is the time left to the
next multiple of the period on the running loop's clock, and `next_tick` sleeps exactly that long,
so tasks of different periods that divide each other wake up on the same instants."""

from __future__ import annotations

import asyncio

import pytest

from classroom.tasks import next_tick, paced, until_tick

PERIOD = 0.05


def _off_grid(t: float, period: float) -> float:
    """How far `t` is from the nearest multiple of `period`."""
    r = t % period
    return min(r, period - r)


async def test_until_tick_lands_on_the_next_multiple_of_the_period():
    loop = asyncio.get_running_loop()
    for period in (PERIOD, 1.0, 3.0):
        now = loop.time()
        left = until_tick(period)
        assert 0 < left <= period
        # now + left is a multiple of the period (up to the clock's move between the two reads).
        assert _off_grid(now + left, period) < 0.01


async def test_until_tick_counts_down_towards_the_tick():
    loop = asyncio.get_running_loop()
    t1, left1 = loop.time(), until_tick(PERIOD)
    await asyncio.sleep(PERIOD / 3)
    t2, left2 = loop.time(), until_tick(PERIOD)
    # What was left shrank by the time that passed (modulo the period: a tick may have come).
    assert _off_grid((left1 - left2) - (t2 - t1), PERIOD) < 0.01


async def test_next_tick_wakes_on_the_grid_not_a_period_later():
    loop = asyncio.get_running_loop()
    period = 0.5
    for _ in range(3):
        await next_tick(period)
        await asyncio.sleep(period / 2)  # off the grid: about half a period to the next tick
        t0 = loop.time()
        tick = t0 + until_tick(period)
        await next_tick(period)
        woke = loop.time()
        # Not before the tick (up to the loop's clock resolution, which it rounds timers by), and
        # well before t0 + period, where a plain sleep of the period would have ended.
        assert woke >= tick - 2 * loop._clock_resolution
        assert woke - tick < 0.2


async def test_until_tick_needs_a_running_loop():
    with pytest.raises(RuntimeError):
        await asyncio.to_thread(until_tick, PERIOD)


async def test_paced_covers_every_item_once_with_the_pauses_between_slices():
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    slices = [s async for s in paced(7, 3, 0.05)]
    assert slices == [(0, 3), (3, 6), (6, 7)]
    assert loop.time() - t0 >= 0.1 - 2 * loop._clock_resolution  # two pauses, none before the first
    assert [s async for s in paced(0, 3, 0.05)] == []
