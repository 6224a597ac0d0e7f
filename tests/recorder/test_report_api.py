"""The engagement report over HTTP, from a scripted live session with real socket.io clients and two
replay viewers reporting progress: every figure is what the script did, computed from the script
(its tallies and the times the trainer saw on the stream), and a viewer's coverage from a set of
milliseconds, not from the server's own interval merge."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections import Counter, defaultdict
from typing import Any

import pytest

from classroom.client import ClassroomClient
from recorder import api as recorder_api

from ..conftest import ADMIN_KEY, barrier
from .test_replay_features import _paused_session, call, fails, ok, tick, token_of

SPEED = 2  # Vera plays at 2x: each one-second report covers two seconds of the recording


class Script:
    """The live part, with a tally of everything each participant did."""

    def __init__(self, server) -> None:
        self.server = server
        self.did: dict[str, Counter[str]] = defaultdict(Counter)
        self.votes: dict[str, dict[str, list[int]]] = defaultdict(dict)  # name -> poll -> choices
        self.names: dict[int, str] = {}  # client -> the name the script calls it

    def name(self, who: ClassroomClient) -> str:
        return self.names.get(id(who), who.name or "")

    async def act(self, who: ClassroomClient, what: str, command: str, **payload: Any) -> dict[str, Any]:
        ack = await who.request(command, **payload)
        self.did[self.name(who)][what] += 1
        await tick()
        return ack


def joins_seen(trainer: ClassroomClient, pid: str) -> list[dict[str, Any]]:
    """A participant's stretches online, from the participant.joined/left events the trainer saw."""
    out: list[dict[str, Any]] = []
    for e in trainer.events:
        if e["type"] == "participant.joined" and e["data"]["id"] == pid and (not out or out[-1]["left"]):
            out.append({"joined": e["t"], "left": None})
        elif e["type"] == "participant.left" and e["data"]["id"] == pid and out and out[-1]["left"] is None:
            out[-1]["left"] = e["t"]
    return out


def seen(trainer: ClassroomClient, type_: str) -> dict[str, Any]:
    return next(e for e in trainer.events if e["type"] == type_)


async def live_script(server) -> dict[str, Any]:
    s = Script(server)
    info, trainer = await server.live_session("Report")
    start_t = seen(trainer, "session.started")["t"]
    ada = await server.client(info["join_url"], "Ada")
    bob = await server.client(info["join_url"], "Bob")
    eve = await server.client(info["join_url"], "=cmd|' /C calc'!A0")  # leaves early
    s.names[id(eve)] = "Eve"
    await tick()
    await s.act(ada, "chat", "chat.send", text="Hello")
    await s.act(ada, "chat", "chat.send", text="Ready")
    await s.act(bob, "chat", "chat.send", text="Hi")
    q1 = await s.act(ada, "questions", "qa.ask", text="What is a fold?")
    q2 = await s.act(bob, "questions", "qa.ask", text="Is it recorded?", anonymous=True)
    await s.act(bob, "upvotes", "qa.upvote", question_id=q1["id"])
    await s.act(eve, "upvotes", "qa.upvote", question_id=q1["id"])
    await s.act(ada, "upvotes", "qa.upvote", question_id=q2["id"])
    await ada.request("qa.unvote", question_id=q2["id"])
    s.did["Ada"]["upvotes"] -= 1
    await s.act(bob, "reactions", "reaction.send", emoji="👏")
    await s.act(bob, "reactions", "reaction.send", emoji="🎉")
    await s.act(eve, "hands", "hand.raise")
    quiz = await trainer.request("poll.open", question="2+2?", options=["3", "4", "5"], correct=[1])
    mood = await trainer.request("poll.open", question="Mood?", options=["ok", "great"])
    for who, poll, choices in ((ada, quiz, [1]), (bob, quiz, [2]), (eve, quiz, [1]), (ada, mood, [0])):
        await who.request("poll.vote", poll_id=poll["id"], choices=choices)
        s.votes[s.name(who)][poll["id"]] = choices
        await tick()
    await eve.close()  # Eve leaves: the polls stay open
    await trainer.wait_for("participant.left", lambda e: e["data"]["id"] == eve.you["id"])
    cat = await server.client(info["join_url"], "Cat")  # joins late, while the polls are open
    await tick()
    await s.act(cat, "chat", "chat.send", text="Sorry I'm late")
    await trainer.request("poll.close", poll_id=quiz["id"])
    await trainer.request("poll.close", poll_id=mood["id"])
    await barrier(trainer, ada, bob, cat)
    return {
        "script": s,
        "info": info,
        "trainer": trainer,
        "learners": {"Ada": ada, "Bob": bob, "Eve": eve, "Cat": cat},
        "start_t": start_t,
        "quiz": quiz["id"],
        "mood": mood["id"],
        "questions": (q1["id"], q2["id"]),
    }


async def report(server, rid: str, token: str = ADMIN_KEY) -> dict[str, Any]:
    return await ok(server, "GET", f"/api/sessions/{rid}/report", token)


async def test_the_report_is_what_the_script_did(server):
    run = await live_script(server)
    s: Script = run["script"]
    info, trainer, learners = run["info"], run["trainer"], run["learners"]
    rid = info["id"]
    trainer_token = token_of(info["trainer_url"])

    # Live: the session runs, those online have an open stretch, the report is not final.
    live = await report(server, rid, trainer_token)
    assert live["session"]["final"] is False and live["session"]["status"] == "live"
    by_name = {p["name"]: p for p in live["participants"]}
    assert by_name["Ada"]["joins"][-1]["left"] is None
    assert by_name["Ada"]["chat"] == s.did["Ada"]["chat"]

    await trainer.request("session.end")
    await learners["Ada"].wait_for("session.ended")
    end_t = seen(trainer, "session.ended")["t"]
    start_t = run["start_t"]
    duration = end_t - start_t

    r = await report(server, rid, trainer_token)
    assert r["session"]["final"] is True
    assert (r["session"]["start_t"], r["session"]["end_t"], r["session"]["duration_ms"]) == (
        start_t,
        end_t,
        duration,
    )
    quiz_polls = {run["quiz"]: [1]}
    by_name = {p["name"]: p for p in r["participants"]}
    assert set(by_name) == {"Tess Trainer", "Ada", "Bob", "=cmd|' /C calc'!A0", "Cat"}
    by_name["Eve"] = by_name.pop("=cmd|' /C calc'!A0")
    presence = {}
    for name, client in learners.items():
        p = by_name[name]
        stretches = joins_seen(trainer, client.you["id"])
        closed = [
            {"joined": j["joined"], "left": j["left"] if j["left"] is not None else end_t} for j in stretches
        ]
        assert p["joins"] == closed, name
        present = sum(min(j["left"], end_t) - max(j["joined"], start_t) for j in closed)
        presence[name] = present
        assert p["present_ms"] == present and p["present_share"] == round(present / duration, 4)
        for kind in ("chat", "questions", "upvotes", "reactions", "hands"):
            assert p[kind] == s.did[name][kind], (name, kind)
        mine = s.votes[name]
        assert p["poll_votes"] == len(mine)
        correct = sum(1 for poll, c in mine.items() if quiz_polls.get(poll) == c)
        assert (p["quiz_correct"], p["quiz_answered"], p["quiz_total"]) == (
            correct,
            sum(1 for poll in mine if poll in quiz_polls),
            len(quiz_polls),
        )
    q1, q2 = run["questions"]
    upvoters = {q1: ["Bob", "Eve"], q2: []}  # Ada's upvote of q2 was taken back
    assert by_name["Ada"]["upvotes_received"] == len(upvoters[q1])
    assert by_name["Bob"]["upvotes_received"] == len(upvoters[q2])

    # Totals: attendance from the join/leave order the trainer saw.
    online, peak = 0, 0
    for e in trainer.events:
        if e["type"] in ("participant.joined", "participant.left") and e["data"]["id"] != trainer.you["id"]:
            online += 1 if e["type"] == "participant.joined" else -1
            peak = max(peak, online)
    assert peak == 3  # Ada, Bob, Eve; Cat came after Eve left
    totals = r["totals"]
    assert totals["learners"] == 4 and totals["peak_attendance"] == peak
    assert totals["average_attendance"] == round(sum(presence.values()) / duration, 2)
    for kind in ("chat", "questions", "reactions", "hands"):
        assert totals[kind] == sum(c[kind] for c in s.did.values()), kind
    assert totals["votes"] == sum(len(v) for v in s.votes.values())

    # Polls: voters over the learners online while each was open (Eve voted and left; Cat came).
    polls = {p["id"]: p for p in r["polls"]}
    for poll_id in (run["quiz"], run["mood"]):
        voters = sum(1 for v in s.votes.values() if poll_id in v)
        assert polls[poll_id]["voters"] == voters and polls[poll_id]["eligible"] == 4
        assert polls[poll_id]["participation"] == round(voters / 4, 4)

    # Timeline: activity per minute adds up to the totals; attendance never above the peak.
    for kind in ("chat", "questions", "votes", "reactions", "hands"):
        assert sum(m[kind] for m in r["timeline"]) == totals[kind]
    assert max(m["attendance"] for m in r["timeline"]) == peak
    assert [m["minute"] for m in r["timeline"]] == list(range(start_t // 60000, (end_t - 1) // 60000 + 1))
    assert [(q["id"], q["votes"], q["name"]) for q in r["top_questions"]] == [(q1, 2, "Ada")]

    # -- replay viewers -------------------------------------------------------------------------
    replay = token_of(info["replay_url"])
    base = f"/api/recordings/{rid}"
    duration_ms = (await ok(server, "GET", base, replay))["duration_ms"]
    vera = await ok(server, "POST", f"{base}/viewers", replay, 201, json={"name": "Vera"})
    walt = await ok(server, "POST", f"{base}/viewers", replay, 201, json={"name": "Walt"})

    # Vera at 2x: plays from 0, seeks back, then skips ahead to the last fifth. Each report is what
    # one second of wall time played: two seconds of the recording, cut at a seek.
    stretches = [
        (0, duration_ms // 3),
        (duration_ms // 6, duration_ms // 2),
        (duration_ms * 4 // 5, duration_ms),
    ]
    vera_ms: set[int] = set()
    for a, b in stretches:
        for lo in range(a, b, 1000 * SPEED):
            hi = min(b, lo + 1000 * SPEED)
            await ok(server, "POST", f"{base}/viewers/{vera['viewer_id']}/progress", vera["token"], 204,
                     json={"from": lo, "to": hi})  # fmt: skip
            vera_ms.update(range(lo, hi))
    await ok(
        server, "POST", f"{base}/questions", vera["token"], 201, json={"t": duration_ms // 4, "text": "Eh?"}
    )
    # Walt watches everything at 1x (reports overlap by a little) and answers the quiz rightly.
    for lo in range(0, duration_ms, 1000):
        await ok(server, "POST", f"{base}/viewers/{walt['viewer_id']}/progress", walt["token"], 204,
                 json={"from": max(0, lo - 100), "to": min(duration_ms, lo + 1000)})  # fmt: skip
    await ok(server, "POST", f"{base}/quiz/{run['quiz']}", walt["token"], json={"choices": [1]})
    await ok(server, "POST", f"{base}/quiz/{run['mood']}", walt["token"], json={"choices": [0]})

    r = await report(server, rid)
    viewers = {v["name"]: v for v in r["replay"]["viewers"]}
    assert r["replay"]["duration_ms"] == duration_ms
    v = viewers["Vera"]
    got = {ms for a, b in v["watched"] for ms in range(a, b)}
    assert got == vera_ms and v["watched_ms"] == len(vera_ms) < duration_ms
    assert v["watched_share"] == round(len(vera_ms) / duration_ms, 4)
    assert v["questions"] == [{"t": duration_ms // 4, "text": "Eh?"}]
    assert (v["quiz_answered"], v["quiz_score"]) == (0, 0.0)
    w = viewers["Walt"]
    assert w["watched"] == [[0, duration_ms]] and w["watched_share"] == 1.0
    assert (w["quiz_correct"], w["quiz_answered"], w["quiz_total"], w["quiz_score"]) == (1, 1, 1, 1.0)

    # CSV: the same figures, and a name that would be a formula shows as text.
    async with server.http.get(
        f"{server.base_url}/api/sessions/{rid}/report?format=csv",
        headers={"Authorization": f"Bearer {trainer_token}"},
    ) as resp:
        assert resp.status == 200 and resp.content_type == "text/csv"
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
    async with server.http.get(
        f"{server.base_url}/api/sessions/{rid}/report",
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Accept": "text/csv"},
    ) as resp:
        assert resp.content_type == "text/csv"
    names = [row["name"] for row in rows]
    assert "'=cmd|' /C calc'!A0" in names and "=cmd|' /C calc'!A0" not in names
    ada_row = next(row for row in rows if row["name"] == "Ada")
    assert int(ada_row["chat"]) == s.did["Ada"]["chat"] and int(ada_row["present_ms"]) == presence["Ada"]
    walt_row = next(row for row in rows if row["name"] == "Walt")
    assert walt_row["kind"] == "replay" and int(walt_row["watched_ms"]) == duration_ms


async def test_report_access(server):
    info, _trainer = await server.live_session("Access")
    rid = info["id"]
    path = f"/api/sessions/{rid}/report"
    await fails(server, "GET", path, None, 401, "unauthorized")
    await fails(server, "GET", path, token_of(info["join_url"]), 403, "forbidden")
    await fails(server, "GET", path, token_of(info["replay_url"]), 403, "forbidden")
    await fails(server, "GET", path, "nonsense", 401, "invalid_token")
    await fails(server, "GET", path + "?format=xml", ADMIN_KEY, 400, "invalid_payload")
    other = await server.create_session("Other")
    await fails(server, "GET", path, token_of(other["trainer_url"]), 403, "wrong_session")
    await fails(server, "GET", "/api/sessions/nosuchid/report", ADMIN_KEY, 404, "not_found")
    assert (await report(server, rid, token_of(info["trainer_url"])))["session"]["id"] == rid


async def _viewer(server) -> tuple[str, dict[str, Any], str]:
    info, trainer = await server.live_session("Progress")
    ada = await server.client(info["join_url"], "Ada")
    await ada.request("chat.send", text="something to replay")
    await asyncio.sleep(0.4)  # a recording long enough for the intervals below (not an assertion)
    await trainer.request("session.end")
    await ada.wait_for("session.ended")
    base = f"/api/recordings/{info['id']}"
    viewer = await ok(
        server, "POST", f"{base}/viewers", token_of(info["replay_url"]), 201, json={"name": "V"}
    )
    return base, viewer, token_of(info["replay_url"])


async def test_progress_bad_input_changes_nothing(server):
    base, viewer, replay = await _viewer(server)
    duration = (await ok(server, "GET", base, replay))["duration_ms"]
    mine = f"{base}/viewers/{viewer['viewer_id']}/progress"
    tok = viewer["token"]
    await fails(server, "POST", mine, replay, 403, "forbidden", json={"from": 0, "to": 1})  # not a viewer
    await fails(
        server, "POST", f"{base}/viewers/someone/progress", tok, 403, "forbidden", json={"from": 0, "to": 1}
    )
    await fails(server, "POST", mine, tok, 400, "out_of_range", json={"from": 5, "to": 5})
    await fails(server, "POST", mine, tok, 400, "out_of_range", json={"from": -1, "to": 5})
    await fails(server, "POST", mine, tok, 400, "out_of_range", json={"from": 0, "to": duration + 1})
    await fails(server, "POST", mine, tok, 400, "invalid_payload", json={"from": 0, "to": 1, "x": 1})
    await fails(server, "POST", mine, tok, 400, "invalid_payload", json={"from": "0", "to": 1})
    await fails(server, "POST", mine, None, 401, "unauthorized", json={"from": 0, "to": 1})
    rid = base.rsplit("/", 1)[1]
    r = await report(server, rid)
    assert r["replay"]["viewers"][0]["watched"] == []


async def test_progress_is_bounded_in_rate_and_size(server, monkeypatch: pytest.MonkeyPatch):
    base, viewer, _ = await _viewer(server)
    mine = f"{base}/viewers/{viewer['viewer_id']}/progress"
    rid = base.rsplit("/", 1)[1]
    burst = recorder_api.PROGRESS_RATE.burst
    per_s = recorder_api.PROGRESS_RATE.burst * 1000 / recorder_api.PROGRESS_RATE.per_ms
    began = time.monotonic()
    accepted = 0
    for _ in range(burst * 3):
        status, body = await call(
            server, "POST", mine, viewer["token"], json={"from": accepted, "to": accepted + 1}
        )
        if status == 429:
            assert body["error"]["code"] == "rate_limited"
            break
        assert status == 204, body
        accepted += 1
    else:
        pytest.fail("never rate limited")
    assert burst <= accepted <= burst + per_s * (time.monotonic() - began) + 1
    r = await report(server, rid)
    assert r["replay"]["viewers"][0]["watched"] == [[0, accepted]]  # the refused one is not stored

    # At most PROGRESS_REPORTS per viewer are stored (here lowered, and the rate lifted).
    monkeypatch.setattr(recorder_api, "PROGRESS_REPORTS", accepted + 2)
    server.app[recorder_api.PROGRESS_BUCKETS].clear()
    for i in range(2):
        await ok(server, "POST", mine, viewer["token"], 204, json={"from": 100 + i, "to": 101 + i})
    await fails(server, "POST", mine, viewer["token"], 409, "limit_reached", json={"from": 200, "to": 201})
    r = await report(server, rid)
    assert r["replay"]["viewers"][0]["watched"] == [[0, accepted], [100, 102]]


async def test_what_was_said_off_the_record_counts_nowhere(server):
    """Ada chats before, during and after a recording pause: the report counts the two on the
    record, like the replay and its manifest, and her presence all along."""
    info, trainer, _ada, _secret, _times = await _paused_session(server)
    r = await report(server, info["id"])
    ada = next(p for p in r["participants"] if p["name"] == "Ada")
    assert ada["chat"] == 2 and r["totals"]["chat"] == 2
    manifest = await ok(server, "GET", f"/api/recordings/{info['id']}", ADMIN_KEY)
    assert manifest["counts"]["chat"] == 2
    joined = joins_seen(trainer, ada["id"])
    assert ada["joins"] == [{"joined": joined[0]["joined"], "left": r["session"]["end_t"]}]
