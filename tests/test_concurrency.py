"""Many learners at once: votes counted exactly, Q&A order exact under concurrent upvotes."""

from __future__ import annotations

import asyncio
import random

from classroom.client import ClassroomClient

from .conftest import barrier


async def _learners(server, info, n: int) -> list[ClassroomClient]:
    return list(await asyncio.gather(*(server.client(info["join_url"], f"L{i:02}") for i in range(n))))


async def test_fifty_concurrent_votes_are_counted_exactly(server):
    info, trainer = await server.live_session()
    learners = await _learners(server, info, 50)
    poll = await trainer.request("poll.open", question="Pick", options=["a", "b", "c", "d"], multiple=True)
    await asyncio.gather(*(c.wait_for("poll.opened") for c in learners))

    rng = random.Random(7)
    final = {c.you["id"]: sorted(rng.sample(range(4), rng.randint(1, 4))) for c in learners}

    async def vote(c: ClassroomClient) -> None:
        # A change of mind, then the final choice sent twice (a retry) and once more from a
        # second connection of the same participant: still one vote.
        await c.request("poll.vote", poll_id=poll["id"], choices=[rng.randrange(4)])
        await asyncio.gather(
            c.request("poll.vote", poll_id=poll["id"], choices=final[c.you["id"]]),
            c.request("poll.vote", poll_id=poll["id"], choices=final[c.you["id"]]),
        )

    await asyncio.gather(*(vote(c) for c in learners))
    twin = ClassroomClient(f"{server.base_url}/s/{info['id']}/join?token={learners[0]._token}")
    server._clients.append(twin)
    await twin.connect()
    assert twin.you["id"] == learners[0].you["id"]
    await twin.request("poll.vote", poll_id=poll["id"], choices=final[twin.you["id"]])

    expected = [sum(i in choices for choices in final.values()) for i in range(4)]
    await trainer.wait_until(lambda: trainer.view()["polls"][0]["counts"] == expected, timeout=10)
    view = trainer.view()["polls"][0]
    assert view["voters"] == 50
    assert view["votes"] == final
    closed = await trainer.request("poll.close", poll_id=poll["id"])
    assert closed["ok"]


async def test_question_order_under_concurrent_upvotes(server):
    info, trainer = await server.live_session()
    learners = await _learners(server, info, 20)
    asked = [await learners[i].request("qa.ask", text=f"Question {i}") for i in range(4)]
    ids = [a["id"] for a in asked]
    # Question 2 gets 12 votes, question 0 gets 12 too (older wins the tie), question 3 gets 5.
    plan = {ids[2]: learners[4:16], ids[0]: learners[5:17], ids[3]: learners[10:15]}
    await asyncio.gather(
        *(c.request("qa.upvote", question_id=qid) for qid, voters in plan.items() for c in voters)
    )
    # Some take their vote back and give it again, concurrently.
    await asyncio.gather(*(c.request("qa.unvote", question_id=ids[3]) for c in learners[10:13]))
    await asyncio.gather(*(c.request("qa.upvote", question_id=ids[3]) for c in learners[10:12]))

    expected = [(ids[0], 12), (ids[2], 12), (ids[3], 4), (ids[1], 0)]
    await barrier(trainer, *learners)
    for c in (trainer, *learners):
        assert [(q["id"], q["votes"]) for q in c.view()["questions"]] == expected
    assert learners[10].view()["questions"][2]["upvoted"] is True
    assert learners[12].view()["questions"][2]["upvoted"] is False
