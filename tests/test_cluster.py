"""Cluster mode: three server processes on loopback, one private Redis, one shared data directory.
A session spread over every node sees one order; clients resume on another node; the owner
killed -9 loses no acknowledged event; a Redis restart is survived."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from classroom.__main__ import build_parser
from classroom.auth import new_id
from classroom.client import ClassroomClient
from classroom.cluster import Node, connect, k_lease, k_stream
from classroom.config import ConfigError, from_args
from classroom.core.limits import Rates
from classroom.core.presence import COALESCED
from classroom.crowd import BATCH_S, SUMMARY_S

from .cluster import RedisServer, cluster_of, gapless
from .conftest import barrier

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer | None]:
    """A private redis-server, or None when REDIS_URL names one to use instead."""
    if os.environ.get("REDIS_URL"):
        yield None
        return
    server = RedisServer(tmp_path / "redis")
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


def chats(c: ClassroomClient) -> list[tuple[int, str]]:
    return [(e["seq"], e["data"]["text"]) for e in c.events if e["type"] == "chat.message"]


def seqs(c: ClassroomClient) -> list[int]:
    return [e["seq"] for e in c.events]


async def until_ok(c: ClassroomClient, command: str, timeout: float = 30, **fields: Any) -> dict[str, Any]:
    """Send until acknowledged (a failover or an outage answers `temporarily_unavailable`)."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                ack = await c.send(command, **fields)
            except TimeoutError:
                continue
            if ack.get("ok"):
                return ack
            assert ack["error"]["code"] == "temporarily_unavailable", ack
            await asyncio.sleep(0.1)


async def test_one_order_on_every_node(tmp_path: Path, redis_server: RedisServer | None) -> None:
    async with cluster_of(tmp_path, 3, redis_server and redis_server.url) as cl:
        info = await cl.create_session(node=1)  # any node creates; every node sees it
        trainer = await cl.client(info["trainer_url"], 0, "Tess")
        await trainer.request("session.start")
        learners = [await cl.client(info["join_url"], i % 3, f"L{i}") for i in range(6)]
        watchers = [await cl.client(info["trainer_url"], i, f"W{i}") for i in range(3)]

        async def talk(c: ClassroomClient, n: int) -> list[dict[str, Any]]:
            return [await c.request("chat.send", text=f"{c.name} {k}") for k in range(n)]

        acks = await asyncio.gather(*(talk(c, 4) for c in [trainer, *learners, *watchers]))
        await barrier(trainer, *learners, *watchers)
        order = chats(trainer)
        assert len(order) == 4 * 10
        for c in [*learners, *watchers]:
            assert chats(c) == order, c.name  # the same messages in the same order on every node
            assert gapless(seqs(c)) if c in watchers else seqs(c) == sorted(set(seqs(c)))
        assert {a["seq"] for batch in acks for a in batch} <= {s for s, _ in order}
        assert gapless(await cl.stream_seqs(info["id"]))
        # The metadata is in Redis: every node describes the session the same way.
        for node in cl.nodes:
            async with cl.http.get(
                f"{node.base}/api/sessions/{info['id']}", headers={"Authorization": "Bearer test-admin-key"}
            ) as r:
                assert r.status == 200 and (await r.json())["status"] == "live"


async def test_resume_on_another_node(tmp_path: Path, redis_server: RedisServer | None) -> None:
    async with cluster_of(tmp_path, 3, redis_server and redis_server.url) as cl:
        info = await cl.create_session()
        trainer = await cl.client(info["trainer_url"], 0, "Tess")
        await trainer.request("session.start")
        learner = await cl.client(info["join_url"], 1, "Lee")
        watcher = await cl.client(info["trainer_url"], 1, "Wat")  # a trainer sees every event
        for k in range(3):
            await trainer.request("chat.send", text=f"before {k}")
        await barrier(trainer, learner, watcher)
        await learner.sio.disconnect()
        await watcher.sio.disconnect()
        for k in range(5):
            await trainer.request("chat.send", text=f"while away {k}")
        ack = await cl.move(learner, 2)
        assert "events" in ack and "snapshot" not in ack  # resumed from the stream, not a snapshot
        ack = await cl.move(watcher, 2)
        assert "events" in ack
        await learner.request("chat.send", text="back")
        # Media commands reach the session's media node (its owner, node 0; tests/test_cluster_media.py).
        viewing = await learner.request("media.view")
        assert viewing["sdp"].startswith("v=0") and viewing["mids"] == {}
        left = await learner.request("media.leave")
        assert (left["viewing"], left["publishing"]) == (True, False)
        await barrier(trainer, learner, watcher)
        assert chats(learner) == chats(trainer) == chats(watcher)
        assert gapless(seqs(watcher))  # no gap, no duplicate across the move
        assert seqs(learner) == sorted(set(seqs(learner)))
        await trainer.request("session.end")
        assert await cl.redis.pttl(f"cc:events:{info['id']}") > 0  # an ended stream expires


async def test_owner_killed(tmp_path: Path, redis_server: RedisServer | None) -> None:
    async with cluster_of(tmp_path, 3, redis_server and redis_server.url) as cl:
        info = await cl.create_session()
        trainer = await cl.client(info["trainer_url"], 0, "Tess")  # first on node 0: it owns
        assert f"owns session {info['id']}" in cl.log(0)
        await trainer.request("session.start")
        learner0 = await cl.client(info["join_url"], 0, "Lou")
        talkers = [await cl.client(info["trainer_url"], i, f"T{i}") for i in (1, 2)]
        watchers = [await cl.client(info["trainer_url"], i, f"W{i}") for i in (1, 2)]
        acked: dict[int, str] = {}
        killed = asyncio.Event()
        after: dict[str, int] = {}
        first_ok_after: list[float] = []

        async def talk(c: ClassroomClient) -> None:
            k = 0
            while after.get(c.name or "", 0) < 5:
                text = f"{c.name} {k}"
                k += 1
                try:
                    ack = await c.send("chat.send", text=text)
                except TimeoutError:
                    continue
                if ack.get("ok"):
                    acked[ack["seq"]] = text
                    if killed.is_set():
                        after[c.name or ""] = after.get(c.name or "", 0) + 1
                        first_ok_after.append(time.monotonic())
                else:
                    assert ack["error"]["code"] == "temporarily_unavailable", ack
                    await asyncio.sleep(0.05)
                if k == 10 and c is talkers[0]:
                    await cl.nodes[0].kill()  # kill -9 of the owner, mid-stream
                    killed_at.append(time.monotonic())
                    killed.set()

        killed_at: list[float] = []
        await asyncio.wait_for(asyncio.gather(*(talk(c) for c in talkers)), 60)
        takeover = min(first_ok_after) - killed_at[0]
        assert takeover < 10, takeover
        # The dead node's clients come back on the others and resume.
        await cl.move(trainer, 1)
        await cl.move(learner0, 2)
        await until_ok(trainer, "session.mark", title="settled")
        await barrier(trainer, learner0, *watchers, *talkers)
        for c in [*watchers, *talkers, trainer, learner0]:
            got = dict(chats(c))
            assert all(got.get(seq) == text for seq, text in acked.items()), c.name  # nothing acked lost
            assert seqs(c) == sorted(set(seqs(c))), c.name  # no duplicates
        for w in watchers:
            assert gapless(seqs(w)), w.name
        assert chats(watchers[0]) == chats(watchers[1]) == chats(trainer)
        stream = await cl.stream_seqs(info["id"])
        assert gapless(stream) and stream[-1] == trainer.state.seq
        print(f"takeover: first acknowledged command {takeover:.2f}s after kill -9")


async def test_redis_restart(tmp_path: Path, redis_server: RedisServer | None) -> None:
    if redis_server is None:
        pytest.skip("restarts a private redis-server (REDIS_URL is set)")
    async with cluster_of(tmp_path, 2, redis_server.url) as cl:
        info = await cl.create_session()
        trainer = await cl.client(info["trainer_url"], 0, "Tess")
        await trainer.request("session.start")
        talker = await cl.client(info["trainer_url"], 1, "Tal")
        watcher = await cl.client(info["trainer_url"], 1, "Wat")
        acked: dict[int, str] = {}
        for k in range(5):
            for c in (trainer, talker):
                ack = await c.request("chat.send", text=f"{c.name} {k}")
                acked[ack["seq"]] = f"{c.name} {k}"
        await redis_server.kill()
        # Both the owner's clients and the other node's get a clear refusal.
        for c in (trainer, talker):
            async with asyncio.timeout(20):
                while True:
                    ack = await c.send("chat.send", text=f"{c.name} during")
                    if not ack.get("ok"):
                        break
                    acked[ack["seq"]] = f"{c.name} during"
            assert ack["error"]["code"] == "temporarily_unavailable", ack
        await redis_server.start()  # same port, same append-only file
        for c in (trainer, talker):
            ack = await until_ok(c, "chat.send", text=f"{c.name} after")
            acked[ack["seq"]] = f"{c.name} after"
        await barrier(trainer, talker, watcher)
        for c in (trainer, talker, watcher):
            got = dict(chats(c))
            assert all(got.get(seq) == text for seq, text in acked.items()), c.name
            assert seqs(c) == sorted(set(seqs(c))), c.name
        assert gapless(seqs(watcher))
        stream = await cl.stream_seqs(info["id"])
        assert gapless(stream) and stream[-1] == trainer.state.seq
        # Any node serves the replay (shared data directory).
        for node in cl.nodes:
            async with cl.http.get(
                f"{node.base}/api/recordings/{info['id']}", headers={"Authorization": "Bearer test-admin-key"}
            ) as r:
                assert r.status == 200, await r.text()


async def test_owner_stopped_hands_over(tmp_path: Path, redis_server: RedisServer | None) -> None:
    """SIGTERM of the owner (`release_all`): what it decided is published, its lease freed, and
    another node carries on at once."""
    async with cluster_of(tmp_path, 2, redis_server and redis_server.url) as cl:
        info = await cl.create_session()
        trainer = await cl.client(info["trainer_url"], 0, "Tess")  # node 0 owns
        await trainer.request("session.start")
        talker = await cl.client(info["trainer_url"], 1, "Tal")
        watcher = await cl.client(info["trainer_url"], 1, "Wat")
        acked = {}
        for k in range(5):
            ack = await talker.request("chat.send", text=f"before {k}")
            acked[ack["seq"]] = f"before {k}"
        code, _took = await cl.nodes[0].stop()
        assert code == 0
        stopped = time.monotonic()
        ack = await until_ok(talker, "chat.send", timeout=20, text="after")
        handover = time.monotonic() - stopped
        acked[ack["seq"]] = "after"
        await cl.move(trainer, 1)
        await barrier(trainer, talker, watcher)
        for c in (trainer, talker, watcher):
            got = dict(chats(c))
            assert all(got.get(seq) == text for seq, text in acked.items()), c.name
            assert seqs(c) == sorted(set(seqs(c))), c.name
        assert gapless(seqs(watcher)) and gapless(await cl.stream_seqs(info["id"]))
        assert handover < 5, handover
        print(f"hand-over: first acknowledged command {handover:.2f}s after the owner stopped")


def test_redis_url_flag() -> None:
    """Cluster mode only with a usable URL; without one nothing changes."""
    args = build_parser().parse_args(["serve"])
    assert from_args(args, {}).redis_url is None
    assert from_args(args, {"REDIS_URL": "redis://127.0.0.1:7000/0"}).redis_url == "redis://127.0.0.1:7000/0"
    with pytest.raises(ConfigError, match="redis URL"):
        from_args(build_parser().parse_args(["serve", "--redis-url", "localhost:6379"]), {})


async def test_publishing_is_fenced(redis_server: RedisServer | None) -> None:
    """Only the lease holder publishes, and only right after the stream's last seq: a deposed
    owner can neither fork the stream nor repeat or skip a seq."""
    client = connect(redis_server.url if redis_server else os.environ["REDIS_URL"])
    node = Node(client)
    session = "fence-" + new_id(6)
    lease, stream = k_lease(session), k_stream(session)
    try:
        assert await node.lease(keys=[lease], args=["A", 3000]) == 1
        assert await node.lease(keys=[lease], args=["B", 3000]) == 0  # held by A
        assert await node.lease(keys=[lease], args=["A", 3000]) == 1  # renewed
        assert await node.publish(keys=[lease, stream], args=["B", 100, 0, 1, b"x"]) == -1
        assert await node.publish(keys=[lease, stream], args=["A", 100, 0, 1, b"a", 2, b"b"]) == 1
        assert await node.publish(keys=[lease, stream], args=["A", 100, 0, 1, b"again"]) == -2
        assert await node.publish(keys=[lease, stream], args=["A", 100, 3, 4, b"gap"]) == -2
        assert await node.publish(keys=[lease, stream], args=["A", 100, 2, 3, b"c"]) == 1
        assert await node.release(keys=[lease], args=["B"]) == 0
        assert await node.release(keys=[lease], args=["A"]) == 1
        assert await node.lease(keys=[lease], args=["B", 3000]) == 1  # free again: B takes it
        assert await node.publish(keys=[lease, stream], args=["A", 100, 3, 4, b"late"]) == -1
        entries = await client.xrange(stream)
        assert [(i, f[b"e"]) for i, f in entries] == [(b"1-0", b"a"), (b"2-0", b"b"), (b"3-0", b"c")]
    finally:
        await client.delete(lease, stream)
        await client.aclose()


async def test_unrecorded_session_stays_ended_on_another_node(
    tmp_path: Path, redis_server: RedisServer | None
) -> None:
    """A session created with recording off drops its log when it ends; the node that takes it
    over next still serves it as ended."""
    async with cluster_of(tmp_path, 2, redis_server and redis_server.url) as cl:
        async with cl.http.post(
            f"{cl.nodes[0].base}/api/sessions",
            json={"title": "Off the record", "recording": False},
            headers={"Authorization": "Bearer test-admin-key"},
        ) as r:
            info = await r.json()
        trainer = await cl.client(info["trainer_url"], 0, "Tess")  # node 0 owns
        await trainer.request("session.start")
        await trainer.request("chat.send", text="not kept")
        await trainer.request("session.end")
        code, _ = await cl.nodes[0].stop()
        assert code == 0
        again = await cl.client(info["trainer_url"], 1, "Tess again")  # node 1 takes it over
        assert again.state is not None and again.state.status == "ended"
        refused = await again.send("session.start")
        assert refused["error"]["code"] == "session_ended"


async def test_large_session_presence_is_coalesced_on_every_node(
    tmp_path: Path, redis_server: RedisServer | None
) -> None:
    """`--crowd-size` in cluster mode: each node coalesces presence for its own sockets from the
    stream. Learners on both nodes get the `presence` summary (counted over the whole session)
    instead of others' joins, hands and reactions; trainers on both get every join; the owner
    sends no summary of its own on top."""
    crowd, n = 3, 8
    async with cluster_of(tmp_path, 2, redis_server and redis_server.url, "--crowd-size", str(crowd)) as cl:
        info = await cl.create_session()
        trainer = await cl.client(info["trainer_url"], 0, "Tess")  # node 0 owns
        await trainer.request("session.start")
        watcher = await cl.client(info["trainer_url"], 1, "Wat")  # a trainer on the other node
        began = time.monotonic()
        learners = [await cl.client(info["join_url"], i % 2, f"L{i}") for i in range(n - 1)]
        # Every learner hears the whole session's count from its own node's summary (each node
        # follows the stream at its own pace: this also says both nodes are large now).
        for c in learners:
            await c.wait_until(lambda c=c: c.presence and c.presence["learners"] == n - 1, 20)
        learners.append(await cl.client(info["join_url"], 1, f"L{n - 1}"))
        ids = {c.you["id"] for c in learners}
        for t in (trainer, watcher):  # trainers on both nodes see every join, in the stream
            await t.wait_until(
                lambda t=t: ids <= {p for p, v in t.state.participants.items() if v["online"]}, 20
            )
            joined = [
                e for e in t.events if e["type"] == "participant.joined" and e["data"]["role"] == "learner"
            ]
            assert len(joined) == n, (t.name, len(joined))
        for c in learners:
            await c.wait_until(lambda c=c: c.presence and c.presence["learners"] == n, 20)
            assert c.presence["trainers"] == 2
        late = learners[-1].last_join["snapshot"]
        # Its snapshot lists the trainers (and itself, unless its join had not reached its node yet:
        # then its own join comes as an event), with the summary.
        shown, trainers = {p["id"] for p in late["participants"]}, {trainer.you["id"], watcher.you["id"]}
        assert trainers <= shown <= trainers | {learners[-1].you["id"]}, shown
        assert learners[-1].state.participants[learners[-1].you["id"]]["online"]
        assert late["presence"]["learners"] in (n - 1, n)  # its own join counted, or not yet

        # A hand raised on node 1 is counted on node 0; a trainer on node 0 lowering it reaches
        # its learner on node 1 (personal room), and other learners only as a count.
        hand, other = learners[-1], learners[-2]  # nodes 1 and 0
        await hand.request("hand.raise")
        await other.wait_until(lambda: other.presence["hands"] == 1, 10)
        await trainer.wait_until(lambda: trainer.state.participants[hand.you["id"]]["hand"], 10)
        await trainer.request("hand.lower", participant_id=hand.you["id"])
        await hand.wait_until(lambda: not hand.state.participants[hand.you["id"]]["hand"], 10)
        await other.wait_until(lambda: other.presence["hands"] == 0, 10)
        for c in learners[:3]:  # both nodes' learners react; each node counts them all
            await c.request("reaction.send", emoji="👍")
        for c in (learners[-1], learners[-2]):
            await c.wait_until(lambda c=c: c.reactions.get("👍") == 3, 10)
            assert not [e for e in c.events if e["type"] == "reaction" and e["actor"] != c.you["id"]]

        # Resuming on the other node skips what its learners do not get live either.
        mover = learners[-1]
        await mover.sio.disconnect()
        newcomer = await cl.client(info["join_url"], 1, "New")
        await trainer.wait_until(lambda: newcomer.you["id"] in trainer.state.participants, 10)
        ack = await cl.move(mover, 0)
        assert "events" in ack, ack.keys()
        assert not [
            e for e in ack["events"] if e["type"] in COALESCED and e["data"].get("id") != mover.you["id"]
        ]

        # Everything else reaches everyone; one summary a second at most (none from the owner on top).
        await barrier(trainer, watcher, *learners, newcomer)
        for c in (*learners, newcomer):
            assert c.summaries <= (time.monotonic() - began) / SUMMARY_S + 1, (c.name, c.summaries)
        # Others' presence reached a learner only while its node had not seen more than `crowd`
        # learners: joins of the first ones in the stream's order (nodes forward joins each at
        # their own pace, so not necessarily in the order they connected) and of the trainers.
        in_order = [e["data"]["id"] for e in trainer.events if e["type"] == "participant.joined"]
        first = [pid for pid in in_order if pid in ids][:crowd]
        early = {trainer.you["id"], watcher.you["id"], *first}
        for k, c in enumerate((*learners, newcomer)):
            others = [e for e in c.events if e["type"] in COALESCED and e["data"].get("id") != c.you["id"]]
            assert all(e["type"] == "participant.joined" and e["data"]["id"] in early for e in others), (
                k,
                others,
            )
        assert gapless(seqs(watcher))
        assert gapless(await cl.stream_seqs(info["id"]))
        for i in (0, 1):
            assert "summary failed" not in cl.log(i)


async def test_trainers_get_a_large_sessions_presence_in_batches_on_every_node(
    tmp_path: Path, redis_server: RedisServer | None
) -> None:
    """A node's trainers get a large session's presence from the stream batched as in one process
    (`crowd.Outbox`): a batch made only of presence waits until BATCH_S after the previous one.
    A trainer on the node that does not own the session gets every join, in stream order, in a few
    bursts rather than one write per join."""
    crowd, n, gap = 2, 16, 0.05
    async with cluster_of(tmp_path, 2, redis_server and redis_server.url, "--crowd-size", str(crowd)) as cl:
        info = await cl.create_session()
        owner = await cl.client(info["trainer_url"], 0, "Tess")  # node 0 owns
        await owner.request("session.start")
        watcher = await cl.client(info["trainer_url"], 1, "Wat")  # a trainer on the other node
        arrivals: list[tuple[float, dict[str, Any]]] = []
        on_event = watcher._on_event

        def record(wire: dict[str, Any]) -> None:
            arrivals.append((time.monotonic(), wire))
            on_event(wire)

        watcher.sio.on("event", record)
        learners = []
        for i in range(n):  # joined on the owner's node, one every `gap`: a stream of single joins
            learners.append(await cl.client(info["join_url"], 0, f"L{i}"))
            await asyncio.sleep(gap)
        ids = {c.you["id"] for c in learners}
        for t in (owner, watcher):
            await t.wait_until(
                lambda t=t: ids <= {p for p, v in t.state.participants.items() if v["online"]}, 20
            )

        def joined(w: dict[str, Any]) -> bool:
            return w["type"] == "participant.joined" and w["data"]["id"] in ids

        joins = [(t, w) for t, w in arrivals if joined(w)]
        # Every join, in the stream's order.
        assert [w["data"]["id"] for _t, w in joins] == [e["data"]["id"] for e in owner.events if joined(e)]
        assert watcher.last_join is not None
        got = [w["seq"] for _t, w in arrivals if w["seq"] > watcher.last_join["seq"]]
        assert got == sorted(got) and gapless(got), got  # nothing lost, nothing out of order
        # Bursts: events arriving within 30 ms of the previous one came in one write. Once the node
        # saw more than `crowd` learners, presence bursts are at least ~BATCH_S apart.
        late = [t for t, w in joins[crowd + 1 :]]
        bursts = 1 + sum(1 for a, b in itertools.pairwise(late) if b - a > 0.03)
        span = late[-1] - late[0]
        assert bursts < len(late) / 2, (bursts, len(late), span)
        assert bursts <= span / BATCH_S + 2, (bursts, span)


async def test_a_persons_rate_holds_across_nodes(tmp_path: Path, redis_server: RedisServer | None) -> None:
    """One person (one participant token) with a socket on each node gets one budget, not one per
    node: the session's owner decides every command with the person's id, so its per-person
    buckets (docs/protocol.md, section 8) count the commands of both sockets together."""
    burst = Rates().chat.burst
    async with cluster_of(tmp_path, 2, redis_server and redis_server.url) as cl:
        info = await cl.create_session()
        trainer = await cl.client(info["trainer_url"], 0, "Tess")  # node 0 owns
        await trainer.request("session.start")
        here = await cl.client(info["join_url"], 0, "Lea")
        assert here.last_join is not None
        token = here.last_join["token"]
        there = await cl.client(f"{cl.nodes[1].base}/s/{info['id']}/join?token={token}", 1)
        assert there.you == here.you  # the same person, on the other node
        acks = []
        for i in range(burst + 1):  # alternately from each node
            acks.append(await (here, there)[i % 2].send("chat.send", text=f"m{i}"))
        assert all(a["ok"] for a in acks[:burst]), acks
        assert acks[burst]["error"]["code"] == "rate_limited", acks[burst]
        # Another person's budget is their own.
        other = await cl.client(info["join_url"], 1, "Max")
        assert (await other.send("chat.send", text="hello"))["ok"]


async def test_participants_on_a_dead_node_leave(tmp_path: Path, redis_server: RedisServer | None) -> None:
    """The owner's check for nodes that died (every 3 s): the learners connected through a node
    killed with -9 leave the session within its heartbeat key's life and a check; those on a live
    node stay."""
    async with cluster_of(tmp_path, 3, redis_server and redis_server.url) as cl:
        info = await cl.create_session()
        trainer = await cl.client(info["trainer_url"], 0, "Tess")  # first on node 0: it owns
        await trainer.request("session.start")
        doomed = [await cl.client(info["join_url"], 1, f"D{i}") for i in range(2)]
        staying = [await cl.client(info["join_url"], 2, f"S{i}") for i in range(2)]
        await barrier(trainer, *doomed, *staying)
        ids = {c.name: (c.you or {})["id"] for c in [*doomed, *staying]}
        # Past one check with every node alive: nobody leaves.
        await asyncio.sleep(3.5)
        assert not [e for e in trainer.events if e["type"] == "participant.left"]
        t0 = time.monotonic()
        await cl.nodes[1].kill()
        for c in doomed:
            await trainer.wait_for(
                "participant.left", lambda e, c=c: e["data"]["id"] == ids[c.name], timeout=15
            )
        assert time.monotonic() - t0 < 3 + 3 + 2  # the alive key's life, a check, a beat or two
        await trainer.request("chat.send", text="still here")
        await barrier(trainer, *staying)
        left = {e["data"]["id"] for e in trainer.events if e["type"] == "participant.left"}
        assert left == {ids[c.name] for c in doomed}
