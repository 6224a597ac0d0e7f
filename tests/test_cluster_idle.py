"""An idle cluster's traffic to Redis (issue 11, "cluster idle CPU"): each node makes one round trip
a beat for its heartbeat and every lease it keeps or follows (`Node._beat`); its blocking reads (its
inbox, each followed session's stream) ask again only every `BLOCK_S`. Counted from Redis's own
statistics (`total_reads_processed`: one per request a client sent), not timed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from classroom.cluster.fencing import BEAT_S
from classroom.cluster.node import BLOCK_S

from .cluster import RedisServer, cluster_of
from .test_cluster import redis_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(180)

WINDOW_S = 6.0


async def test_an_idle_cluster_makes_one_round_trip_a_beat_per_node(
    tmp_path: Path,
    redis_server: RedisServer | None,  # noqa: F811
) -> None:
    async with cluster_of(tmp_path, 2, redis_server and redis_server.url) as cl:
        info = await cl.create_session()
        trainer = await cl.client(info["trainer_url"], 0, "Tess")  # node 0 owns
        await trainer.request("session.start")
        learner = await cl.client(info["join_url"], 1, "Lee")  # node 1 follows
        await learner.request("chat.send", text="hello")
        await asyncio.sleep(2 * BEAT_S)  # the joins' traffic is over

        async def reads() -> int:
            return int((await cl.redis.info("stats"))["total_reads_processed"])

        before = await reads()
        await asyncio.sleep(WINDOW_S)
        per_s = (await reads() - before - 1) / WINDOW_S  # not this test's own INFO
        # Per node: the beat, and its two blocking reads (inbox, stream) at most once in the
        # window; the owner's check for participants on dead nodes every 3 s on top. Separate
        # heartbeat, lease renewal and lease check loops, and blocking reads of 1 s, made ~13 a
        # second here.
        assert BLOCK_S > WINDOW_S
        assert per_s <= 2 / BEAT_S + 2 * 2 / WINDOW_S + 1, per_s
        assert per_s >= 2 / BEAT_S - 0.5, per_s  # the nodes do beat
        print(f"round trips to Redis per second: {per_s:.1f}")
