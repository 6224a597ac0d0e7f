"""A learner flooding the whiteboard is refused while the trainer still draws, and memory stays
bounded: what one participant may draw per second and in all is counted in the core."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

import classroom.core.whiteboard as wb
from classroom.core.limits import Rate, Rates
from classroom.keys import SESSIONS

POINTS = [float(v) for i in range(500) for v in (i % 800, i % 450)]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def test_a_flooding_learner_is_refused_while_the_trainer_draws(server, monkeypatch: pytest.MonkeyPatch):
    # A smaller budget per learner than the real one (100 000 points) keeps the test's memory small;
    # the rate is the real one.
    budget = 20_000
    monkeypatch.setattr(wb, "WB_POINTS_PER_LEARNER", budget, raising=False)
    info, trainer = await server.live_session()
    await trainer.request("wb.permit", learners_can_draw=True)
    learners = [await server.client(info["join_url"], f"Flood {i}") for i in range(3)]
    rate = getattr(Rates(), "points", Rate(3_000, 1_000))
    before = rss_mb()
    start = time.monotonic()
    accepted = dict.fromkeys(range(len(learners)), 0)
    codes: set[str] = set()

    async def flood(i: int) -> None:
        for _ in range(10):
            acks = await asyncio.gather(
                *(learners[i].send("wb.stroke.begin", points=POINTS) for _ in range(30))
            )
            for ack in acks:
                if ack["ok"]:
                    accepted[i] += len(POINTS) // 2
                else:
                    codes.add(ack["error"]["code"])

    async def draw() -> int:
        done = 0
        for _ in range(20):
            ack = await trainer.send("wb.stroke.begin", points=POINTS[:20])
            done += ack["ok"]
            await asyncio.sleep(0.02)
        return done

    *_, trainer_drawn = await asyncio.gather(*(flood(i) for i in range(len(learners))), draw())
    elapsed = time.monotonic() - start
    grown = rss_mb() - before

    assert trainer_drawn == 20
    assert codes <= {"rate_limited", "board_full"} and "rate_limited" in codes
    bound = min(budget, rate.burst + rate.burst * elapsed * 1000 / rate.per_ms + 500)
    assert all(n <= bound for n in accepted.values()), (accepted, bound, elapsed)
    live = server.app[SESSIONS].live[info["id"]]
    board = live.state.board["pages"]["w1"].values()
    learner_points = sum(len(e["points"]) // 2 for e in board if e["author"] != trainer.you["id"])
    assert learner_points == sum(accepted.values())
    assert grown < 80, f"RSS grew {grown:.0f} MB with {learner_points} learner points on the board"
