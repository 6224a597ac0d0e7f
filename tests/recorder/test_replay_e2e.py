"""A scripted session through every live feature, then its replay: state at every moment equals
what a live client folded then; the events window and exports hold every event in order."""

from __future__ import annotations

import csv
import io
import json
import re

import msgpack

from ..conftest import barrier


async def _get(server, path: str, token: str, **kw):
    headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
    async with server.http.get(f"{server.base_url}{path}", headers=headers, **kw) as r:
        body = await r.read()
        return r.status, r.headers.get("Content-Type", ""), body


async def _json(server, path: str, token: str):
    status, _, body = await _get(server, path, token)
    assert status == 200, (path, body)
    return json.loads(body)


async def run_script(server):
    """Every live feature once or more; returns the session info, the trainer and an observer
    learner who records their folded view after every event they receive."""
    info, trainer = await server.live_session("Scripted")
    observer = await server.client(info["join_url"], "Olive")
    seen: list[tuple[int, dict]] = []
    original = observer._apply

    def recording_apply(wire):
        before = observer.state.seq
        original(wire)
        if observer.state.seq != before:
            seen.append((wire["t"], observer.view()))

    observer._apply = recording_apply
    ada = await server.client(info["join_url"], "Ada")
    bob = await server.client(info["join_url"], "Bob")
    await ada.request("hand.raise")
    await bob.request("reaction.send", emoji="🎉")
    await ada.request("chat.send", text="Hello <b>everyone</b> & welcome --> ok")
    spam = await bob.request("chat.send", text="spam")
    await trainer.request("chat.delete", message_id=spam["id"])
    await trainer.request("participant.mute", participant_id=bob.you["id"])
    await trainer.request("hand.lower", participant_id=ada.you["id"])
    await trainer.request("session.mark", title="Polls")
    prepared = await trainer.request("poll.draft", question="Prepared?", options=["a", "b"], correct=[0])
    scrap = await trainer.request("poll.draft", question="Scrapped", options=["x", "y"])
    await trainer.request("poll.draft", question="Never opened", options=["1", "2"])
    await trainer.request("poll.discard", poll_id=scrap["id"])
    await trainer.request("poll.open_draft", poll_id=prepared["id"])
    await ada.request("poll.vote", poll_id=prepared["id"], choices=[0])
    quiz = await trainer.request("poll.open", question="2+2?", options=["3", "4"], correct=[1])
    anon = await trainer.request(
        "poll.open", question="Mood?", options=["ok", "meh", "great"], anonymous=True
    )
    await ada.request("poll.vote", poll_id=quiz["id"], choices=[1])
    await bob.request("poll.vote", poll_id=quiz["id"], choices=[0])
    await bob.request("poll.vote", poll_id=anon["id"], choices=[2])
    await trainer.request("poll.close", poll_id=quiz["id"])
    await trainer.request("poll.share", poll_id=quiz["id"])
    await trainer.request("poll.close", poll_id=anon["id"])
    q1 = await ada.request("qa.ask", text="Why?")
    q2 = await bob.request("qa.ask", text="Secret?", anonymous=True)
    await ada.request("qa.upvote", question_id=q2["id"])
    await trainer.request("qa.answer", question_id=q2["id"], text="Because.")
    await trainer.request("qa.dismiss", question_id=q1["id"])
    await trainer.request("qa.reopen", question_id=q1["id"])
    stroke = await trainer.request("wb.stroke.begin", points=[1, 1, 2, 2], color="#112233")
    for i in range(3):
        await trainer.request("wb.stroke.extend", element_id=stroke["id"], points=[3 + i, 3 + i])
    await trainer.request("wb.stroke.end", element_id=stroke["id"])
    await trainer.request("wb.shape", kind="ellipse", x1=10, y1=10, x2=50, y2=40)
    await trainer.request("wb.text", x=5, y=5, text="Title")
    await trainer.request("wb.undo")
    await trainer.request("wb.permit", learners_can_draw=True)
    await ada.request("wb.shape", kind="line", x1=0, y1=0, x2=9, y2=9)
    await trainer.request("wb.page.add")
    await trainer.request("wb.clear", page_id="w1")
    await trainer.request("wb.undo")
    await barrier(trainer, observer, ada, bob)
    await trainer.request("session.end")
    await observer.wait_for("session.ended")
    return info, trainer, observer, seen


async def test_replay_state_at_each_moment_equals_the_live_fold(server):
    info, _trainer, _observer, seen = await run_script(server)
    token = info["replay_url"].split("token=")[1]
    # Several events can share a millisecond: compare after the last event of each instant.
    last_at: dict[int, dict] = {}
    for t, view in seen:
        last_at[t] = view
    assert len(last_at) > 5
    for t, live in last_at.items():
        replay = await _json(server, f"/api/recordings/{info['id']}/state?t={t}", token)
        assert replay.pop("paused") is False
        for view in (live, replay):
            view.pop("t")
            view.pop("seq")  # the replay may include later events the observer never saw
        assert replay == live, f"state differs at t={t}"


async def test_events_window_and_exports_hold_every_event_in_order(server):
    info, trainer, _observer, _seen = await run_script(server)
    rid = info["id"]
    admin = server.admin["Authorization"].split()[1]
    body = await _json(server, f"/api/recordings/{rid}/events?from=0&to=999999999&audience=trainer", admin)
    events = body["events"]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1))  # every event, in order, no gaps
    # Exactly what the trainer received live (everything after its own join, in its snapshot).
    live = [e for e in trainer.events if e["seq"] <= seqs[-1]]
    assert [e["seq"] for e in live] == seqs[1 : len(live) + 1]
    assert events[1 : len(live) + 1] == live
    # A window is a slice of the whole.
    mid = events[len(events) // 2]["t"]
    part = await _json(server, f"/api/recordings/{rid}/events?from={mid}&to={mid}&audience=trainer", admin)
    assert part["events"] == [e for e in events if e["t"] == mid]

    # Learners' replay never shows a draft that was not opened.
    as_learner = await _json(server, f"/api/recordings/{rid}/events?audience=learner", admin)
    end = events[-1]["t"]
    at_end = await _json(server, f"/api/recordings/{rid}/state?t={end}&audience=learner", admin)
    for leaked in ("Scrapped", "Never opened"):
        assert leaked not in json.dumps(as_learner) and leaked not in json.dumps(at_end)
        assert leaked in json.dumps(body)
    assert "Prepared?" in json.dumps(as_learner) and at_end["drafts"] == []

    manifest = await _json(server, f"/api/recordings/{rid}", admin)
    assert manifest["status"] == "ended" and manifest["counts"]["chat"] == 2
    # Chapters are the trainer's marks and page changes, a page named by its place among the
    # pages (its id kept for seeking); polls are listed apart, once each.
    kinds = [(c["kind"], c["title"], c.get("page")) for c in manifest["chapters"]]
    added = next(e for e in events if e["type"] == "wb.page.added")["data"]["page"]
    assert kinds == [("mark", "Polls", None), ("page", "Whiteboard page 2", added), ("mark", "barrier", None)]
    assert all(c["id"].startswith("c") for c in manifest["chapters"] if c["kind"] == "mark")
    # A draft counts from its opening; the others never show.
    assert [p["question"] for p in manifest["polls"]] == ["Prepared?", "2+2?", "Mood?"]
    opened = {e["data"]["id"]: e["t"] for e in events if e["type"] == "poll.opened"}
    assert {p["id"]: p["t"] for p in manifest["polls"]} == opened
    asked = [
        {"t": e["t"], "id": e["data"]["id"], "text": e["data"]["text"]}
        for e in events
        if e["type"] == "qa.asked"
    ]
    assert asked and manifest["questions"] == asked

    status, ctype, raw = await _get(server, f"/api/recordings/{rid}/export/recording.json", admin)
    assert status == 200 and ctype.startswith("application/json")
    doc = json.loads(raw)
    assert doc["events"] == events and doc["recording"]["id"] == rid
    status, _, raw = await _get(server, f"/api/recordings/{rid}/export/recording.msgpack", admin)
    assert msgpack.unpackb(raw)["events"] == events

    status, ctype, raw = await _get(server, f"/api/recordings/{rid}/export/chat.vtt", admin)
    vtt = raw.decode()
    assert ctype.startswith("text/vtt") and vtt.startswith("WEBVTT\n")
    cues = re.findall(r"^(\d+)\n(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})\n(.+)$", vtt, re.M)
    assert len(cues) == 1  # the deleted message is not exported
    assert cues[0][3] == "Ada: Hello &lt;b&gt;everyone&lt;/b&gt; &amp; welcome --&gt; ok"
    assert cues[0][1] < cues[0][2]
    status, _, raw = await _get(server, f"/api/recordings/{rid}/export/chat.txt", admin)
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] Ada: Hello <b>everyone</b> & welcome --> ok\n", raw.decode())

    status, _, raw = await _get(server, f"/api/recordings/{rid}/export/polls.csv", admin)
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert [(r["question"], r["option"], r["votes"], r["correct"]) for r in rows] == [
        ("Prepared?", "a", "1", "yes"),
        ("Prepared?", "b", "0", "no"),
        ("2+2?", "3", "1", "no"),
        ("2+2?", "4", "1", "yes"),
        ("Mood?", "ok", "0", ""),
        ("Mood?", "meh", "0", ""),
        ("Mood?", "great", "1", ""),
    ]
    status, _, raw = await _get(server, f"/api/recordings/{rid}/export/questions.csv", admin)
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    assert [(r["question"], r["asked_by"], r["votes"], r["status"], r["answer"]) for r in rows] == [
        ("Why?", "Ada", "0", "open", ""),
        ("Secret?", "anonymous", "1", "answered", "Because."),
    ]


async def test_replay_link_gets_learner_view_and_msgpack(server):
    info, _trainer, _observer, _seen = await run_script(server)
    token = info["replay_url"].split("token=")[1]
    status, ctype, raw = await _get(
        server,
        f"/api/recordings/{info['id']}/state?t=999999",
        token,
        headers={"Accept": "application/msgpack"},
    )
    if status == 400:  # t beyond the end: ask at the end
        manifest = await _json(server, f"/api/recordings/{info['id']}", token)
        status, ctype, raw = await _get(
            server,
            f"/api/recordings/{info['id']}/state?t={manifest['duration_ms']}",
            token,
            headers={"Accept": "application/msgpack"},
        )
    assert status == 200 and ctype == "application/msgpack"
    state = msgpack.unpackb(raw)
    anon_poll = next(p for p in state["polls"] if p["question"] == "Mood?")
    assert anon_poll["counts"] is None and anon_poll["votes"] is None  # never shared
    secret = next(q for q in state["questions"] if q["text"] == "Secret?")
    assert secret["author"] is None and secret["name"] is None
    status, _, _ = await _get(server, f"/api/recordings/{info['id']}/export/recording.json", token)
    assert status == 403  # replay viewers get chat exports, not the whole recording
