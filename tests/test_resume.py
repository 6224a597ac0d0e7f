"""Late joiners and reconnections: the snapshot equals the live fold, and nothing is missed."""

from __future__ import annotations

import asyncio
from collections import deque

from classroom.client import ClassroomClient
from classroom.keys import SESSIONS

from .conftest import barrier


async def _script(trainer: ClassroomClient, ada: ClassroomClient, bob: ClassroomClient) -> None:
    """A bit of every feature, including what each audience sees differently."""
    await ada.request("chat.send", text="hi")
    await bob.request("hand.raise")
    poll = await trainer.request("poll.open", question="Q", options=["x", "y"], anonymous=True)
    await ada.request("poll.vote", poll_id=poll["id"], choices=[0])
    quiz = await trainer.request("poll.open", question="Quiz", options=["x", "y", "z"], correct=[2])
    await bob.request("poll.vote", poll_id=quiz["id"], choices=[2])
    await trainer.request("poll.close", poll_id=quiz["id"])
    q = await ada.request("qa.ask", text="secret?", anonymous=True)
    await bob.request("qa.upvote", question_id=q["id"])
    s = await trainer.request("wb.stroke.begin", points=[1, 1, 2, 2])
    await trainer.request("wb.stroke.extend", element_id=s["id"], points=[3, 3])
    await trainer.request("wb.erase", element_id=s["id"])
    await trainer.request("wb.undo")
    await trainer.request("participant.mute", participant_id=bob.you["id"])


async def _twin(server, client: ClassroomClient) -> ClassroomClient:
    """A second connection of the same participant (its participant token), taking a snapshot."""
    link = f"{server.base_url}/s/{client.session_id}/join?token={client._token}"
    return await server.client(link)


async def test_late_snapshot_equals_what_live_clients_folded(server):
    info, trainer = await server.live_session()
    ada = await server.client(info["join_url"], "Ada")
    bob = await server.client(info["join_url"], "Bob")
    await _script(trainer, ada, bob)
    await barrier(trainer, ada, bob)
    for live in (trainer, ada, bob):
        twin = await _twin(server, live)
        assert twin.you == live.you
        assert twin.last_join and "snapshot" in twin.last_join
        assert live.view() == twin.view()
    # What each audience sees differs where it must.
    assert bob.view()["questions"][0]["author"] is None
    assert ada.view()["questions"][0]["author"] == ada.you["id"]
    assert trainer.view()["polls"][0]["votes"] is None  # anonymous: not even trainers see who
    assert trainer.view()["polls"][0]["counts"] == [1, 0]
    assert ada.view()["polls"][0]["counts"] is None


async def test_dropped_connection_resumes_and_misses_nothing(server):
    info, trainer = await server.live_session()
    ada = await server.client(info["join_url"], "Ada")
    await ada.request("hand.raise")
    await ada.request("chat.send", text="before the drop")
    await barrier(trainer, ada)

    await ada.drop()
    await trainer.wait_for("participant.left", lambda e: e["data"]["id"] == ada.you["id"])
    sent = [await trainer.request("chat.send", text=f"while away {i}") for i in range(5)]
    await ada.wait_until(lambda: ada.joins == 2)
    sent.append(await trainer.request("chat.send", text="after the return"))
    await barrier(trainer, ada)

    assert "events" in ada.last_join  # resumed from its last seq, no fresh snapshot
    texts = [m["text"] for m in ada.view()["chat"]]
    assert texts == ["before the drop"] + [f"while away {i}" for i in range(5)] + ["after the return"]
    seqs = [e["seq"] for e in ada.events]
    assert seqs == sorted(set(seqs))  # every event once, in order
    people = ada.view()["participants"]
    assert [p["name"] for p in people].count("Ada") == 1
    me = next(p for p in people if p["id"] == ada.you["id"])
    assert me["online"] and me["hand"]  # same identity, hand still raised
    assert ada.view() == (await _twin(server, ada)).view()


async def test_too_far_behind_gets_a_fresh_snapshot(server):
    info, trainer = await server.live_session()
    ada = await server.client(info["join_url"], "Ada")
    server.app[SESSIONS].live[info["id"]].recent = deque(maxlen=3)
    ada.sio.reconnection_delay, ada.sio.randomization_factor = 0.5, 0  # stay away a while
    await ada.drop()
    await trainer.wait_for("participant.left")
    for i in range(10):
        await trainer.request("chat.send", text=f"m{i}")
    await ada.wait_until(lambda: ada.joins == 2)
    await barrier(trainer, ada)
    assert "snapshot" in ada.last_join
    assert [m["text"] for m in ada.view()["chat"]] == [f"m{i}" for i in range(10)]


async def test_two_tabs_are_one_participant(server):
    info, trainer = await server.live_session()
    ada = await server.client(info["join_url"], "Ada")
    tab = await _twin(server, ada)
    poll = await trainer.request("poll.open", question="Q", options=["a", "b"])
    await tab.request("poll.vote", poll_id=poll["id"], choices=[1])
    await barrier(trainer, ada, tab)
    assert ada.view()["polls"][0]["my_choices"] == [1]  # the vote made in the other tab
    assert sum(p["name"] == "Ada" for p in trainer.view()["participants"]) == 1
    await tab.close()
    await asyncio.sleep(0.05)
    await barrier(trainer, ada)
    assert next(p for p in trainer.view()["participants"] if p["name"] == "Ada")["online"]
