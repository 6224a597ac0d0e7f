"""Replay features over a real server: pauses as gaps, sessions recorded off, anonymised learner
names, and what replay viewers add (quiz answers, time-anchored questions answered by trainers)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

from classroom.client import ClassroomError
from recorder.api import LIBRARY

from ..conftest import ADMIN_KEY, barrier, running_server

ADMIN = ADMIN_KEY


def token_of(url: str) -> str:
    return url.split("token=")[1]


async def call(server, method: str, path: str, token: str | None = None, *, json: Any = None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with server.http.request(method, server.base_url + path, headers=headers, json=json) as r:
        if r.content_type == "application/json":
            return r.status, await r.json()
        return r.status, await r.read()


async def ok(server, method: str, path: str, token: str | None, status: int = 200, **kw) -> Any:
    got, body = await call(server, method, path, token, **kw)
    assert got == status, (method, path, got, body)
    return body


async def fails(server, method: str, path: str, token: str | None, status: int, code: str, **kw) -> None:
    got, body = await call(server, method, path, token, **kw)
    assert got == status, (method, path, got, body)
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]


async def create(server, title: str, **options: Any) -> dict[str, Any]:
    async with server.http.post(
        f"{server.base_url}/api/sessions", json={"title": title, **options}, headers=server.admin
    ) as r:
        assert r.status == 201, await r.text()
        info = await r.json()
    for key, value in options.items():
        assert info[key] == value
    return info


async def start(server, info: dict[str, Any], trainer_name: str = "Tess Trainer"):
    trainer = await server.client(info["trainer_url"], trainer_name)
    await trainer.request("session.start")
    return trainer


def event_t(client, seq: int) -> int:
    return next(e["t"] for e in client.events if e["seq"] == seq)


async def tick() -> None:
    """Let the session clock move on, so the next event gets a later t."""
    await asyncio.sleep(0.015)


# -- pause and resume -----------------------------------------------------------------------------


async def _paused_session(server, during_pause=None):
    info = await create(server, "Paused")
    trainer = await start(server, info)
    ada = await server.client(info["join_url"], "Ada")
    await ada.request("chat.send", text="before")
    await tick()
    paused = await trainer.request("recording.pause")
    await tick()
    secret = await ada.request("chat.send", text="off the record")
    if during_pause is not None:
        await during_pause(trainer, ada)
    await tick()
    resumed = await trainer.request("recording.resume")
    await tick()  # "after" comes after the resume's millisecond, outside the paused window
    await ada.request("chat.send", text="after")
    await barrier(trainer, ada)
    await trainer.request("session.end")
    await ada.wait_for("session.ended")
    times = {name: event_t(trainer, ack["seq"]) for name, ack in (("pause", paused), ("resume", resumed))}
    times["secret"] = event_t(trainer, secret["seq"])
    return info, trainer, ada, secret, times


async def test_chat_while_paused_is_left_out_of_the_replay(server):
    info, trainer, ada, secret, times = await _paused_session(server)
    rid, replay = info["id"], token_of(info["replay_url"])
    assert times["pause"] < times["secret"] < times["resume"]
    # Live, everyone saw it.
    for client in (trainer, ada):
        assert [m["text"] for m in client.view()["chat"]] == ["before", "off the record", "after"]
    assert any(e["seq"] == secret["seq"] for e in ada.events)

    manifest = await ok(server, "GET", f"/api/recordings/{rid}", replay)
    assert manifest["pauses"] == [[times["pause"], times["resume"]]]

    for token, audience in ((replay, "learner"), (ADMIN, "trainer")):
        window = await ok(server, "GET", f"/api/recordings/{rid}/events?audience={audience}", token)
        events = window["events"]
        assert secret["seq"] not in [e["seq"] for e in events]
        assert [e["data"]["text"] for e in events if e["type"] == "chat.message"] == ["before", "after"]
        types = [e["type"] for e in events]
        assert "recording.paused" in types and "recording.resumed" in types
        inside = await ok(
            server,
            "GET",
            f"/api/recordings/{rid}/events?from={times['pause']}&to={times['resume']}&audience={audience}",
            token,
        )
        assert [e["type"] for e in inside["events"] if e["type"] == "chat.message"] == []

    during = await ok(server, "GET", f"/api/recordings/{rid}/state?t={times['secret']}", replay)
    assert during["paused"] is True and during["recording"] == "paused"
    assert [m["text"] for m in during["chat"]] == ["before"]
    at_resume = await ok(server, "GET", f"/api/recordings/{rid}/state?t={times['resume']}", replay)
    assert at_resume["paused"] is False and at_resume["recording"] == "on"
    final = await ok(server, "GET", f"/api/recordings/{rid}/state?t={manifest['duration_ms']}", ADMIN)
    assert final["paused"] is False
    assert [m["text"] for m in final["chat"]] == ["before", "after"]
    before = await ok(server, "GET", f"/api/recordings/{rid}/state?t={times['pause'] - 1}", replay)
    assert before["paused"] is False

    status, txt = await call(server, "GET", f"/api/recordings/{rid}/export/chat.txt", replay)
    assert status == 200
    assert [line.split("] ", 1)[1] for line in txt.decode().splitlines()] == ["Ada: before", "Ada: after"]
    status, doc = await call(server, "GET", f"/api/recordings/{rid}/export/recording.json", ADMIN)
    assert status == 200 and b"off the record" not in doc


async def _poll_while_paused(trainer, ada):
    await trainer.request("poll.open", question="Secret poll?", options=["yes", "no"])
    await trainer.request("session.mark", title="Secret chapter")


async def test_manifest_chapters_leave_out_the_pause(server):
    info, *_ = await _paused_session(server, _poll_while_paused)
    manifest = await ok(server, "GET", f"/api/recordings/{info['id']}", ADMIN)
    titles = [c["title"] for c in manifest["chapters"]] + [p["question"] for p in manifest["polls"]]
    assert "Secret poll?" not in titles and "Secret chapter" not in titles


async def test_manifest_counts_leave_out_the_pause(server):
    info, *_ = await _paused_session(server)
    manifest = await ok(server, "GET", f"/api/recordings/{info['id']}", ADMIN)
    assert manifest["counts"]["chat"] == 2


async def test_pause_and_resume_are_idempotent(server):
    info = await create(server, "Twice")
    trainer = await start(server, info)
    first = await trainer.request("recording.pause")
    again = await trainer.request("recording.pause")
    assert again["seq"] == first["seq"]  # nothing new happened
    await trainer.request("recording.resume")
    resumed = await trainer.request("recording.resume")
    await trainer.request("session.end")
    manifest = await ok(server, "GET", f"/api/recordings/{info['id']}", ADMIN)
    assert manifest["pauses"] == [[event_t(trainer, first["seq"]), event_t(trainer, resumed["seq"])]]


# -- recording off --------------------------------------------------------------------------------


async def _wait_gone(path: Path) -> None:
    for _ in range(200):
        if not path.exists():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} still exists")


async def _off_session(server):
    info = await create(server, "Unrecorded", recording=False)
    trainer = await start(server, info)
    ada = await server.client(info["join_url"], "Ada")
    await ada.request("chat.send", text="not for the record")
    return info, trainer, ada


async def test_recording_off(server):
    info, trainer, ada = await _off_session(server)
    rid = info["id"]
    directory = server.app[LIBRARY].root / rid
    for command in ("recording.pause", "recording.resume"):
        ack = await trainer.send(command)
        assert ack["ok"] is False and ack["error"]["code"] == "recording_off"
    assert trainer.view()["recording"] == "off"
    assert directory.is_dir()  # while live, the log guards against a crash
    await trainer.request("session.end")
    await ada.wait_for("session.ended")
    await _wait_gone(directory)
    for token in (token_of(info["replay_url"]), ADMIN):
        for method, path in [
            ("GET", f"/api/recordings/{rid}"),
            ("GET", f"/api/recordings/{rid}/events"),
            ("GET", f"/api/recordings/{rid}/state?t=0"),
            ("GET", f"/api/recordings/{rid}/export/chat.txt"),
            ("POST", f"/api/recordings/{rid}/viewers"),
        ]:
            await fails(server, method, path, token, 409, "recording_off")
    assert (await ok(server, "GET", "/api/recordings", ADMIN))["recordings"] == []
    mine = await ok(server, "GET", "/api/recordings", token_of(info["trainer_url"]))
    assert mine["recordings"] == [{"id": rid, "error": "recording_off"}]
    # Leaving after the end writes nothing either.
    await ada.close()
    await asyncio.sleep(0.05)
    assert not directory.exists()


async def test_recording_off_is_not_replayable_while_live(server):
    info, _trainer, _ada = await _off_session(server)
    await fails(
        server,
        "GET",
        f"/api/recordings/{info['id']}/events",
        token_of(info["replay_url"]),
        409,
        "recording_off",
    )


async def test_recording_off_stays_gone_after_a_restart(tmp_path: Path):
    data_dir = tmp_path / "data"
    async with running_server(data_dir) as server:
        info, trainer, ada = await _off_session(server)
        await trainer.request("session.end")
        await ada.wait_for("session.ended")
        await _wait_gone(data_dir / "recordings" / info["id"])
    async with running_server(data_dir) as server:
        join = server.base_url + "/s/" + info["join_url"].split("/s/", 1)[1]
        with contextlib.suppress(ClassroomError):  # refusing the late learner would be fine too
            await server.client(join, "Late")
        await fails(
            server, "GET", f"/api/recordings/{info['id']}", token_of(info["replay_url"]), 409, "recording_off"
        )
        assert not (data_dir / "recordings" / info["id"]).exists()
        assert (await ok(server, "GET", f"/api/sessions/{info['id']}", ADMIN))["status"] == "ended"


# -- anonymised learners --------------------------------------------------------------------------


async def test_anonymised_replay_names_learners_in_order_of_joining(server):
    info = await create(server, "Private", anonymize=True)
    trainer = await start(server, info, "Tess Trainer")
    zeb = await server.client(info["join_url"], "Zebulon")
    adl = await server.client(info["join_url"], "Adelaide")
    await adl.request("chat.send", text="first message")
    await zeb.request("chat.send", text="second message")
    await trainer.request("chat.send", text="from the trainer")
    q = await adl.request("qa.ask", text="A question?")
    await trainer.request("qa.answer", question_id=q["id"], text="An answer.")
    await zeb.request("hand.raise")
    await barrier(trainer, zeb, adl)
    # Live, names are real.
    assert sorted(p["name"] for p in trainer.view()["participants"]) == [
        "Adelaide",
        "Tess Trainer",
        "Zebulon",
    ]
    await trainer.request("session.end")
    await zeb.wait_for("session.ended")

    rid, replay = info["id"], token_of(info["replay_url"])
    pids = {"Zebulon": zeb.you["id"], "Adelaide": adl.you["id"], "Tess Trainer": trainer.you["id"]}
    alias = {"Zebulon": "Learner 1", "Adelaide": "Learner 2", "Tess Trainer": "Tess Trainer"}
    want_by_pid = {pids[n]: alias[n] for n in pids}
    manifest = await ok(server, "GET", f"/api/recordings/{rid}", replay)
    assert manifest["anonymized"] is True and manifest["trainers"] == ["Tess Trainer"]
    t_end = manifest["duration_ms"]

    bodies = []
    for token, audience in ((replay, "learner"), (ADMIN, "trainer")):
        window = await ok(server, "GET", f"/api/recordings/{rid}/events?audience={audience}", token)
        bodies.append(window)
        events = window["events"]
        joined = [(e["data"]["id"], e["data"]["name"]) for e in events if e["type"] == "participant.joined"]
        assert joined == [(pids[n], alias[n]) for n in ("Tess Trainer", "Zebulon", "Adelaide")]
        chat = [(e["data"]["name"], e["data"]["text"]) for e in events if e["type"] == "chat.message"]
        assert chat == [
            ("Learner 2", "first message"),
            ("Learner 1", "second message"),
            ("Tess Trainer", "from the trainer"),
        ]
        asked = next(e for e in events if e["type"] == "qa.asked")
        assert asked["data"]["name"] == "Learner 2"

        state = await ok(server, "GET", f"/api/recordings/{rid}/state?t={t_end}&audience={audience}", token)
        bodies.append(state)
        assert {p["id"]: p["name"] for p in state["participants"]} == want_by_pid
        assert [(m["name"], m["text"]) for m in state["chat"]] == chat
        assert [q["name"] for q in state["questions"]] == ["Learner 2"]
        assert [q["answer"] for q in state["questions"]] == ["An answer."]
        # Part-way through, only those who had joined have an alias.
        first_join = next(
            e for e in events if e["type"] == "participant.joined" and e["data"]["id"] == pids["Zebulon"]
        )
        early = await ok(server, "GET", f"/api/recordings/{rid}/state?t={first_join['t']}", token)
        names = {p["name"] for p in early["participants"]}
        assert "Learner 1" in names and not names & {"Zebulon", "Adelaide"}

    status, txt = await call(server, "GET", f"/api/recordings/{rid}/export/chat.txt", replay)
    assert status == 200
    assert [line.split("] ", 1)[1] for line in txt.decode().splitlines()] == [
        "Learner 2: first message",
        "Learner 1: second message",
        "Tess Trainer: from the trainer",
    ]
    status, vtt = await call(server, "GET", f"/api/recordings/{rid}/export/chat.vtt", replay)
    assert status == 200 and "Learner 2: first message" in vtt.decode()
    exported = []
    for name in ("recording.json", "questions.csv", "chat.vtt"):
        status, raw = await call(server, "GET", f"/api/recordings/{rid}/export/{name}", ADMIN)
        assert status == 200
        exported.append(json.dumps(raw, ensure_ascii=False) if isinstance(raw, dict) else raw.decode())
    assert "Learner 2" in exported[1]
    assert json.loads(exported[0])["recording"]["trainers"] == ["Tess Trainer"]
    # The real learner names appear nowhere in the replay.
    everything = json.dumps(bodies) + txt.decode() + vtt.decode() + "".join(exported)
    assert "Zebulon" not in everything and "Adelaide" not in everything
    assert "Tess Trainer" in everything


async def test_names_are_kept_when_not_anonymised(server):
    info, trainer = await server.live_session("Open")
    ada = await server.client(info["join_url"], "Adelaide")
    await ada.request("chat.send", text="hi")
    await barrier(trainer, ada)
    manifest = await ok(server, "GET", f"/api/recordings/{info['id']}", ADMIN)
    assert manifest["anonymized"] is False
    state = await ok(server, "GET", f"/api/recordings/{info['id']}/state?t={manifest['duration_ms']}", ADMIN)
    assert [m["name"] for m in state["chat"]] == ["Adelaide"]


# -- interactive replay ---------------------------------------------------------------------------


async def _quiz_session(server):
    info, trainer = await server.live_session("Quiz")
    ada = await server.client(info["join_url"], "Ada")
    bob = await server.client(info["join_url"], "Bob")
    cat = await server.client(info["join_url"], "Cat")
    quiz = await trainer.request("poll.open", question="2+2?", options=["3", "4", "5"], correct=[1])
    multi = await trainer.request(
        "poll.open", question="Primes?", options=["2", "4", "5", "9"], correct=[0, 2], multiple=True
    )
    await ada.request("poll.vote", poll_id=quiz["id"], choices=[1])
    await bob.request("poll.vote", poll_id=quiz["id"], choices=[0])
    await cat.request("poll.vote", poll_id=quiz["id"], choices=[1])
    await ada.request("poll.vote", poll_id=multi["id"], choices=[0, 2])
    await trainer.request("poll.close", poll_id=quiz["id"])
    await trainer.request("poll.close", poll_id=multi["id"])
    await trainer.request("poll.share", poll_id=quiz["id"])  # the multiple-choice quiz stays unshared
    await barrier(trainer, ada, bob, cat)
    live = {p["id"]: (p["counts"], p["voters"]) for p in trainer.view()["polls"]}
    assert live[quiz["id"]] == ([1, 2, 0], 3)
    await trainer.request("session.end")
    await ada.wait_for("session.ended")
    return info, trainer, quiz["id"], multi["id"], live


async def test_viewers_answer_quizzes(server):
    info, _trainer, quiz, multi, live = await _quiz_session(server)
    rid, replay = info["id"], token_of(info["replay_url"])
    base = f"/api/recordings/{rid}"
    vera = await ok(server, "POST", f"{base}/viewers", replay, 201, json={"name": "Vera"})
    assert vera["name"] == "Vera" and vera["role"] == "replay" and vera["viewer_id"]
    walt = await ok(server, "POST", f"{base}/viewers", replay, 201)
    assert walt["name"] == "Viewer" and walt["viewer_id"] != vera["viewer_id"]

    # The replay link itself has no viewer identity.
    await fails(server, "POST", f"{base}/quiz/{quiz}", replay, 403, "forbidden", json={"choices": [1]})
    await fails(server, "GET", f"{base}/quiz", replay, 403, "forbidden")

    result = await ok(server, "POST", f"{base}/quiz/{quiz}", vera["token"], json={"choices": [1]})
    assert result == {
        "poll_id": quiz,
        "choices": [1],
        "correct": [1],
        "is_correct": True,
        "live": {"counts": live[quiz][0], "voters": live[quiz][1]},
    }
    again = await ok(server, "POST", f"{base}/quiz/{quiz}", vera["token"], json={"choices": [2]})
    assert again["is_correct"] is False and again["choices"] == [2]
    assert again["live"] == result["live"]  # viewers never change the live results
    both = await ok(server, "POST", f"{base}/quiz/{multi}", vera["token"], json={"choices": [2, 0]})
    assert both["choices"] == [0, 2] and both["is_correct"] is True
    assert live[multi] == ([1, 0, 1, 0], 1)
    assert both["live"] is None  # results the trainer never shared stay private

    for bad, code in [
        ({"choices": [3]}, "out_of_range"),
        ({"choices": [-1]}, "out_of_range"),
        ({"choices": []}, "out_of_range"),
        ({"choices": [0, 1]}, "out_of_range"),  # a single-choice poll
        ({"choices": [1, 1]}, "invalid_payload"),
        ({"choices": ["1"]}, "invalid_payload"),
        ({"choice": [1]}, "invalid_payload"),
    ]:
        await fails(server, "POST", f"{base}/quiz/{quiz}", walt["token"], 400, code, json=bad)
    await fails(
        server, "POST", f"{base}/quiz/{multi}", walt["token"], 400, "out_of_range", json={"choices": [0, 4]}
    )
    await fails(server, "POST", f"{base}/quiz/p999", walt["token"], 404, "not_found", json={"choices": [0]})

    mine = await ok(server, "GET", f"{base}/quiz", vera["token"])
    answers = {a["poll_id"]: a for a in mine["answers"]}
    assert set(answers) == {quiz, multi}
    assert answers[quiz]["choices"] == [2] and answers[quiz]["is_correct"] is False  # replaced
    assert answers[multi]["choices"] == [0, 2]
    assert (await ok(server, "GET", f"{base}/quiz", walt["token"]))[
        "answers"
    ] == []  # failures stored nothing
    await ok(server, "POST", f"{base}/quiz/{quiz}", walt["token"], json={"choices": [1]})
    theirs = await ok(server, "GET", f"{base}/quiz", walt["token"])
    assert [(a["poll_id"], a["choices"]) for a in theirs["answers"]] == [(quiz, [1])]
    assert len((await ok(server, "GET", f"{base}/quiz", vera["token"]))["answers"]) == 2

    # A viewer token is for one recording only.
    other, *_ = await _quiz_session(server)
    await fails(server, "GET", f"/api/recordings/{other['id']}/quiz", vera["token"], 403, "wrong_session")


async def test_viewers_ask_and_trainers_answer(server):
    info, _trainer, _quiz, _multi, _live = await _quiz_session(server)
    rid, replay = info["id"], token_of(info["replay_url"])
    base = f"/api/recordings/{rid}"
    duration = (await ok(server, "GET", base, replay))["duration_ms"]
    assert duration > 0
    vera = await ok(server, "POST", f"{base}/viewers", replay, 201, json={"name": "Vera"})
    walt = await ok(server, "POST", f"{base}/viewers", replay, 201, json={"name": "Walt"})
    assert (await ok(server, "GET", f"{base}/questions", replay))["questions"] == []

    await fails(server, "POST", f"{base}/questions", replay, 403, "forbidden", json={"t": 0, "text": "Hm?"})
    for bad, code in [
        ({"t": duration + 1, "text": "Too late?"}, "out_of_range"),
        ({"t": -1, "text": "Too early?"}, "out_of_range"),
        ({"t": "1", "text": "String t?"}, "invalid_payload"),
        ({"text": "No t?"}, "invalid_payload"),
        ({"t": 0, "text": ""}, "invalid_payload"),
    ]:
        await fails(server, "POST", f"{base}/questions", vera["token"], 400, code, json=bad)
    assert (await ok(server, "GET", f"{base}/questions", replay))["questions"] == []

    asked = await ok(
        server, "POST", f"{base}/questions", vera["token"], 201, json={"t": duration, "text": "Why 4?"}
    )
    assert asked["t"] == duration and asked["text"] == "Why 4?" and asked["name"] == "Vera"
    assert asked["answer"] is None and asked["recording"] == rid
    assert "viewer" not in asked
    early = await ok(server, "POST", f"{base}/questions", walt["token"], 201, json={"t": 0, "text": "Hello?"})

    listed = (await ok(server, "GET", f"{base}/questions", walt["token"]))["questions"]
    assert [q["id"] for q in listed] == [early["id"], asked["id"]]  # ordered by t
    assert listed[1] == asked

    await fails(
        server,
        "POST",
        f"{base}/questions/{asked['id']}/answer",
        vera["token"],
        403,
        "forbidden",
        json={"text": "Me"},
    )
    await fails(
        server,
        "POST",
        f"{base}/questions/{asked['id']}/answer",
        replay,
        403,
        "forbidden",
        json={"text": "Me"},
    )
    await fails(
        server,
        "POST",
        f"{base}/questions/rNope/answer",
        token_of(info["trainer_url"]),
        404,
        "not_found",
        json={"text": "?"},
    )
    answered = await ok(
        server,
        "POST",
        f"{base}/questions/{asked['id']}/answer",
        token_of(info["trainer_url"]),
        json={"text": "Because 2+2=4."},
    )
    assert answered["answer"] == "Because 2+2=4." and answered["answered_by"] == "Trainer"
    for token in (replay, vera["token"], walt["token"], ADMIN):
        questions = (await ok(server, "GET", f"{base}/questions", token))["questions"]
        by_id = {q["id"]: q for q in questions}
        assert by_id[asked["id"]]["answer"] == "Because 2+2=4."
        assert by_id[early["id"]]["answer"] is None
    # A viewer that comes later sees the answer too.
    late = await ok(server, "POST", f"{base}/viewers", replay, 201, json={"name": "Late"})
    later = (await ok(server, "GET", f"{base}/questions", late["token"]))["questions"]
    assert [(q["text"], q["answer"]) for q in later] == [("Hello?", None), ("Why 4?", "Because 2+2=4.")]

    # Questions belong to their recording.
    other, *_ = await _quiz_session(server)
    assert (await ok(server, "GET", f"/api/recordings/{other['id']}/questions", ADMIN))["questions"] == []
    await fails(
        server,
        "POST",
        f"/api/recordings/{other['id']}/questions/{asked['id']}/answer",
        ADMIN,
        404,
        "not_found",
        json={"text": "x"},
    )
