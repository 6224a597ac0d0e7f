"""In real Chromium: a learner joining a long session gets the recent chat, scrolls up to load the
earlier messages page by page and sees them all in order; a whiteboard page the snapshot did not
carry is fetched when the trainer switches to it."""

from __future__ import annotations

from playwright.async_api import expect

from classroom.keys import SESSIONS

from .conftest import needs_browser
from .helpers import open_page, tid, until

MESSAGES = 260


@needs_browser
async def test_a_learner_scrolls_to_load_earlier_messages_and_board_pages(server, browser, problems):
    info, trainer = await server.live_session("Long class")
    live = await server.app[SESSIONS].get(info["id"])
    assert live is not None
    pid = trainer.you["id"]
    first = live.state.board["current"]
    for i in range(3):
        live.execute(pid, "wb.shape", {"kind": "rect", "x1": 10 * i, "y1": 10, "x2": 10 * i + 5, "y2": 15})
    live.execute(pid, "wb.page.add", {})
    texts = [f"message {i:03d}" for i in range(MESSAGES)]
    for text in texts:
        out = live.execute(pid, "chat.send", {"text": text})
    await live.durable(out)

    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    page = await open_page(context, info["join_url"], problems, "learner")
    await page.fill(tid("name-input"), "Ada")
    await page.click(tid("join-button"))
    await until(page, "v.chat.length === 100")
    shown = page.locator(tid("chat-message"))
    await expect(shown).to_have_count(100)  # the DOM renders a frame after the fold
    await expect(page.locator(tid("chat-earlier"))).to_be_visible()
    # The first page is not in the snapshot: the learner holds none of its elements yet.
    await until(page, f"v.board.pages.find(p => p.id === '{first}').elements.length === 0")

    # Scrolling to the top of the list fetches the earlier messages, 50 at a time.
    for _ in range(10):
        await page.eval_on_selector(
            tid("chat-list"), "el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }"
        )
        try:
            await until(page, f"v.chat.length === {MESSAGES}", timeout=1500)
            break
        except Exception:
            continue
    await until(page, f"v.chat.length === {MESSAGES}")
    await expect(shown).to_have_count(MESSAGES)
    assert await shown.locator(".text").all_inner_texts() == texts
    await expect(page.locator(tid("chat-earlier"))).to_be_hidden()

    # The trainer goes back to the first page: the learner's page fetches it and shows it.
    await trainer.request("wb.page.switch", page_id=first)
    await until(page, f"v.board.current === '{first}' && v.board.pages[0].elements.length === 3")

    # New messages still arrive and go to the end.
    await trainer.request("chat.send", text="after the history")
    await until(page, f"v.chat.length === {MESSAGES + 1}")
    await expect(shown.last.locator(".text")).to_have_text("after the history")
    await context.close()
    assert problems.items == []
