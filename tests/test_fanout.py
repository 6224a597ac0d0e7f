"""A broadcast is encoded once per audience, never once per recipient."""

from __future__ import annotations

import asyncio

import socketio.packet

from .conftest import barrier


async def test_one_encode_per_audience_whatever_the_number_of_learners(server, monkeypatch):
    info, trainer = await server.live_session()
    learners = list(await asyncio.gather(*(server.client(info["join_url"], f"L{i}") for i in range(20))))
    await barrier(trainer, *learners)

    encoded: list[str] = []
    original = socketio.packet.Packet.encode

    def counting_encode(self):
        out = original(self)
        if self.data and self.data[0] == "event":
            encoded.append(self.data[1]["type"])
        return out

    monkeypatch.setattr(socketio.packet.Packet, "encode", counting_encode)
    await trainer.request("chat.send", text="to all 21")
    await asyncio.gather(*(c.wait_for("chat.message") for c in learners))
    assert encoded == ["chat.message", "chat.message"]  # one for trainers, one for learners

    # An event only its actor may see in full: the learner audience gets one redacted copy,
    # the actor one full copy; still nothing per recipient.
    encoded.clear()
    poll = await trainer.request("poll.open", question="Q", options=["a", "b"])
    await asyncio.gather(*(c.wait_for("poll.opened") for c in learners))
    encoded.clear()
    await learners[0].request("poll.vote", poll_id=poll["id"], choices=[1])
    await trainer.wait_for("poll.voted")
    await learners[0].wait_for("poll.voted")
    assert sorted(encoded) == ["poll.voted", "poll.voted"]  # trainers' copy and the voter's own
