"""Bad input gets a specific error code, changes nothing, and leaves the connection healthy."""

from __future__ import annotations

import contextlib

import socketio

from classroom.keys import SESSIONS

from .conftest import barrier


async def test_each_bad_command_gets_its_code_and_changes_nothing(server):
    info, trainer = await server.live_session()
    learner = await server.client(info["join_url"], "Lou")
    poll = await trainer.request("poll.open", question="Q", options=["a", "b"])
    closed = await trainer.request("poll.open", question="Old", options=["a", "b"])
    await trainer.request("poll.close", poll_id=closed["id"])
    stroke = await trainer.request("wb.stroke.begin", points=[1, 1, 2, 2])
    await trainer.request("wb.permit", learners_can_draw=True)
    await barrier(trainer, learner)
    live = server.app[SESSIONS].live[info["id"]]
    before = (live.state.seq, live.state.view("trainer"))

    cases = [
        ("learner", "no.such.command", {}, "unknown_command"),
        ("learner", "chat.send", {"text": 42}, "invalid_payload"),
        ("learner", "chat.send", {}, "invalid_payload"),
        ("learner", "chat.send", "just a string", "invalid_payload"),
        ("learner", "chat.send", {"text": "hi", "html": "<b>"}, "invalid_payload"),
        ("learner", "chat.send", {"text": "   "}, "invalid_payload"),
        ("learner", "chat.send", {"text": "x" * 2001}, "too_long"),
        ("learner", "chat.send", {"text": "y" * 100_000}, "payload_too_large"),
        ("trainer", "poll.open", {"question": "Q", "options": ["only one"]}, "out_of_range"),
        ("trainer", "poll.open", {"question": "Q", "options": [str(i) for i in range(11)]}, "out_of_range"),
        ("trainer", "poll.open", {"question": "Q", "options": ["a", "b"], "correct": [5]}, "out_of_range"),
        (
            "trainer",
            "poll.open",
            {"question": "Q", "options": ["a", "b"], "multiple": "yes"},
            "invalid_payload",
        ),
        ("learner", "poll.vote", {"poll_id": poll["id"], "choices": [2]}, "out_of_range"),
        ("learner", "poll.vote", {"poll_id": poll["id"], "choices": [0, 1]}, "out_of_range"),
        ("learner", "poll.vote", {"poll_id": poll["id"], "choices": ["0"]}, "invalid_payload"),
        ("learner", "poll.vote", {"poll_id": closed["id"], "choices": [0]}, "poll_closed"),
        ("learner", "poll.vote", {"poll_id": "p999", "choices": [0]}, "not_found"),
        ("learner", "wb.stroke.extend", {"element_id": stroke["id"], "points": [3, 3]}, "not_owner"),
        ("learner", "wb.erase", {"element_id": stroke["id"]}, "not_owner"),
        ("learner", "wb.stroke.begin", {"points": [1, 2, 3]}, "invalid_payload"),
        ("learner", "wb.stroke.begin", {"points": [10_000, 1]}, "out_of_range"),
        ("learner", "wb.shape", {"kind": "star", "x1": 0, "y1": 0, "x2": 1, "y2": 1}, "invalid_payload"),
        (
            "learner",
            "wb.shape",
            {"kind": "line", "x1": 0, "y1": 0, "x2": 1, "y2": 1, "width": 99},
            "out_of_range",
        ),
        (
            "learner",
            "wb.shape",
            {"kind": "line", "x1": 0, "y1": 0, "x2": 1, "y2": 1, "color": "red"},
            "invalid_payload",
        ),
        ("learner", "wb.undo", {}, "nothing_to_undo"),
        ("learner", "reaction.send", {"emoji": "💩"}, "invalid_payload"),
        ("learner", "qa.upvote", {"question_id": "q404"}, "not_found"),
        ("trainer", "chat.delete", {"message_id": "m404"}, "not_found"),
        ("trainer", "wb.page.switch", {"page_id": "w404"}, "not_found"),
        ("trainer", "participant.mute", {"participant_id": trainer.you["id"]}, "forbidden"),
        ("trainer", "session.start", {}, "already_live"),
    ]
    clients = {"trainer": trainer, "learner": learner}
    for who, name, payload, code in cases:
        ack = await clients[who].send(name, payload)
        assert ack["ok"] is False, (name, payload)
        assert ack["error"]["code"] == code, (name, payload, ack)
        assert ack["error"]["message"]
    # Two payloads in one command.
    ack = await learner.sio.call("chat.send", ({"text": "a"}, {"text": "b"}))
    assert ack["error"]["code"] == "invalid_payload"

    await barrier(trainer, learner)
    after_seq, after_view = live.state.seq, live.state.view("trainer")
    assert after_view["chapters"][-1]["title"] == "barrier"
    after_view["chapters"].pop()
    before[1]["seq"], before[1]["t"], after_view["seq"], after_view["t"] = 0, 0, 0, 0
    assert after_seq == before[0] + 1 and after_view == before[1]
    assert (await learner.request("chat.send", text="still fine"))["ok"]


async def test_commands_before_join_and_bad_join(server):
    info = await server.create_session()
    raw = socketio.AsyncClient(reconnection=False)
    await raw.connect(
        server.base_url, auth={"token": info["join_url"].split("token=")[1]}, transports=["websocket"]
    )
    try:
        ack = await raw.call("chat.send", {"text": "hi"})
        assert ack["error"]["code"] == "not_joined"
        for payload, code in [
            ({"name": "x" * 61}, "too_long"),
            ({"name": ""}, "invalid_payload"),
            ({"name": 7}, "invalid_payload"),
            ({"name": "Ok", "role": "trainer"}, "invalid_payload"),
            ({"name": "Ok", "last_seq": "1"}, "invalid_payload"),
            ({}, "name_required"),
        ]:
            ack = await raw.call("join", payload)
            assert ack["error"]["code"] == code, (payload, ack)
        ack = await raw.call("join", {"name": "  Zoë\x07 "})
        assert ack["ok"] and ack["you"]["name"] == "Zoë" and ack["you"]["role"] == "learner"
    finally:
        await raw.disconnect()


async def test_a_huge_message_drops_only_that_connection(server):
    info, trainer = await server.live_session()
    rogue = await server.client(info["join_url"], "Rogue", reconnect=False)
    with contextlib.suppress(Exception):
        await rogue.sio.emit("chat.send", {"text": "z" * 2_000_000})
    await trainer.wait_for("participant.left", timeout=10)
    assert (await trainer.request("chat.send", text="still serving"))["ok"]
    async with server.http.get(f"{server.base_url}/healthz") as r:
        assert r.status == 200
