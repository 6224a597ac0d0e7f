"""Live media in cluster mode: three server processes on loopback, one private Redis, one shared
data directory, real aiortc publishers and viewers. The session's owner runs its media; the
other nodes forward their sockets' `media.*` commands to it and route its offers back
(signaling/media_cluster.py)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from classroom.cluster import k_lease

from .cluster import Cluster, RedisServer, cluster_of
from .test_cluster import redis_server  # noqa: F401 - the fixture
from .webrtc.helpers import eventually
from .webrtc.socket_peers import (
    SocketPublisher,
    SocketViewer,
    increasing,
    late_join,
    live_tracks,
    receive_all,
)

pytestmark = pytest.mark.timeout(240)


async def owner_index(cl: Cluster, session_id: str) -> int:
    """Which node owns the session (its id is in its log: "node <id> owns session <session>")."""
    owner = (await cl.redis.get(k_lease(session_id))).decode()
    for i in range(len(cl.nodes)):
        if re.search(rf"node {owner} owns session {session_id}", cl.log(i)):
            return i
    raise AssertionError(f"no node log names {owner}")


async def manifest(cl: Cluster, node: int, session_id: str) -> dict[str, Any]:
    async with cl.http.get(
        f"{cl.nodes[node].base}/api/recordings/{session_id}",
        headers={"Authorization": "Bearer test-admin-key"},
    ) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def test_publisher_on_one_node_viewers_on_the_others(
    tmp_path: Path,
    redis_server: RedisServer | None,  # noqa: F811
) -> None:
    async with cluster_of(tmp_path, 3, redis_server and redis_server.url, "--log-level", "info") as cl:
        info = await cl.create_session(node=0, title="Cluster media")
        sid = info["id"]
        # The first socket lands on node 2: node 2 takes the lease, and runs the session's media.
        host = await cl.client(info["trainer_url"], 2, "Host")
        await host.request("session.start")
        assert await owner_index(cl, sid) == 2
        trainer = await cl.client(info["trainer_url"], 0, "Tess")  # publishes from node 0
        ada = await cl.client(info["join_url"], 1, "Ada")  # views from node 1
        bob = await cl.client(info["join_url"], 2, "Bob")  # views on the media node itself
        lou = await cl.client(info["join_url"], 1, "Lou")  # joins the media late, from node 1
        tid, aid = trainer.you["id"], ada.you["id"]
        publisher = SocketPublisher(trainer)
        again = SocketPublisher(trainer, start=1000)
        mic = SocketPublisher(ada, video=False)
        viewers = [SocketViewer(ada), SocketViewer(bob)]
        late = SocketViewer(lou)
        everyone = (host, trainer, ada, bob, lou)
        try:
            ack = await publisher.publish()
            assert ack["ok"] and ack["sdp"].startswith("v=0"), ack
            for c in everyone:
                await c.wait_until(lambda c=c: live_tracks(c) == [(tid, "camera"), (tid, "mic")], 15)
            await receive_all(viewers, tid, 30)

            # A viewer joining two seconds in gets a key frame at once.
            await late_join(viewers[0], late, 30)  # on another node than the media

            # Unpublishing ends the tracks on every node.
            assert (await trainer.request("media.unpublish"))["ok"]
            for c in everyone:
                await c.wait_until(lambda c=c: live_tracks(c) == [], 15)

            # A new peer connection (a reload) publishes again; the viewers get re-offered.
            assert (await again.publish())["ok"]
            for c in everyone:
                await c.wait_until(lambda c=c: live_tracks(c) == [(tid, "camera"), (tid, "mic")], 15)
            for viewer in (*viewers, late):
                await eventually(lambda v=viewer: any(n >= 1000 for n in v.counters), 20, "the new frames")
                await viewer.wait_video(10, timeout=20)
                assert increasing([n for n in viewer.counters if n >= 1000]) and viewer.offers >= 1

            # The floor, given and taken from node 0, for a learner publishing from node 1.
            refused = await mic.publish()
            assert refused["error"]["code"] == "forbidden", refused
            await mic.close()
            mic = SocketPublisher(ada, video=False)
            await trainer.request("floor.give", id=aid)
            await ada.wait_until(lambda: aid in ada.state.media["floor"], 15)
            assert (await mic.publish())["ok"]
            for c in everyone:
                await c.wait_until(lambda c=c: (aid, "mic") in live_tracks(c), 15)
            await asyncio.sleep(2)  # media for the recording (a file opens after 1 s of it)
            await trainer.request("floor.take", id=aid)
            for c in everyone:
                await c.wait_until(lambda c=c: (aid, "mic") not in live_tracks(c), 15)
            assert (await trainer.request("media.unpublish"))["ok"]
        finally:
            for peer in (*viewers, late, publisher, again, mic):
                await peer.close()
        await host.request("session.end")

        # The recording: written by the media node, listed by every node's replay manifest.
        async def finished() -> bool:
            media = (await manifest(cl, 0, sid))["media"]
            return len(media) >= 2 and all(m["status"] == "complete" for m in media)

        await eventually(finished, 30, "the media files finalised")
        for node in range(3):
            media = (await manifest(cl, node, sid))["media"]
            mine = [m for m in media if m["publisher"] == tid]
            assert len(mine) == 2, media  # the first peer connection's file and the second's
            assert all(m["content_type"] == "video/webm" and m["duration_ms"] > 500 for m in mine), mine
            assert mine[0]["start_ms"] < mine[1]["start_ms"]
            assert all(sorted(t["kind"] for t in m["tracks"]) == ["audio", "video"] for m in mine)
        assert any(m["publisher"] == aid for m in media), media  # the learner's voice too


@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_media_moves_with_the_session_when_its_node_goes(
    tmp_path: Path,
    redis_server: RedisServer | None,  # noqa: F811
    how: str,
) -> None:
    """The media node killed (-9: its lease lapses) or stopped (SIGTERM: it hands the session
    over): the other nodes' sockets hear `media.reset`, and publish and view again on the new one."""
    async with cluster_of(tmp_path, 3, redis_server and redis_server.url, "--log-level", "info") as cl:
        info = await cl.create_session(node=0, title="Failover media")
        sid = info["id"]
        host = await cl.client(info["trainer_url"], 2, "Host")  # node 2 owns, and will die
        await host.request("session.start")
        assert await owner_index(cl, sid) == 2
        trainer = await cl.client(info["trainer_url"], 0, "Tess")
        ada = await cl.client(info["join_url"], 1, "Ada")
        tid = trainer.you["id"]
        first, second = SocketPublisher(trainer), SocketPublisher(trainer, start=1000)
        viewer = SocketViewer(ada)
        try:
            assert (await first.publish())["ok"]
            await viewer.start()
            await viewer.wait_video(15, timeout=30)
            if how == "kill":
                await cl.nodes[2].kill()
            else:
                code, _took = await cl.nodes[2].stop()
                assert code == 0
            # Both sockets hear that the media stopped; the new owner says no track is live.
            for c in (trainer, ada):
                reset = await c.wait_personal("media.reset", timeout=20)
                assert reset["code"] == "media_moved", reset
            for c in (trainer, ada):
                await c.wait_until(lambda c=c: live_tracks(c) == [], 15)
            assert await owner_index(cl, sid) in (0, 1)
            # Publishing and viewing again reach the new media node.
            await first.close()
            await viewer.close()
            viewer = SocketViewer(ada)
            assert (await second.publish())["ok"]
            await ada.wait_until(lambda: live_tracks(ada) == [(tid, "camera"), (tid, "mic")], 15)
            await viewer.start()
            await viewer.wait_video(15, timeout=30)
            assert all(n >= 1000 for n in viewer.counters) and increasing(viewer.counters)
        finally:
            for peer in (viewer, first, second):
                await peer.close()


async def test_media_with_workers_sharing_one_port(
    tmp_path: Path,
    redis_server: RedisServer | None,  # noqa: F811
) -> None:
    """`--workers 2`: the kernel spreads the sockets over both workers (each a node); whichever
    worker owns the session runs the media, and every viewer gets the frames."""
    async with cluster_of(tmp_path, 1, redis_server and redis_server.url, "--workers", "2") as cl:
        info = await cl.create_session(node=0, title="Workers media")
        sid = info["id"]
        trainer = await cl.client(info["trainer_url"], 0, "Tess")
        await trainer.request("session.start")
        learners = [await cl.client(info["join_url"], 0, f"L{i}") for i in range(4)]
        tid = trainer.you["id"]
        publisher = SocketPublisher(trainer)
        viewers = [SocketViewer(c) for c in learners]
        try:
            assert (await publisher.publish())["ok"]
            for c in learners:
                await c.wait_until(lambda c=c: live_tracks(c) == [(tid, "camera"), (tid, "mic")], 15)
            for viewer in viewers:
                await viewer.start()
            for viewer in viewers:
                await viewer.wait_video(20, timeout=30)
                assert increasing(viewer.counters), viewer.counters
            assert (await trainer.request("media.unpublish"))["ok"]
            for c in learners:
                await c.wait_until(lambda c=c: live_tracks(c) == [], 15)
        finally:
            for peer in (*viewers, publisher):
                await peer.close()
        await trainer.request("session.end")

        async def finished() -> bool:
            media = (await manifest(cl, 0, sid))["media"]
            return len(media) == 1 and media[0]["status"] == "complete"

        await eventually(finished, 30, "the media file finalised")
