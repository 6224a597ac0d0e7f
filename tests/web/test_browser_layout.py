"""The live pages' layout in real Chromium: on a laptop screen the trainer's board stays in view and
the page does not scroll, the side panel's tabs (Chat, Q&A, People, Polls, Session) show their
panels, follow the arrow keys and count what happens; on a phone the learner's tabs (Board first)
badge what came in a tab not shown; a `classcast:reveal` event brings a panel into view; and the
learner's board has the room the empty video box used to take."""

from __future__ import annotations

from playwright.async_api import expect

from .conftest import needs_browser
from .helpers import join, open_console, tid, until

LAPTOP = {"width": 1366, "height": 768}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
SCROLLS = "() => document.documentElement.scrollHeight - window.innerHeight"
TOLERANCE = 2  # px of rounding


def tab(page, key: str):
    return page.locator(tid(f"tab-{key}"))


def badge(page, key: str):
    return page.locator(tid(f"tab-{key}") + " " + tid("tab-badge"))


def reveal(panel: str) -> str:
    return (
        f"() => document.dispatchEvent(new CustomEvent('classcast:reveal', {{detail: {{panel: '{panel}'}}}}))"
    )


async def in_viewport(page, selector: str) -> dict:
    box = await page.locator(selector).bounding_box()
    assert box is not None, selector
    size = page.viewport_size
    assert box["x"] >= 0 and box["y"] >= 0, box
    assert box["x"] + box["width"] <= size["width"] + 0.5, (box, size)
    assert box["y"] + box["height"] <= size["height"] + 0.5, (box, size)
    return box


@needs_browser
async def test_trainer_console_fits_a_laptop_screen_with_tabs_that_count(server, browser, problems):
    info = await server.create_session("Laptop")
    context = await browser.new_context(viewport=LAPTOP)
    console = await open_console(context, info["trainer_url"], problems)
    await console.click(tid("session-start"))
    await until(console, "v.status === 'live'")

    # The board is wholly on screen and large; the page itself does not scroll.
    box = await in_viewport(console, tid("board"))
    assert box["height"] >= 0.6 * LAPTOP["height"], box
    assert await console.evaluate(SCROLLS) <= TOLERANCE
    for control in ("session-end", "recording-toggle", "mark-chapter"):
        await expect(console.locator(tid(control))).to_be_visible()

    # The tabs: a tablist of tabs, each controlling the panel labelled by it; one shown at a time.
    tablist = console.get_by_role("tablist", name="Class panels")
    await expect(tablist.get_by_role("tab").locator(".tab-name")).to_have_text(
        ["Chat", "Q&A", "People", "Polls", "Session"]
    )
    shows = {
        "chat": "chat-input",
        "qa": "qa-input",
        "people": "participant-list",
        "polls": "poll-question",
        "session": "invite-url",
    }
    for key, inside in shows.items():
        await tab(console, key).click()
        await expect(tab(console, key)).to_have_attribute("aria-selected", "true")
        panel_id = await tab(console, key).get_attribute("aria-controls")
        panel = console.locator(f"#{panel_id}")
        await expect(panel).to_have_attribute("role", "tabpanel")
        await expect(panel).to_have_attribute("aria-labelledby", await tab(console, key).get_attribute("id"))
        await expect(panel.locator(tid(inside))).to_be_visible()
        for other in shows:
            if other != key:
                await expect(tab(console, other)).to_have_attribute("aria-selected", "false")
                await expect(console.locator(tid(shows[other]))).to_be_hidden()
        assert await console.evaluate(SCROLLS) <= TOLERANCE, key

    # Arrow keys, Home and End move between the tabs (wrapping), and only the selected one is in
    # the tab order.
    await tab(console, "chat").click()
    keys = [("ArrowRight", "qa"), ("ArrowRight", "people"), ("End", "session"), ("ArrowRight", "chat")]
    keys += [("ArrowLeft", "session"), ("Home", "chat")]
    for key, lands in keys:
        await console.keyboard.press(key)
        await expect(tab(console, lands)).to_be_focused()
        await expect(tab(console, lands)).to_have_attribute("aria-selected", "true")
        await expect(tab(console, lands)).to_have_attribute("tabindex", "0")
    await expect(console.locator("[role=tab][tabindex='0']")).to_have_count(1)

    # Counts: people online, open questions, open polls, and chat that came while Chat was not shown.
    await tab(console, "session").click()
    await expect(badge(console, "people")).to_have_text("1")
    theo = await server.client(info["trainer_url"], "Theo")
    ada = await server.client(info["join_url"], "Ada")
    await expect(badge(console, "people")).to_have_text("3")
    await expect(tab(console, "people")).to_have_accessible_name("People, 3 online")
    for key in ("chat", "qa", "polls"):
        await expect(badge(console, key)).to_be_hidden()
    for i in range(2):
        await ada.request("chat.send", text=f"hello {i}")
    await ada.request("qa.ask", text="Homework?")
    await theo.request("poll.open", question="Ready?", options=["Yes", "No"])
    await expect(badge(console, "chat")).to_have_text("2")
    await expect(tab(console, "chat")).to_have_accessible_name("Chat, 2 new")
    await expect(badge(console, "qa")).to_have_text("1")
    await expect(badge(console, "polls")).to_have_text("1")
    await tab(console, "chat").click()
    await expect(badge(console, "chat")).to_be_hidden()
    # While Chat is shown, messages are read as they come; the trainer's own never count.
    await ada.request("chat.send", text="seen at once")
    await console.fill(tid("chat-input"), "my own")
    await console.click(tid("chat-send"))
    await until(console, "v.chat.length === 4")
    await tab(console, "polls").click()
    await expect(badge(console, "chat")).to_be_hidden()
    await console.locator(tid("poll-close")).click()
    await expect(badge(console, "polls")).to_be_hidden()
    await ada.close()
    await expect(badge(console, "people")).to_have_text("2")

    # A long chat scrolls inside its panel, never the page.
    for i in range(40):
        await theo.request("chat.send", text=f"line {i}")
    await tab(console, "chat").click()
    await until(console, "v.chat.length === 44")
    await expect(console.locator(tid("chat-message"))).to_have_count(44)
    assert await console.evaluate(SCROLLS) <= TOLERANCE
    assert await console.eval_on_selector(tid("chat-list"), "el => el.scrollHeight > el.clientHeight")
    await in_viewport(console, tid("chat-input"))
    await in_viewport(console, tid("board"))

    # A reveal from elsewhere on the page: the named tab selected and focused; the board focused.
    await console.evaluate(reveal("qa"))
    await expect(tab(console, "qa")).to_be_focused()
    await expect(tab(console, "qa")).to_have_attribute("aria-selected", "true")
    await expect(console.locator(tid("qa-input"))).to_be_visible()
    await console.evaluate(reveal("board"))
    await expect(console.locator(tid("board-area"))).to_be_focused()
    await expect(tab(console, "qa")).to_have_attribute("aria-selected", "true")
    await theo.close()
    await context.close()
    assert problems.items == []


@needs_browser
async def test_learner_on_a_phone_has_tabs_with_unread_badges_and_reveal(server, browser, problems):
    info, trainer = await server.live_session("Phone")
    context, page = await join(browser, info["join_url"], "Pia", problems, **PHONE)

    # The board first, wholly on screen; the tabs above it; nothing scrolls the page.
    tablist = page.get_by_role("tablist", name="Class panels")
    await expect(tablist.get_by_role("tab").locator(".tab-name")).to_have_text(
        ["Board", "Chat", "Q&A", "Polls", "People"]
    )
    await expect(tab(page, "board")).to_have_attribute("aria-selected", "true")
    await in_viewport(page, tid("tablist"))
    board = await in_viewport(page, tid("board"))
    tabs = await page.locator(tid("tablist")).bounding_box()
    assert board["y"] >= tabs["y"] + tabs["height"]
    assert board["width"] >= 0.85 * PHONE["viewport"]["width"], board
    await expect(page.locator(tid("hand-raise"))).to_be_visible()
    await expect(page.locator(tid("chat-input"))).to_be_hidden()
    assert await page.evaluate(SCROLLS) <= TOLERANCE

    # A message from someone else while the board is shown: an unread badge on Chat.
    await trainer.request("chat.send", text="Look at the board")
    await until(page, "v.chat.length === 1")
    await expect(badge(page, "chat")).to_have_text("1")
    await expect(tab(page, "chat")).to_have_attribute("data-unread", "1")
    await expect(badge(page, "qa")).to_be_hidden()
    await trainer.request("chat.send", text="Questions welcome")
    await expect(badge(page, "chat")).to_have_text("2")
    await tab(page, "chat").click()
    await expect(badge(page, "chat")).to_be_hidden()
    await expect(page.locator(tid("chat-message") + " .text")).to_have_text(
        ["Look at the board", "Questions welcome"]
    )
    await in_viewport(page, tid("chat-input"))
    await expect(page.locator(tid("board"))).to_be_hidden()
    # What the learner sends is not news to them.
    await page.fill(tid("chat-input"), "ok")
    await page.click(tid("chat-send"))
    await until(page, "v.chat.length === 3")

    # Drawing while the board is not shown marks the Board tab with a dot; polls and answers count.
    await trainer.request("wb.shape", kind="rect", x1=10, y1=10, x2=200, y2=120)
    await expect(badge(page, "board")).to_be_visible()
    await expect(badge(page, "board")).to_have_class("tab-badge tab-badge-unread tab-badge-dot")
    await trainer.request("poll.open", question="Clear?", options=["Yes", "No"])
    await expect(badge(page, "polls")).to_have_text("1")
    await expect(badge(page, "people")).to_have_text("2")  # a count of who is online, not news

    # A prompt elsewhere on the page reveals a panel: its tab selected and focused.
    await page.evaluate(reveal("polls"))
    await expect(tab(page, "polls")).to_be_focused()
    await expect(tab(page, "polls")).to_have_attribute("aria-selected", "true")
    await expect(page.locator(tid("poll"))).to_be_visible()
    await expect(badge(page, "polls")).to_be_hidden()
    await page.evaluate(reveal("board"))
    await expect(tab(page, "board")).to_be_focused()
    await expect(page.locator(tid("board"))).to_be_visible()
    await expect(badge(page, "board")).to_be_hidden()
    await page.evaluate(reveal("nothing-like-this"))  # an unknown panel changes nothing
    await expect(tab(page, "board")).to_have_attribute("aria-selected", "true")
    assert await page.evaluate(SCROLLS) <= TOLERANCE
    await context.close()
    assert problems.items == []


@needs_browser
async def test_learner_board_takes_the_room_of_the_missing_video(server, browser, problems):
    info, trainer = await server.live_session("No media yet")
    context, page = await join(browser, info["join_url"], "Lea", problems, viewport=LAPTOP)

    # No empty video box: the media stage waits hidden, and the board sits at the top, whole.
    await expect(page.get_by_text("The trainer's video appears here")).to_have_count(0)
    await expect(page.locator(".video-placeholder")).to_have_count(0)
    await expect(page.locator(tid("media-stage"))).to_be_attached()
    await expect(page.locator(tid("media-stage"))).to_be_hidden()
    board = await in_viewport(page, tid("board"))
    # The old placeholder alone was 280 px tall and put the board's top below 400 px here.
    assert board["y"] < 160 and board["height"] >= 0.6 * LAPTOP["height"], board
    assert await page.evaluate(SCROLLS) <= TOLERANCE

    # Wide: the board has no tab (it is always shown) and Chat is open beside it.
    await expect(tab(page, "board")).to_be_hidden()
    await expect(tab(page, "chat")).to_have_attribute("aria-selected", "true")
    await expect(page.locator(tid("chat-input"))).to_be_visible()
    await trainer.request("wb.shape", kind="rect", x1=10, y1=10, x2=200, y2=120)
    await trainer.request("qa.ask", text="Shall we start?")
    await expect(badge(page, "qa")).to_have_text("1")
    await expect(badge(page, "board")).to_be_hidden()  # in view, so nothing unread
    await page.evaluate(reveal("board"))
    await expect(page.locator(tid("tabpanel-board"))).to_be_focused()

    # Narrowed to a phone's width, the board becomes the first tab; widened again, Chat comes back.
    await page.set_viewport_size({"width": 390, "height": 844})
    await expect(tab(page, "board")).to_be_visible()
    await tab(page, "qa").click()
    await expect(page.locator(tid("board"))).to_be_hidden()
    await page.set_viewport_size(LAPTOP)
    await expect(page.locator(tid("board"))).to_be_visible()
    await expect(tab(page, "qa")).to_have_attribute("aria-selected", "true")
    await tab(page, "people").click()
    await page.set_viewport_size({"width": 390, "height": 844})
    await tab(page, "board").click()
    await page.set_viewport_size(LAPTOP)
    await expect(tab(page, "board")).to_be_hidden()
    await expect(tab(page, "chat")).to_have_attribute("aria-selected", "true")
    await in_viewport(page, tid("board"))
    await context.close()
    assert problems.items == []
