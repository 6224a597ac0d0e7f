"""A trainer and learners run a whole session through every feature, over real sockets."""

from __future__ import annotations

import asyncio

import pytest

from classroom.client import ClassroomError
from classroom.keys import SESSIONS

from .conftest import running_server


async def test_whole_session_through_every_feature(server):
    info, trainer = await server.live_session("Intro to Python")
    ada = await server.client(info["join_url"], "Ada")
    bob = await server.client(info["join_url"], "Bob")
    cy = await server.client(info["join_url"], "Cy")
    everyone = [trainer, ada, bob, cy]

    # Presence: everyone sees four people online, with roles and names.
    for c in everyone:
        await c.wait_until(lambda c=c: sum(p["online"] for p in c.view()["participants"]) == 4)
    names = {p["name"]: p["role"] for p in ada.view()["participants"]}
    assert names == {"Tess Trainer": "trainer", "Ada": "learner", "Bob": "learner", "Cy": "learner"}

    # Hands and reactions.
    await ada.request("hand.raise")
    await trainer.wait_until(lambda: any(p["hand"] for p in trainer.view()["participants"]))
    await trainer.request("hand.lower", participant_id=ada.you["id"])
    await ada.wait_for("hand.lowered")
    await bob.request("reaction.send", emoji="👏")
    event = await cy.wait_for("reaction")
    assert event["data"] == {"id": bob.you["id"], "emoji": "👏"}

    # Chat, delete, mute.
    ack = await ada.request("chat.send", text="Hello everyone")
    await bob.request("chat.send", text="spam spam")
    await cy.wait_until(lambda: len(cy.view()["chat"]) == 2)
    spam = next(m for m in trainer.view()["chat"] if m["text"] == "spam spam")
    await trainer.request("chat.delete", message_id=spam["id"])
    await trainer.request("participant.mute", participant_id=bob.you["id"])
    refused = await bob.send("chat.send", text="more spam")
    assert refused["error"]["code"] == "muted"
    await cy.wait_for("participant.muted")
    assert [m["text"] for m in cy.view()["chat"]] == ["Hello everyone"]
    assert cy.view()["chat"][0]["id"] == ack["id"]

    # A quiz poll: learners vote (Bob changes his mind), the trainer sees live counts, learners
    # do not until the results are shared.
    poll = await trainer.request("poll.open", question="2 + 2?", options=["3", "4", "5"], correct=[1])
    await cy.wait_for("poll.opened")
    assert cy.view()["polls"][0]["correct"] is None
    await ada.request("poll.vote", poll_id=poll["id"], choices=[1])
    await bob.request("poll.vote", poll_id=poll["id"], choices=[0])
    await bob.request("poll.vote", poll_id=poll["id"], choices=[1])
    await cy.request("poll.vote", poll_id=poll["id"], choices=[2])
    await trainer.wait_until(lambda: trainer.view()["polls"][0]["counts"] == [0, 2, 1])
    assert trainer.view()["polls"][0]["votes"] == {ada.you["id"]: [1], bob.you["id"]: [1], cy.you["id"]: [2]}
    assert ada.view()["polls"][0]["counts"] is None
    assert bob.view()["polls"][0]["my_choices"] == [1]
    await trainer.request("poll.close", poll_id=poll["id"])
    late = await ada.send("poll.vote", poll_id=poll["id"], choices=[0])
    assert late["error"]["code"] == "poll_closed"
    await trainer.request("poll.share", poll_id=poll["id"])
    await cy.wait_for("poll.shared")
    shared = cy.view()["polls"][0]
    assert (shared["counts"], shared["voters"], shared["correct"], shared["my_choices"]) == (
        [0, 2, 1],
        3,
        [1],
        [2],
    )

    # Q&A: ask (one anonymously), upvote, answer, dismiss; order by votes then age.
    q1 = await ada.request("qa.ask", text="What is a generator?")
    q2 = await bob.request("qa.ask", text="Is this recorded?", anonymous=True)
    await cy.request("qa.upvote", question_id=q2["id"])
    await ada.request("qa.upvote", question_id=q2["id"])
    await cy.wait_until(lambda: cy.view()["questions"][0]["votes"] == 2)
    assert [q["id"] for q in cy.view()["questions"]] == [q2["id"], q1["id"]]
    anon = cy.view()["questions"][0]
    assert anon["author"] is None and anon["name"] is None and anon["votes"] == 2 and anon["upvoted"]
    assert trainer.view()["questions"][0]["name"] == "Bob"
    assert bob.view()["questions"][0]["author"] == bob.you["id"]
    await trainer.request("qa.answer", question_id=q2["id"], text="Yes, every session is.")
    await ada.wait_for("qa.answered")
    answered = next(q for q in ada.view()["questions"] if q["id"] == q2["id"])
    assert answered["status"] == "answered" and answered["answer"] == "Yes, every session is."
    assert ada.view()["questions"][0]["id"] == q1["id"]  # open questions come first

    # Whiteboard: a stroke streamed while drawn, shapes, text, undo/redo, pages, learners drawing.
    stroke = await trainer.request("wb.stroke.begin", points=[10, 10, 20, 20], color="#ff0000", width=4)
    await ada.wait_for("wb.element.added")
    await trainer.request("wb.stroke.extend", element_id=stroke["id"], points=[30, 30, 40, 40])
    await ada.wait_for("wb.stroke.extended")
    el = ada.view()["board"]["pages"][0]["elements"][0]
    assert el["points"] == [10, 10, 20, 20, 30, 30, 40, 40] and not el["done"]
    await trainer.request("wb.stroke.end", element_id=stroke["id"])
    rect = await trainer.request("wb.shape", kind="rect", x1=100, y1=100, x2=200, y2=150)
    await trainer.request("wb.text", x=300, y=50, text="Generators", size=32)
    await trainer.request("wb.undo")
    await trainer.request("wb.redo")
    refused = await ada.send("wb.shape", kind="line", x1=0, y1=0, x2=10, y2=10)
    assert refused["error"]["code"] == "forbidden"
    await trainer.request("wb.permit", learners_can_draw=True)
    mine = await ada.request("wb.shape", kind="arrow", x1=0, y1=0, x2=10, y2=10, color="#0000ff")
    not_hers = await ada.send("wb.erase", element_id=rect["id"])
    assert not_hers["error"]["code"] == "not_owner"
    await trainer.request("wb.erase", element_id=mine["id"])
    page = await trainer.request("wb.page.add")
    await cy.wait_until(lambda: cy.view()["board"]["current"] == page["id"])
    # A snapshot carries the current page only: the first page is in the client's own state.
    assert cy.view()["board"]["pages"][0]["elements"] is None
    first = cy.state.view("learner", cy.you["id"])["board"]["pages"][0]
    kinds = [e["kind"] for e in first["elements"]]
    assert kinds == ["stroke", "rect", "text"]

    # Every live client folded the same state a fresh joiner receives as a snapshot.
    mark = await trainer.request("session.mark", title="Whiteboard part")
    for c in everyone:
        await c.wait_until(lambda c=c: c.state.seq >= mark["seq"])
    for c in everyone:
        fresh = await server.client(
            info["join_url"] if c.you["role"] == "learner" else info["trainer_url"], "Late"
        )
        # Compare only what does not depend on who is looking or on the late joiner itself.
        snap = fresh.view()
        live = c.view()
        for section in ("chat", "board", "chapters"):
            assert live[section] == snap[section], section
        await fresh.close()

    # The end: everyone sees it; further commands are refused.
    await trainer.request("session.end")
    for c in (ada, bob, cy):
        await c.wait_until(lambda c=c: c.view()["status"] == "ended")
    after = await ada.send("chat.send", text="anyone?")
    assert after["error"]["code"] == "session_ended"


async def test_learner_is_refused_every_trainer_command(server):
    info, trainer = await server.live_session()
    learner = await server.client(info["join_url"], "Lee")
    msg = await trainer.request("chat.send", text="hi")
    poll = await trainer.request("poll.open", question="Q?", options=["a", "b"])
    q = await learner.request("qa.ask", text="question?")
    await learner.wait_seq(q["seq"])
    before = trainer.state.view("trainer")
    attempts = [
        ("session.start", {}),
        ("session.end", {}),
        ("session.mark", {"title": "x"}),
        ("chat.delete", {"message_id": msg["id"]}),
        ("participant.mute", {"participant_id": trainer.you["id"]}),
        ("participant.unmute", {"participant_id": learner.you["id"]}),
        ("poll.open", {"question": "Q", "options": ["a", "b"]}),
        ("poll.close", {"poll_id": poll["id"]}),
        ("poll.share", {"poll_id": poll["id"]}),
        ("qa.answer", {"question_id": q["id"]}),
        ("qa.dismiss", {"question_id": q["id"]}),
        ("qa.reopen", {"question_id": q["id"]}),
        ("wb.clear", {}),
        ("wb.page.add", {}),
        ("wb.page.switch", {"page_id": "w1"}),
        ("wb.permit", {"learners_can_draw": True}),
    ]
    for name, payload in attempts:
        ack = await learner.send(name, payload)
        assert ack["ok"] is False and ack["error"]["code"] == "forbidden", (name, ack)
    # Nothing changed, and the connection still works.
    await asyncio.sleep(0.05)
    assert trainer.state.view("trainer") == before
    assert (await learner.request("chat.send", text="still here"))["ok"]


async def test_session_not_live_before_start(server):
    info = await server.create_session()
    learner = await server.client(info["join_url"], "Early")
    ack = await learner.send("chat.send", text="hello?")
    assert ack["error"]["code"] == "session_not_live"
    assert learner.view()["status"] == "created"
    trainer = await server.client(info["trainer_url"])
    assert trainer.you["name"] == "Trainer"
    await trainer.request("session.start")
    await learner.wait_until(lambda: learner.view()["status"] == "live")
    assert (await learner.request("chat.send", text="hello!"))["ok"]


async def test_co_trainers_share_a_link(server):
    info, tess = await server.live_session()
    tom = await server.client(info["trainer_url"], "Tom")
    assert tom.you["role"] == "trainer" and tom.you["id"] != tess.you["id"]
    poll = await tom.request("poll.open", question="Ready?", options=["yes", "no"])
    await tess.request("poll.close", poll_id=poll["id"])


async def test_idle_session_ends_itself(tmp_path):
    async with running_server(tmp_path, idle_timeout=0.3) as server:
        await _idle_session_ends_itself(server)


async def _idle_session_ends_itself(server):
    sessions = server.app[SESSIONS]
    info, trainer = await server.live_session()
    await trainer.close()
    live = sessions.live[info["id"]]
    for _ in range(100):
        if live.state.status == "ended":
            break
        await asyncio.sleep(0.05)
    assert live.state.status == "ended"
    assert live.state.participants and not any(p["online"] for p in live.state.participants.values())


@pytest.mark.parametrize("field", ["name"])
async def test_learner_needs_a_name(server, field):
    info = await server.create_session()
    with pytest.raises(ClassroomError) as exc:
        await server.client(info["join_url"])
    assert exc.value.code == "name_required"


async def test_a_new_learner_cannot_join_an_ended_class(server):
    """Ended means ended: the learner link adds nobody (and no dead air to the recording) once the
    session has ended, while someone who was there, and a trainer, still come back to see the end."""
    info, trainer = await server.live_session()
    ada = await server.client(info["join_url"], "Ada")
    ada_link = f"{server.base_url}/s/{info['id']}/join?token={ada._token}"
    await trainer.request("session.end")
    await ada.close()
    live = server.app[SESSIONS].live[info["id"]]
    await trainer.wait_until(lambda: not live.state.participants[ada.you["id"]]["online"])
    seq, people = live.state.seq, dict(live.state.participants)

    for name in ("Late", None):  # refused before the name is even asked for
        with pytest.raises(ClassroomError) as exc:
            await server.client(info["join_url"], name)
        assert exc.value.code == "session_ended"
    assert live.state.seq == seq and live.state.participants.keys() == people.keys()

    back = await server.client(ada_link)
    assert back.you["id"] == ada.you["id"] and back.view()["status"] == "ended"
    co_trainer = await server.client(info["trainer_url"], "Theo")
    assert co_trainer.view()["status"] == "ended"
