"""Large sessions (issue 11): above `--crowd-size` learners online, presence stops costing N²
deliveries. Learners get a coalesced `presence` summary (counts, hands, reactions per emoji) at
most once a second instead of every join, leave, hand and reaction of others; trainers still get
every event, batched; the stream and the recording keep every one. Measured in deliveries, not time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from classroom.core import AUDIENCES, Event, project
from classroom.core.presence import COALESCED
from classroom.live import BATCH_S, SUMMARY_S, LiveSession
from classroom.ports import Delivery, Recovered
from classroom.store import SessionInfo
from recorder.replay import Recording

from .conftest import running_server

CROWD = 5
LEARNERS = 24


async def test_learners_of_a_large_session_get_a_summary_and_trainers_every_change(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data", crowd_size=CROWD) as server:
        info, trainer = await server.live_session("Webinar")
        began = time.monotonic()
        learners = [await server.client(info["join_url"], f"L{i}") for i in range(LEARNERS)]
        ids = {c.you["id"] for c in learners}
        # Trainers see every join, in the stream.
        await trainer.wait_until(
            lambda: ids <= {p for p, v in trainer.state.participants.items() if v["online"]}, 20
        )
        # Every learner hears the count from the summary, within a second or two.
        for c in learners:
            await c.wait_until(lambda c=c: c.presence and c.presence["learners"] == LEARNERS, 20)
        # Presence of others reached a learner only while the session was small: the first
        # CROWD learners each saw at most CROWD joins of others, the rest none.
        for n, c in enumerate(learners):
            others = [e for e in c.events if e["type"] in COALESCED and e["data"].get("id") != c.you["id"]]
            assert len(others) <= CROWD, (n, len(others))
            if n > CROWD:
                assert others == [], (n, others)
        # A late learner's snapshot lists the trainer and themselves, and carries the summary.
        late = learners[-1].last_join["snapshot"]
        assert {p["id"] for p in late["participants"]} == {trainer.you["id"], learners[-1].you["id"]}
        assert late["presence"]["learners"] == LEARNERS and late["more"]["participants"] == LEARNERS - 1

        # Hands: the learner sees their own, others only the count; a trainer lowering it is heard.
        hand, other = learners[-1], learners[-2]
        await hand.request("hand.raise")
        await hand.wait_until(lambda: hand.state.participants[hand.you["id"]]["hand"], 10)
        await other.wait_until(lambda: other.presence["hands"] == 1, 10)
        await trainer.wait_until(lambda: trainer.state.participants[hand.you["id"]]["hand"], 10)
        await trainer.request("hand.lower", participant_id=hand.you["id"])
        await hand.wait_until(lambda: not hand.state.participants[hand.you["id"]]["hand"], 10)

        # Reactions: counted per emoji per interval in the summary.
        for c in learners[:3]:
            await c.request("reaction.send", emoji="👍")

        await other.wait_until(lambda: other.reactions.get("👍") == 3, 10)
        assert not [e for e in other.events if e["type"] == "reaction" and e["actor"] != other.you["id"]]

        # Everything else still reaches everyone, and a learner got at most a summary a second.
        ack = await trainer.request("chat.send", text="hello all")
        for c in learners:
            await c.wait_for("chat.message", lambda e: e["seq"] == ack["seq"], timeout=10)
        for c in learners:
            assert c.summaries <= (time.monotonic() - began) / SUMMARY_S + 1, c.summaries

        # The stream and the recording hold every join, hand and reaction.
        events = Recording(tmp_path / "data" / "recordings", info["id"]).window(0, 2**62, "trainer")
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert sum(e["type"] == "participant.joined" for e in events) == LEARNERS + 1
        assert sum(e["type"] == "reaction" for e in events) == 3


class CountingFanout:
    """The registry's `Fanout` port, counting what `signaling.fanout.FrameFanout` would write:
    per event and audience, one frame to each member of that audience's room."""

    def __init__(self) -> None:
        self.learners = 0  # learners in the learner room
        self.trainers = 1
        self.presence_to_learners = 0  # presence event frames written to learners (others' presence)
        self.own_copies = 0  # personal copies (a learner's own join)
        self.trainer_writes = 0  # writes to the trainer (batches holding something for them)
        self.trainer_events = 0
        self.summaries = 0  # summary frames written to learners

    async def deliver(self, session_id: str, batch: list[Delivery]) -> None:
        for_trainer = 0
        for d in batch:
            views = {a: None if a in d.hidden else project(d.event, a) for a in AUDIENCES}
            if views["learner"] is not None and d.event.type in COALESCED:
                self.presence_to_learners += self.learners
            if d.hidden and d.actor_role == "learner":
                self.own_copies += 1
            if views["trainer"] is not None:
                for_trainer += 1
        if for_trainer:
            self.trainer_writes += 1
            self.trainer_events += for_trainer

    async def notify(self, session_id: str, audience: str, name: str, data: dict[str, Any]) -> int:
        n = self.learners if audience == "learner" else self.trainers
        if audience == "learner":
            self.summaries += n
        return n


async def test_a_10000_learner_join_storm_costs_each_learner_o1_presence_deliveries() -> None:
    """10,000 learners join as fast as the session takes them: without coalescing this is
    N²/2 = 50 million presence deliveries; with it, each learner gets its own join and a summary
    a second, and the trainer gets every join in a few writes a second."""
    n, crowd = 10_000, 200
    fanout = CountingFanout()
    info = SessionInfo("storm", "Storm", "created", 0.0, recording=False)
    live = LiveSession(info, fanout, _no_status, None, Recovered(None), crowd=crowd)
    live.attach("t", "trainer", "Tess", "trainer")
    live.execute("trainer", "session.start", {})
    await live.drain()
    began = time.monotonic()
    for i in range(n):
        fanout.learners += 1
        live.attach(f"s{i}", f"p{i}", f"L{i}", "learner")
        if i % 50 == 0:
            await asyncio.sleep(0)  # the sender and the summary run while learners keep coming
    await live.drain()
    await asyncio.sleep(SUMMARY_S * 1.5)  # the last summary goes out
    took = time.monotonic() - began
    await live.close()
    seconds = took / SUMMARY_S + 2
    assert live.state.participants.__len__() == n + 1
    # Others' presence reached learners only while the session was small: about crowd² / 2.
    assert fanout.presence_to_learners <= crowd * crowd, fanout.presence_to_learners
    assert n - crowd <= fanout.own_copies <= n  # their own join, once the session is large
    # Summaries: at most one per second per learner.
    assert fanout.summaries <= n * seconds, (fanout.summaries, took)
    # The trainer got every join, in batches at most every BATCH_S.
    assert fanout.trainer_events == n + 2  # and the trainer's own join, the start
    assert fanout.trainer_writes <= took / BATCH_S + crowd + 5, (fanout.trainer_writes, took)
    # Nothing left behind: every event went to the fan-out.
    assert live.sent_seq == live.state.seq


async def _no_status(session_id: str, status: str) -> None:
    return None


def test_coalesced_events_are_presence_only() -> None:
    assert {"participant.joined", "participant.left", "hand.raised", "hand.lowered", "reaction"} == COALESCED
    assert Event(1, 0, "chat.message", "p", {}).type not in COALESCED
