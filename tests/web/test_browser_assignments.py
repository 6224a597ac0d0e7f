"""Replay assignments in Chromium: the trainer assigns the replay from the report page and sees each
assignee's status (names as text, personal links to copy, a CSV link); an assignee's replay page
shows their deadline, status and progress, which advances as the replay plays (the player's
progress reports), and links the deadline as an .ics file."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

from playwright.async_api import expect

from ..conftest import ADMIN_KEY as ADMIN
from ..recorder.test_replay_features import ok, token_of
from .conftest import needs_browser
from .helpers import open_page, tid

MARKUP = "<img src=x onerror=alert(1)>Zed"


async def recorded(server, seconds: float = 3.0) -> dict:
    """An ended session of about `seconds`, with a quiz poll."""
    info, trainer = await server.live_session("Assigned replay")
    ada = await server.client(info["join_url"], "Ada")
    await ada.request("chat.send", text="Hello")
    await trainer.request("poll.open", question="2 + 2?", options=["3", "4"], correct=[1])
    await asyncio.sleep(seconds)  # a recording long enough to play (not an assertion)
    await trainer.request("session.end")
    await trainer.wait_for("session.ended")
    return info


@needs_browser
async def test_trainer_assigns_the_replay_from_the_report(server, browser, problems):
    info = await recorded(server, 0.5)
    rid = info["id"]
    ctx = await browser.new_context()
    page = await open_page(
        ctx, f"{server.base_url}/s/{rid}/report?token={token_of(info['trainer_url'])}", problems, "report"
    )
    await expect(page.locator(tid("assignment-list"))).to_contain_text("No assignments yet.")
    await page.fill(tid("assign-threshold"), "80")
    await page.fill(tid("assign-people"), f"Ada Lovelace <ada@example.org>\n{MARKUP}")
    await page.click(tid("assign-create"))
    rows = page.locator(tid("assignee-row"))
    await expect(rows).to_have_count(2)
    await expect(rows.locator("th")).to_have_text(["Ada Lovelace", MARKUP])  # as text
    assert await page.locator("img").count() == 0
    await expect(page.locator(tid("assignee-status"))).to_have_text(["Not started", "Not started"])
    await expect(rows.first).to_contain_text("ada@example.org")
    assert "80%" in await page.locator(tid("assignment-item") + " h3").inner_text()

    # The personal links are the server's; Ada's watches it all through hers: completed.
    (made,) = (await ok(server, "GET", f"/api/sessions/{rid}/assignments", token_of(info["trainer_url"])))[
        "assignments"
    ]
    links = page.locator(tid("assignee-link"))
    await expect(links).to_have_count(2)
    assert [await x.input_value() for x in await links.all()] == [a["link"] for a in made["assignees"]]
    ada = made["assignees"][0]
    duration = (await ok(server, "GET", f"/api/recordings/{rid}", ADMIN))["duration_ms"]
    progress = f"/api/recordings/{rid}/viewers/{ada['id']}/progress"
    await ok(server, "POST", progress, token_of(ada["link"]), 204, json={"from": 0, "to": duration})
    await page.click(tid("report-refresh"))
    await expect(page.locator(tid("assignee-status"))).to_have_text(["Completed", "Not started"])
    await expect(page.locator(tid("assignee-watched")).first).to_have_text("100%")
    await expect(page.locator(tid("assignment-counts"))).to_have_text(
        "1 completed · 0 in progress · 1 not started · 0 overdue"
    )
    assert "format=csv" in (await page.locator(tid("assign-csv")).get_attribute("href") or "")

    # A refused assignment says why, and adds nothing.
    await page.click(tid("assign-audience-missed"))
    await page.click(tid("assign-create"))
    await expect(page.locator(tid("assign-error"))).to_have_text("nobody missed the session or left early")
    await expect(page.locator(tid("assignment-item"))).to_have_count(1)
    # Chromium logs the refused request (409) itself; nothing else went wrong.
    assert [p for p in problems.items if "status of 409" not in p] == []


@needs_browser
async def test_assignee_sees_deadline_and_progress_advance(server, browser, problems):
    info = await recorded(server, 4.0)
    rid = info["id"]
    deadline = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    made = await ok(server, "POST", f"/api/sessions/{rid}/assignments", ADMIN, 201,
                    json={"deadline": deadline.isoformat(), "threshold": 1.0,
                          "assignees": [{"name": "Vera", "email": "vera@example.org"}]})  # fmt: skip
    link = made["assignees"][0]["link"]
    ctx = await browser.new_context()
    page = await open_page(ctx, link, problems, "assignee")
    card = page.locator(tid("assignment"))
    await expect(card).to_be_visible()
    status = page.locator(tid("assignment-status"))
    await expect(status).to_have_text("Not started")
    await expect(page.locator(tid("assignment-deadline"))).to_have_attribute(
        "data-deadline", deadline.isoformat().replace("+00:00", "Z")
    )
    await expect(page.locator(tid("assignment-deadline"))).to_contain_text("at least 100%")
    ics = await page.locator(tid("assignment-ics")).get_attribute("href")
    got = await page.request.get(server.base_url + ics)
    assert got.status == 200 and got.headers["content-type"].startswith("text/calendar")

    # Play at 2x, pause a moment in: the progress reported so far shows, in progress (all of it
    # must be watched).
    await page.select_option(tid("speed"), "2")
    await page.click(tid("play"))
    # Paused in the same frame that sees the playhead past 0.8 s: at most one frame (2 s at 2x)
    # later, so well before the end of the 4 s recording.
    paused = await page.wait_for_function(
        """() => { const t = window.classcast.time(); if (t <= 800) return false;
        document.querySelector('[data-testid="play"]').click(); return t; }""",
        timeout=20_000,
    )
    paused_at = await paused.json_value()
    await expect(status).to_have_text("In progress", timeout=20_000)
    duration = (await ok(server, "GET", f"/api/recordings/{rid}", ADMIN))["duration_ms"]
    share = float(await page.locator(tid("assignment-progress")).get_attribute("data-share") or 0)
    assert share == round(math.ceil(paused_at) / duration, 4) < 1  # [0, the pause) was reported
    # On to the end: completed, all of it watched.
    await page.click(tid("play"))
    await expect(status).to_have_text("Completed", timeout=30_000)
    await expect(page.locator(tid("assignment-progress"))).to_have_attribute("data-share", "1")
    report = await ok(server, "GET", f"/api/sessions/{rid}/report", ADMIN)
    (vera,) = report["replay"]["viewers"]
    assert vera["name"] == "Vera" and vera["watched"] == [[0, report["replay"]["duration_ms"]]]
    assert problems.items == []
