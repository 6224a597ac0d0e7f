"""The replay's bounded state and its paging: at every moment the fast path (`timeline.py`) gives
exactly the bounded view of the full fold, chat pages hold every message shown at t once and in
order, and over HTTP `state?t=` stays small on a long recording while the paging routes serve
the rest."""

from __future__ import annotations

import json
import random
from pathlib import Path

from classroom.core import CommandError, SessionCore
from classroom.core.history import SNAPSHOT_BYTES
from recorder.recorder import Recorder
from recorder.replay import Recording
from recorder.timeline import CHECKPOINT_EVENTS

from ..conftest import running_server
from .test_replay_api import call, create, fails, ok


async def _generate(root: Path, n: int, seed: int = 3) -> str:
    """A session through the real core and recorder with chat and deletions, a recording pause,
    polls, questions, streamed strokes and a trainer going back to earlier pages."""
    rng = random.Random(seed)
    sid = "bounded"
    recorder = Recorder(root)
    recovered = await recorder.open(sid, "Bounded", "on")
    core = SessionCore(sid, "Bounded", state=recovered.state)
    rec = lambda events: recorder.append(sid, events)  # noqa: E731
    rec(core.join("tr", "Trainer", "trainer", 0))
    rec(core.execute("tr", "session.start", {}, 0).events)
    people = [f"l{i}" for i in range(12)]
    for pid in people:
        rec(core.join(pid, f"Learner {pid}", "learner", 1))
    messages: list[str] = []
    polls: list[str] = []
    questions: list[str] = []
    pages = [core.state.board["current"]]
    stroke = None
    while core.state.seq < n:
        t = core.state.seq * 100
        roll = rng.random()
        pid = rng.choice(people)
        try:
            if roll < 0.4:
                out = core.execute("tr", "chat.send", {"text": f"m{core.state.seq}"}, t)
                messages.append(out.reply["id"])
            elif roll < 0.45 and messages:
                out = core.execute(
                    "tr", "chat.delete", {"message_id": messages.pop(rng.randrange(len(messages)))}, t
                )
            elif roll < 0.55:
                if stroke is None:
                    out = core.execute("tr", "wb.stroke.begin", {"points": [1, 1, 2, 2]}, t)
                    stroke = out.reply["id"]
                elif rng.random() < 0.7:
                    out = core.execute("tr", "wb.stroke.extend", {"element_id": stroke, "points": [3, 3]}, t)
                else:
                    out = core.execute("tr", "wb.stroke.end", {"element_id": stroke}, t)
                    stroke = None
            elif roll < 0.57 and stroke is None:
                if len(pages) < 6 and rng.random() < 0.5:
                    out = core.execute("tr", "wb.page.add", {}, t)
                    pages.append(out.reply["id"])
                else:
                    page = rng.choice(pages)
                    if page == core.state.board["current"]:
                        continue
                    out = core.execute("tr", "wb.page.switch", {"page_id": page}, t)
            elif roll < 0.6 and stroke is None:
                out = core.execute("tr", "wb.shape", {"kind": "rect", "x1": 1, "y1": 1, "x2": 9, "y2": 9}, t)
                if rng.random() < 0.3:
                    rec(out.events)
                    out = core.execute("tr", "wb.erase", {"element_id": out.reply["id"]}, t)
            elif roll < 0.62:
                if polls and rng.random() < 0.6:
                    rec(core.execute("tr", "poll.close", {"poll_id": polls[-1]}, t).events)
                out = core.execute("tr", "poll.open", {"question": "?", "options": ["a", "b"]}, t)
                polls.append(out.reply["id"])
            elif roll < 0.75 and polls:
                out = core.execute(
                    pid, "poll.vote", {"poll_id": rng.choice(polls), "choices": [rng.randrange(2)]}, t
                )
            elif roll < 0.8:
                out = core.execute(
                    "tr", "qa.ask", {"text": f"q{core.state.seq}?", "anonymous": rng.random() < 0.3}, t
                )
                questions.append(out.reply["id"])
            elif roll < 0.9 and questions:
                out = core.execute(pid, "qa.upvote", {"question_id": rng.choice(questions)}, t)
            elif roll < 0.91:
                paused = core.state.recording == "paused"
                out = core.execute("tr", "recording.resume" if paused else "recording.pause", {}, t)
            else:
                out = core.execute(pid, "reaction.send", {"emoji": "👏"}, t)
        except CommandError:
            continue
        rec(out.events)
    rec(core.execute("tr", "session.end", {}, n * 100).events)
    await recorder.durable(sid, core.state.seq)
    await recorder.close()
    return sid


async def test_the_fast_bounded_state_equals_the_bounded_view_of_the_full_fold(tmp_path: Path):
    sid = await _generate(tmp_path, 3 * CHECKPOINT_EVENTS + 500)
    rec = Recording(tmp_path, sid)
    duration = rec.manifest()["duration_ms"]
    rng = random.Random(5)
    times = [0, duration, *(rng.randrange(duration) for _ in range(60))]
    for t in times:
        for audience in ("learner", "trainer"):
            fast = rec.state_at(t, audience, bounded=True)
            full = rec.full_state(t)
            want = full.view(audience, None, bounded=True)  # type: ignore[arg-type]
            want["t"], want["paused"] = t, rec.paused_at(t)
            assert fast == want, (t, audience)
            # Chat paging: every message shown at t once, in order, ending with the bounded view's.
            seen: list[str] = []
            before = None
            while True:
                page = rec.chat_page(t, before, 37, audience)
                seen = [m["id"] for m in page["messages"]] + seen
                if not page["more"]:
                    break
                before = page["messages"][0]["seq"]
            assert seen == list(full.chat), t
            # Every page as it was at t.
            for page_view in full.view(audience, None)["board"]["pages"]:  # type: ignore[arg-type]
                assert rec.board_page(t, page_view["id"], audience)["page"] == page_view


async def test_state_is_bounded_over_http_and_the_paging_routes_serve_the_rest(tmp_path: Path):
    data = tmp_path / "data"
    async with running_server(data) as server:
        info = await create(server, "Long")
        from classroom.keys import SESSIONS

        live = await server.app[SESSIONS].get(info["id"])
        assert live is not None
        from classroom.client import ClassroomClient

        trainer = ClassroomClient(server.base_url + "/" + info["trainer_url"].split("/", 3)[3], "T")
        await trainer.connect()
        await trainer.request("session.start")
        pid = trainer.you["id"]
        first = live.state.board["current"]
        live.execute(pid, "wb.shape", {"kind": "rect", "x1": 1, "y1": 1, "x2": 9, "y2": 9})
        live.execute(pid, "wb.page.add", {})
        ids = []
        for i in range(3000):
            out = live.execute(pid, "chat.send", {"text": f"{i:05d} " + "y" * 1990})
            ids.append(out.reply["id"])
        out = live.execute(pid, "session.mark", {"title": "midway"})
        await live.durable(out)
        # Asked while live: the timeline is built now and extended by what follows.
        token = info["trainer_url"].split("token=")[1]
        mid = await ok(server, "GET", f"/api/recordings/{info['id']}/state?t={out.events[-1].t}", token)
        assert mid["chat"][-1]["id"] == ids[-1] and mid["polls"] == []
        for i in range(30):
            poll = live.execute(pid, "poll.open", {"question": f"p{i}", "options": ["a", "b"]}).reply["id"]
            live.execute(pid, "poll.close", {"poll_id": poll})
        out = live.execute(pid, "session.end", {})
        await live.durable(out)
        await trainer.close()
        manifest = await ok(server, "GET", f"/api/recordings/{info['id']}", token)
        end = manifest["duration_ms"]
        status, body = await call(server, "GET", f"/api/recordings/{info['id']}/state?t={end}", token)
        assert status == 200
        assert len(json.dumps(body).encode()) < SNAPSHOT_BYTES
        assert body["more"]["chat"] == 3000 - len(body["chat"])
        assert body["more"]["polls"] == 10
        # Chat, page by page.
        seen = [m["id"] for m in body["chat"]]
        before = body["chat"][0]["seq"]
        while True:
            page = await ok(
                server,
                "GET",
                f"/api/recordings/{info['id']}/state/chat?t={end}&before={before}&limit=100",
                token,
            )
            seen = [m["id"] for m in page["messages"]] + seen
            if not page["more"]:
                break
            before = page["messages"][0]["seq"]
        assert seen == ids
        # The first page, not in the bounded state.
        assert {p["id"]: p["elements"] for p in body["board"]["pages"]}[first] is None
        page = await ok(server, "GET", f"/api/recordings/{info['id']}/state/board/{first}?t={end}", token)
        assert len(page["page"]["elements"]) == 1
        older = await ok(
            server,
            "GET",
            f"/api/recordings/{info['id']}/state/polls?t={end}&before={body['polls'][0]['seq']}",
            token,
        )
        assert [p["question"] for p in older["polls"]] == [f"p{i}" for i in range(10)] and not older["more"]
        qs = await ok(server, "GET", f"/api/recordings/{info['id']}/state/questions?t={end}", token)
        assert qs["questions"] == [] and not qs["more"]
        # Bad input: clear errors.
        base = f"/api/recordings/{info['id']}/state"
        await fails(server, "GET", f"{base}/board/nope?t={end}", token, 404, "not_found")
        await fails(server, "GET", f"{base}/chat?t={end}&limit=0", token, 400, "out_of_range")
        await fails(server, "GET", f"{base}/chat?t={end}&limit=101", token, 400, "out_of_range")
        await fails(server, "GET", f"{base}/chat?t={end}&before=x", token, 400, "invalid_payload")
        await fails(server, "GET", f"{base}/chat", token, 400, "invalid_payload")
        await fails(server, "GET", f"{base}/chat?t={end + 10**6}", token, 400, "out_of_range")


async def test_only_the_most_recently_used_timelines_stay_in_memory(tmp_path: Path, monkeypatch):
    from recorder import replay

    monkeypatch.setattr(replay, "TIMELINES", 1)
    sid = await _generate(tmp_path, 1200)
    a, b = Recording(tmp_path, sid), Recording(tmp_path, sid)
    end = a.manifest()["duration_ms"]
    first = a.state_at(end, bounded=True)
    assert a._timeline is not None
    assert b.state_at(end, bounded=True) == first
    assert a._timeline is None and b._timeline is not None
    assert a.state_at(end, bounded=True) == first  # rebuilt on use
    assert b._timeline is None
