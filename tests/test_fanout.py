"""A broadcast is encoded once per audience, never once per recipient: one frame is built per
audience and the same bytes are written to every member's transport."""

from __future__ import annotations

import asyncio

from classroom.keys import SESSIONS
from signaling.fanout import event_frame, text_frame

from .conftest import barrier


def test_frames_are_valid_websocket_text_frames():
    for size in (0, 125, 126, 65535, 65536):
        frame = text_frame(b"x" * size)
        assert frame[0] == 0x81  # FIN + text
        if size < 126:
            assert frame[1] == size and len(frame) == 2 + size
        elif size < 65536:
            assert frame[1] == 126 and int.from_bytes(frame[2:4], "big") == size
        else:
            assert frame[1] == 127 and int.from_bytes(frame[2:10], "big") == size
    assert event_frame({"a": "é"})[2:] == '42["event",{"a":"é"}]'.encode()


async def test_one_frame_per_audience_whatever_the_number_of_learners(server):
    info, trainer = await server.live_session()
    learners = list(await asyncio.gather(*(server.client(info["join_url"], f"L{i}") for i in range(20))))
    await barrier(trainer, *learners)
    fanout = server.app[SESSIONS].fanout
    frames, writes = fanout.frames, fanout.writes

    await trainer.request("chat.send", text="to all 21")
    await asyncio.gather(
        *(c.wait_for("chat.message", lambda e: e["data"]["text"] == "to all 21") for c in learners)
    )
    assert fanout.frames - frames == 2  # one for trainers, one for learners
    assert fanout.writes - writes == 21  # the same bytes to each connection

    # An event only its actor may see in full: trainers get one copy, the voter one full copy,
    # the other learners nothing; still nothing built per recipient.
    poll = await trainer.request("poll.open", question="Q", options=["a", "b"])
    await asyncio.gather(*(c.wait_for("poll.opened") for c in learners))
    frames, writes = fanout.frames, fanout.writes
    await learners[0].request("poll.vote", poll_id=poll["id"], choices=[1])
    await trainer.wait_for("poll.voted")
    await learners[0].wait_for("poll.voted")
    assert (fanout.frames - frames, fanout.writes - writes) == (2, 2)
    assert all(not any(e["type"] == "poll.voted" for e in c.events) for c in learners[1:])


async def test_events_queued_together_go_out_in_one_write_per_connection(server):
    info, trainer = await server.live_session()
    learners = list(await asyncio.gather(*(server.client(info["join_url"], f"L{i}") for i in range(5))))
    await barrier(trainer, *learners)
    live = await server.app[SESSIONS].get(info["id"])
    fanout = server.app[SESSIONS].fanout
    poll = await trainer.request("poll.open", question="Q", options=["a", "b"])
    await barrier(trainer, *learners)
    voter = learners[0]
    frames, writes = fanout.frames, fanout.writes

    # Commands decided in one go (as when many arrive while the sender is busy): two chat
    # messages, a vote (its voter sees more of it than the rest), one more message.
    pid = trainer.you["id"]
    live.execute(pid, "chat.send", {"text": "one"})
    live.execute(pid, "chat.send", {"text": "two"})
    live.execute(voter.you["id"], "poll.vote", {"poll_id": poll["id"], "choices": [0]})
    live.execute(pid, "chat.send", {"text": "three"})
    for c in (trainer, *learners):
        await c.wait_for("chat.message", lambda e: e["data"]["text"] == "three")

    # Everyone got everything they may see, in order.
    for c in (trainer, *learners):
        texts = [e["data"]["text"] for e in c.events if e["type"] == "chat.message"]
        assert texts == ["one", "two", "three"]
        seqs = [e["seq"] for e in c.events]
        assert seqs == sorted(seqs)
    assert [e["type"] for e in voter.events[-4:]] == ["chat.message"] * 2 + ["poll.voted", "chat.message"]
    assert not any(e["type"] == "poll.voted" for c in learners[1:] for e in c.events)
    # Writes: "one"+"two" to the 6 connections at once; the vote to the trainer and the voter;
    # "three" to the 6: 14 writes, not 6 + 6 + 2 + 6 = 20.
    assert fanout.writes - writes == 14
    assert fanout.frames - frames == 2 * 2 + 2 + 2  # frames built: per audience and event
