"""The controls a trainer and a replay viewer reach for, clicked in real Chromium: the home page's
create form and recordings list, the console's moderation, recording and whiteboard controls, and
the replay player's transport, speeds, search and keyboard shortcuts."""

from __future__ import annotations

import asyncio
import re

from playwright.async_api import expect

from ..conftest import ADMIN_KEY
from .conftest import needs_browser
from .helpers import jsq, open_console, open_page, tid, until, view

LINK = re.compile(r"^http://127\.0\.0\.1:\d+/s/[\w-]+/\w+\?token=\S+$")


@needs_browser
async def test_home_creates_a_session_and_lists_its_recording(server, browser, problems):
    context = await browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    home = await open_page(context, server.base_url + "/", problems, "home")
    await home.fill(tid("admin-key"), "not-the-key")
    await home.fill(tid("title-input"), "Algebra 101")
    await home.click(tid("create-session"))
    await home.locator(":text('That admin key is not right.')").first.wait_for()
    # The browser logs the refused requests themselves; nothing else went wrong.
    assert problems.items and all("status of 401" in p or "status of 403" in p for p in problems.items)
    problems.items.clear()

    await home.fill(tid("admin-key"), ADMIN_KEY)
    await home.click(tid("create-session"))
    for field in ("trainer-url", "join-url", "replay-url"):
        await expect(home.locator(tid(field))).to_have_value(LINK)
    trainer_url = await home.input_value(tid("trainer-url"))
    await home.locator(tid("copy")).first.click()
    await expect(home.locator(tid("copy")).first).to_have_text("Copied ✓")
    assert await home.evaluate("() => navigator.clipboard.readText()") == trainer_url

    # The links work: a trainer runs the session, and it appears among the recordings.
    trainer = await server.client(trainer_url, "Tess")
    await trainer.request("session.start")
    await trainer.request("chat.send", text="Welcome")
    await trainer.request("session.end")
    await home.get_by_label("Refresh the recordings").click()
    item = home.locator(tid("recording") + f"[data-id={jsq(trainer.session_id)}]")
    await expect(item).to_contain_text("Algebra 101")
    replay_href = await item.get_by_label("Watch the replay of Algebra 101").get_attribute("href")
    assert LINK.match(replay_href) and "/replay?" in replay_href
    await context.close()
    assert problems.items == []


@needs_browser
async def test_trainer_console_moderates_records_and_draws(server, browser, problems):
    info = await server.create_session("Console")
    t_ctx = await browser.new_context(viewport={"width": 1280, "height": 900})
    console = await open_console(t_ctx, info["trainer_url"], problems)
    await console.click(tid("session-start"))
    await console.wait_for_selector(tid("status") + ":has-text('Live')")
    ada = await server.client(info["join_url"], "Ada")
    await until(console, "v.participants.some(p => p.name === 'Ada' && p.online)")

    # Recording: pause, resume; a chapter marked (its title asked in a prompt).
    await console.click(tid("recording-toggle"))
    await until(console, "v.recording === 'paused'")
    await console.click(tid("recording-toggle"))
    await until(console, "v.recording === 'on'")
    await console.click(tid("mark-chapter"))
    await until(console, "v.chapters.length === 1 && v.chapters[0].title === 'Chapter'")

    # Chat moderation: a message deleted, its author muted (and refused), then unmuted.
    await ada.request("chat.send", text="spam spam spam")
    await until(console, "v.chat.length === 1")
    await console.locator(tid("chat-message")).first.locator(tid("chat-delete")).click()
    await until(console, "v.chat.length === 0")
    await ada.wait_for("chat.deleted")
    await console.click(tid("tab-people"))  # the side panel's tabs: Chat, Q&A, People, Polls, Session
    row = console.locator(tid("participant") + f"[data-id={jsq(ada.you['id'])}]")
    await row.locator(tid("mute")).click()
    await until(console, "v.participants.find(p => p.name === 'Ada').muted")
    await ada.wait_for("participant.muted")
    refused = await ada.send("chat.send", {"text": "let me talk"})
    assert refused["ok"] is False and refused["error"]["code"] == "muted"
    await row.locator(tid("mute")).click()
    await until(console, "!v.participants.find(p => p.name === 'Ada').muted")

    # Q&A moderation: dismissed, reopened, answered.
    await ada.request("qa.ask", text="Is there homework?")
    await until(console, "v.questions.length === 1")
    await console.click(tid("tab-qa"))
    question = console.locator(tid("question")).first
    await question.locator(tid("qa-dismiss")).click()
    await until(console, "v.questions[0].status === 'dismissed'")
    await question.locator(tid("qa-reopen")).click()
    await until(console, "v.questions[0].status === 'open'")

    # Whiteboard: a rectangle in red, undone, redone; a second page; learners allowed to draw.
    await console.click(tid("tool", '[data-tool="rect"]'))
    await console.get_by_label("Colour Red").click()
    box = await console.locator(tid("board")).bounding_box()
    x, y = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
    await console.mouse.move(x, y)
    await console.mouse.down()
    await console.mouse.move(x + 80, y + 50, steps=5)
    await console.mouse.up()
    elements = "v.board.pages.find(p => p.id === v.board.current).elements"
    await until(console, f"{elements}.length === 1 && {elements}[0].kind === 'rect'")
    assert (await view(console))["board"]["pages"][0]["elements"][0]["color"] == "#dc2626"
    await console.click(tid("undo"))
    await until(console, f"{elements}.length === 0")
    await console.click(tid("redo"))
    await until(console, f"{elements}.length === 1")
    await console.click(tid("page-add"))
    await until(console, "v.board.pages.length === 2")
    await console.click(tid("permit-draw"))
    await ada.wait_for("wb.permission")
    assert ada.view()["board"]["learners_can_draw"] is True
    # What the learner's own fold made of the trainer's clicks (every page it holds).
    board = ada.state.view("learner", ada.you["id"])["board"]
    assert [len(p["elements"]) for p in board["pages"]] == [1, 0]

    await t_ctx.close()
    assert problems.items == []


@needs_browser
async def test_replay_player_transport_speed_search_and_keys(server, browser, problems):
    info, trainer = await server.live_session("Replayed")
    await trainer.request("chat.send", text="first words")
    await asyncio.sleep(1.2)
    await trainer.request("chat.send", text="the needle in the haystack")
    await asyncio.sleep(1.2)
    await trainer.request("chat.send", text="last words")
    await trainer.request("session.end")
    needle_t = next(
        e["t"] for e in trainer.events if e["type"] == "chat.message" and "needle" in e["data"]["text"]
    )
    duration = trainer.view()["t"]

    context = await browser.new_context()
    page = await open_page(context, info["replay_url"], problems, "replay")
    await page.wait_for_selector(tid("timeline"))
    time = "() => window.classcast.time()"
    assert await page.evaluate(time) == 0

    # Play on its own clock, at 2x, then pause with the space bar.
    await page.select_option(tid("speed"), "2")
    await page.click(tid("play"))
    await page.wait_for_function(f"() => window.classcast.time() >= {min(duration, 1500)}")
    await page.locator("body").click(position={"x": 5, "y": 5})  # focus off the controls
    await page.keyboard.press("Space")
    # Read the clock once the player shows it is paused (a loaded machine may render that late).
    await expect(page.locator(tid("play"))).to_have_attribute("aria-label", "Play")
    paused_at = await page.evaluate(time)
    await asyncio.sleep(0.3)
    assert await page.evaluate(time) == paused_at

    # Skips and arrow keys move by 10 s and 5 s, within the recording.
    await page.click(tid("skip-back"))
    assert await page.evaluate(time) == 0
    await page.click(tid("skip-forward"))
    assert await page.evaluate(time) == min(duration, 10_000)
    await page.locator("body").click(position={"x": 5, "y": 5})
    await page.keyboard.press("ArrowLeft")
    assert await page.evaluate(time) == max(0, min(duration, 10_000) - 5_000)

    # Search finds the message; clicking the hit seeks to its moment and shows the chat up to it.
    await page.evaluate("() => window.classcast.seek(0)")
    await page.fill(tid("search-input"), "NEEDLE")
    hit = page.locator(tid("search-result"))
    await expect(hit).to_have_count(1)
    await hit.click()
    await page.wait_for_function(f"() => window.classcast.time() === {needle_t}")
    messages = page.locator(tid("chat-message") + " .text")
    await expect(messages).to_have_text(["first words", "the needle in the haystack"])

    # Clicking an earlier chat message seeks back to it.
    first_t = next(e["t"] for e in trainer.events if e["type"] == "chat.message")
    await page.locator(tid("chat-message")).first.click()
    await page.wait_for_function(f"() => window.classcast.time() === {first_t}")
    await expect(messages).to_have_text(["first words"])
    await context.close()
    assert problems.items == []
