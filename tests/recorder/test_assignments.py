"""Replay assignments over a real server: a scripted live session, two assignees watching the replay
through their personal links (one with seeks at 2x, one to the end with the quiz), their statuses
derived from the engagement report (completed for one, overdue for the other after a short
deadline), who "missed the session or left early", bad input and auth, a restart and a damaged
file, the CSV (neutralised) and the deadline's .ics read back with icalendar."""

from __future__ import annotations

import asyncio
import csv
import errno
import io
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar

from recorder import assignments as assignments_module
from recorder.api import ASSIGNMENTS
from recorder.assignments import MAX_ASSIGNEES

from ..conftest import ADMIN_KEY, running_server
from .test_replay_features import call, fails, ok, token_of
from .test_report_api import live_script

SPEED = 2


def deadline_in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def until(check, timeout: float = 60.0) -> Any:
    """Ask `check` again (it reads the server's state) until it gives something, within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


async def assignments(server, rid: str, token: str = ADMIN_KEY) -> list[dict[str, Any]]:
    return (await ok(server, "GET", f"/api/sessions/{rid}/assignments", token))["assignments"]


async def ended_session(server) -> tuple[dict[str, Any], dict[str, Any]]:
    run = await live_script(server)
    await run["trainer"].request("session.end")
    await run["learners"]["Ada"].wait_for("session.ended")
    return run, run["info"]


async def test_assignment_statuses_follow_what_the_assignees_did(server):
    run, info = await ended_session(server)
    rid = info["id"]
    trainer = token_of(info["trainer_url"])
    base = f"/api/recordings/{rid}"
    duration = (await ok(server, "GET", base, trainer))["duration_ms"]
    # A deadline a few seconds away: long enough for what the two do below, short for the test.
    made = await ok(
        server,
        "POST",
        f"/api/sessions/{rid}/assignments",
        trainer,
        201,
        json={
            "deadline": deadline_in(12),
            "threshold": 0.9,
            "quiz_required": True,
            "assignees": [{"name": "Vera", "email": "vera@example.org"}, {"name": "Walt"}],
        },
    )
    assert made["counts"] == {"not_started": 2, "in_progress": 0, "completed": 0, "overdue": 0}
    people = {a["name"]: a for a in made["assignees"]}
    assert people["Vera"]["email"] == "vera@example.org" and people["Walt"]["email"] is None
    vera, walt = (token_of(people[n]["link"]) for n in ("Vera", "Walt"))
    assert people["Vera"]["link"].startswith(f"{server.base_url}/s/{rid}/replay?token=")

    # The personal link opens the replay as that assignee's own viewer.
    you = (await ok(server, "GET", base, vera))["you"]
    assert (
        you["viewer_id"] == people["Vera"]["id"] and you["name"] == "Vera" and you["assignment"] == made["id"]
    )

    # Vera at 2x: plays from 0, seeks back, skips ahead to the last fifth (under the threshold).
    stretches = [(0, duration // 3), (duration // 6, duration // 2), (duration * 4 // 5, duration)]
    vera_ms: set[int] = set()
    for a, b in stretches:
        for lo in range(a, b, 1000 * SPEED):
            hi = min(b, lo + 1000 * SPEED)
            await ok(server, "POST", f"{base}/viewers/{you['viewer_id']}/progress", vera, 204,
                     json={"from": lo, "to": hi})  # fmt: skip
            vera_ms.update(range(lo, hi))
    mine = await ok(server, "GET", f"{base}/assignment", vera)
    assert mine["status"] == "in_progress" and mine["watched_ms"] == len(vera_ms)

    # Walt watches all of it at 1x and answers the quiz: completed, before the deadline.
    walt_id = people["Walt"]["id"]
    for lo in range(0, duration, 1000):
        await ok(server, "POST", f"{base}/viewers/{walt_id}/progress", walt, 204,
                 json={"from": lo, "to": min(duration, lo + 1000)})  # fmt: skip
    mine = await ok(server, "GET", f"{base}/assignment", walt)
    assert mine["status"] == "in_progress" and mine["watched_share"] == 1.0  # the quiz is still due
    await ok(server, "POST", f"{base}/quiz/{run['quiz']}", walt, json={"choices": [1]})
    answered = time.time()
    mine = await ok(server, "GET", f"{base}/assignment", walt)
    assert mine["status"] == "completed" and mine["late"] is False
    assert abs(parse_iso(mine["completed_at"]) - answered) <= 2

    # The report's replay figures are exactly what the two did, under the assignees' names.
    report = await ok(server, "GET", f"/api/sessions/{rid}/report", trainer)
    viewers = {v["name"]: v for v in report["replay"]["viewers"]}
    got = {ms for a, b in viewers["Vera"]["watched"] for ms in range(a, b)}
    assert got == vera_ms and viewers["Vera"]["watched_ms"] == len(vera_ms)
    assert viewers["Walt"]["watched"] == [[0, duration]]
    assert (viewers["Walt"]["quiz_correct"], viewers["Walt"]["quiz_total"]) == (1, 1)
    assert viewers["Vera"]["quiz_answered"] == 0

    # The trainer's list agrees with the report; after the deadline Vera is overdue, Walt done.
    async def vera_overdue():
        items = await assignments(server, rid, trainer)
        return items[0] if items[0]["counts"]["overdue"] == 1 else None

    item = await until(vera_overdue)
    st = {a["name"]: a for a in item["assignees"]}
    assert st["Vera"]["status"] == "overdue" and st["Walt"]["status"] == "completed"
    assert item["counts"] == {"not_started": 0, "in_progress": 0, "completed": 1, "overdue": 1}
    assert (
        st["Vera"]["watched_share"] == viewers["Vera"]["watched_share"] == round(len(vera_ms) / duration, 4)
    )
    assert st["Walt"]["quiz_score"] == 1.0 and st["Vera"]["quiz_score"] == 0.0
    assert st["Vera"]["completed_at"] is None and st["Walt"]["late"] is False
    assert (await ok(server, "GET", f"{base}/assignment", vera))["status"] == "overdue"

    # Completing after the deadline: completed, and late.
    for lo in range(duration // 2, duration * 4 // 5, 1000 * SPEED):
        await ok(server, "POST", f"{base}/viewers/{you['viewer_id']}/progress", vera, 204,
                 json={"from": lo, "to": min(duration, lo + 1000 * SPEED)})  # fmt: skip
    await ok(server, "POST", f"{base}/quiz/{run['quiz']}", vera, json={"choices": [2]})
    late = await ok(server, "GET", f"{base}/assignment", vera)
    assert late["status"] == "completed" and late["late"] is True and late["quiz_score"] == 0.0


async def test_everyone_who_missed_or_left_early(server):
    info, trainer = await server.live_session("Missed")
    ada = await server.client(info["join_url"], "Ada")
    bob = await server.client(info["join_url"], "Bob")
    ada2 = await server.client(info["join_url"], "ADA ")  # Ada again, from a second device
    await bob.close()
    await trainer.wait_for("participant.left", lambda e: e["data"]["id"] == bob.you["id"])
    await ada.close()  # her first device drops; the second stays to the end
    await trainer.wait_for("participant.left", lambda e: e["data"]["id"] == ada.you["id"])
    rid = info["id"]
    body = {"deadline": deadline_in(3600), "audience": "missed", "left_early_s": 0,
            "assignees": [{"name": "Carl", "email": "carl@example.org"}, {"name": "ada"}]}  # fmt: skip
    await fails(server, "POST", f"/api/sessions/{rid}/assignments", ADMIN_KEY, 409, "session_live", json=body)
    await trainer.request("session.end")
    await ada2.wait_for("session.ended")
    made = await ok(server, "POST", f"/api/sessions/{rid}/assignments", ADMIN_KEY, 201, json=body)
    assert [(a["name"], a["email"], a["reason"]) for a in made["assignees"]] == [
        ("Carl", "carl@example.org", "missed"),
        ("Bob", None, "left_early"),
    ]
    # With the default grace (5 minutes), Bob's leaving a moment before the end is not early.
    body = {**body, "left_early_s": 300, "assignees": [{"name": "Ada"}]}
    await fails(
        server, "POST", f"/api/sessions/{rid}/assignments", ADMIN_KEY, 409, "nobody_to_assign", json=body
    )


async def test_bad_input_and_auth_change_nothing(server):
    info, trainer = await server.live_session("Bad input")
    ada = await server.client(info["join_url"], "Ada")
    await trainer.request("poll.open", question="Mood?", options=["ok", "great"])  # not a quiz
    rid = info["id"]
    path = f"/api/sessions/{rid}/assignments"
    good = {"deadline": deadline_in(3600), "assignees": [{"name": "Ada"}]}
    learner, replay = token_of(info["join_url"]), token_of(info["replay_url"])
    other = await server.create_session("Other")
    for method in ("GET", "POST"):
        await fails(server, method, path, None, 401, "unauthorized", json=good)
        await fails(server, method, path, learner, 403, "forbidden", json=good)
        await fails(server, method, path, replay, 403, "forbidden", json=good)
        await fails(server, method, path, "nonsense", 401, "invalid_token", json=good)
        await fails(server, method, path, token_of(other["trainer_url"]), 403, "wrong_session", json=good)
        await fails(
            server, method, "/api/sessions/nosuchid/assignments", ADMIN_KEY, 404, "not_found", json=good
        )
    naive = datetime.now() + timedelta(hours=1)  # no time zone, on purpose
    bad = [
        ({"deadline": "tomorrow"}, 400, "invalid_payload"),
        ({"deadline": naive.isoformat()}, 400, "invalid_payload"),
        ({"deadline": deadline_in(-60)}, 400, "out_of_range"),
        ({"deadline": deadline_in(400 * 86400)}, 400, "out_of_range"),
        ({"deadline": 1234}, 400, "invalid_payload"),
        ({"threshold": 0}, 400, "out_of_range"),
        ({"threshold": 1.5}, 400, "out_of_range"),
        ({"threshold": "90%"}, 400, "invalid_payload"),
        ({"quiz_required": "yes"}, 400, "invalid_payload"),
        ({"audience": "all"}, 400, "invalid_payload"),
        ({"assignees": []}, 400, "out_of_range"),
        ({"assignees": [{"name": f"L{i}"} for i in range(MAX_ASSIGNEES + 1)]}, 400, "out_of_range"),
        ({"assignees": [{"name": "x" * 61}]}, 400, "too_long"),
        ({"assignees": [{"name": "   "}]}, 400, "invalid_payload"),
        ({"assignees": [{"name": "Ada", "email": "not-an-address"}]}, 400, "invalid_payload"),
        ({"assignees": [{"name": "Ada", "email": "a@b.co" + "m" * 260}]}, 400, "too_long"),
        ({"assignees": [{"name": "Ada"}, {"name": " ada"}]}, 400, "invalid_payload"),
        ({"assignees": [{"name": "Ada", "role": "x"}]}, 400, "invalid_payload"),
        ({"extra": 1}, 400, "invalid_payload"),
        ({"left_early_s": -1}, 400, "out_of_range"),
        ({"quiz_required": True}, 409, "no_quiz"),
    ]
    for change, status, code in bad:
        await fails(server, "POST", path, ADMIN_KEY, status, code, json={**good, **change})
    await fails(server, "POST", path, ADMIN_KEY, 400, "invalid_payload", json=[1])
    assert await assignments(server, rid) == []
    report = await ok(server, "GET", f"/api/sessions/{rid}/report", ADMIN_KEY)
    assert report["replay"]["viewers"] == []  # no viewer was registered for a refused one
    await fails(server, "GET", path + "?format=xml", ADMIN_KEY, 400, "invalid_payload")

    # The assignee's routes want an assignee's link: not a replay, learner or viewer token.
    mine = f"/api/recordings/{rid}/assignment"
    viewer = await ok(server, "POST", f"/api/recordings/{rid}/viewers", replay, 201, json={"name": "V"})
    for token in (replay, learner, viewer["token"], ADMIN_KEY):
        await fails(server, "GET", mine, token, 403, "forbidden")
        await fails(server, "GET", mine + ".ics", token, 403, "forbidden")
    await fails(server, "GET", mine, None, 401, "unauthorized")
    assert ada.you["role"] == "learner"


async def test_a_full_disk_stores_nothing(server, monkeypatch):
    info, trainer = await server.live_session("Full disk")
    rid = info["id"]

    class FullDisk:
        """`os` as the store sees it, on a disk that refuses the rename of the new file."""

        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

        @staticmethod
        def replace(*_: Any) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(assignments_module, "os", FullDisk())
    body = {"deadline": deadline_in(3600), "assignees": [{"name": "Ada"}, {"name": "Bob"}]}
    await fails(server, "POST", f"/api/sessions/{rid}/assignments", ADMIN_KEY, 503, "storage_full", json=body)
    assert await assignments(server, rid) == []
    report = await ok(server, "GET", f"/api/sessions/{rid}/report", ADMIN_KEY)
    assert report["replay"]["viewers"] == []  # the viewers registered for it were taken back
    assert not list((server.app[ASSIGNMENTS].root).glob("*.tmp"))
    assert trainer.you["role"] == "trainer"


async def test_restart_csv_calendar_and_damage(tmp_path: Path):
    data_dir = tmp_path / "data"
    formula = '=HYPERLINK("http://x","y")'
    async with running_server(data_dir) as server:
        info, trainer = await server.live_session("Keep me")
        await trainer.request("poll.open", question="2+2?", options=["3", "4"], correct=[1])
        await trainer.request("session.end")
        await trainer.wait_for("session.ended")
        rid = info["id"]
        deadline = (datetime.now(UTC) + timedelta(days=3)).replace(microsecond=0)
        body = {
            "deadline": deadline.isoformat(),
            "threshold": 0.5,
            "quiz_required": True,
            "assignees": [{"name": formula, "email": "f@example.org"}, {"name": "Gil"}],
        }
        path = f"/api/sessions/{rid}/assignments"
        made = await ok(server, "POST", path, token_of(info["trainer_url"]), 201, json=body)
    async with running_server(data_dir) as server:
        items = await assignments(server, rid)
        assert [a["id"] for a in items] == [made["id"]]
        # The same assignees, statuses and link tokens (on the new server's port).
        same = [{**a, "link": token_of(a["link"])} for a in items[0]["assignees"]]
        assert same == [{**a, "link": token_of(a["link"])} for a in made["assignees"]]
        assert parse_iso(items[0]["deadline"]) == deadline.timestamp()
        link = items[0]["assignees"][0]["link"]
        mine = await ok(server, "GET", f"/api/recordings/{rid}/assignment", token_of(link))
        assert mine["name"] == formula and mine["status"] == "not_started" and mine["quiz_required"] is True

        # CSV: one row per assignee; a name that would be a formula shows as text.
        async with server.http.get(
            f"{server.base_url}/api/sessions/{rid}/assignments?format=csv", headers=server.admin
        ) as r:
            assert r.status == 200 and r.content_type == "text/csv"
            rows = list(csv.DictReader(io.StringIO(await r.text())))
        assert [row["name"] for row in rows] == ["'" + formula, "Gil"]
        assert (
            rows[0]["status"] == "not_started"
            and rows[0]["link"] == link
            and rows[0]["quiz_required"] == "yes"
        )

        # The deadline as an iCalendar file, read back with icalendar.
        async with server.http.get(
            f"{server.base_url}/api/recordings/{rid}/assignment.ics?token={token_of(link)}"
        ) as r:
            assert r.status == 200 and r.content_type == "text/calendar"
            cal = icalendar.Calendar.from_ical(await r.read())
        (event,) = cal.walk("VEVENT")
        assert event.decoded("dtstart") == deadline
        assert str(event["url"]) == link and "Keep me" in str(event["summary"])
        assert "50%" in str(event["description"]) and "quiz" in str(event["description"])
        assert [str(a["action"]) for a in event.walk("VALARM")] == ["DISPLAY"]

    # A damaged file: a clear error on the assignment routes, the rest of the server unharmed.
    (data_dir / "assignments" / f"{rid}.json").write_text('{"version": 1, "assignments": [{"id": ')
    async with running_server(data_dir) as server:
        await fails(server, "GET", f"/api/sessions/{rid}/assignments", ADMIN_KEY, 500, "assignments_damaged")
        await fails(
            server, "GET", f"/api/recordings/{rid}/assignment", token_of(link), 500, "assignments_damaged"
        )
        body = {"deadline": deadline_in(3600), "assignees": [{"name": "Hal"}]}
        await fails(
            server,
            "POST",
            f"/api/sessions/{rid}/assignments",
            ADMIN_KEY,
            500,
            "assignments_damaged",
            json=body,
        )
        assert (await ok(server, "GET", f"/api/sessions/{rid}/report", ADMIN_KEY))["session"]["id"] == rid
        status, _ = await call(server, "GET", f"/api/recordings/{rid}", ADMIN_KEY)
        assert status == 200
    assert (data_dir / "assignments" / f"{rid}.json").read_text().endswith('"id": ')  # left as it was
