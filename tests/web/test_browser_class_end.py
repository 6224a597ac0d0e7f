"""How a class ends, in real Chromium: the trainer is asked first, and the learner link afterwards
says the class is over and leads to the replay instead of joining the ended class."""

from __future__ import annotations

from playwright.async_api import expect

from classroom.keys import SESSIONS

from .conftest import needs_browser
from .helpers import open_console, open_page, tid, until, view


@needs_browser
async def test_end_session_asks_first_and_cancel_keeps_the_class_running(server, browser, problems):
    info = await server.create_session("Careful end")
    context = await browser.new_context()
    console = await open_console(context, info["trainer_url"], problems)
    await console.click(tid("session-start"))
    await until(console, "v.status === 'live'")

    # Escape, then Cancel: the class goes on, and focus is back on the button.
    for leave in ("Escape", "Cancel"):
        await console.click(tid("session-end"))
        dialog = console.get_by_role("dialog", name="End the session for everyone?")
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text("cannot be undone")
        await expect(console.locator(tid("dialog-cancel"))).to_be_focused()  # the safe default
        if leave == "Escape":
            await console.keyboard.press("Escape")
        else:
            await dialog.get_by_role("button", name="Keep the session").click()
        await expect(console.locator(tid("dialog"))).to_have_count(0)
        await expect(console.locator(tid("session-end"))).to_be_focused()
    live = server.app[SESSIONS].live[info["id"]]
    assert live.state.status == "live" and (await view(console))["status"] == "live"

    await console.click(tid("session-end"))
    await console.get_by_role("dialog").get_by_role("button", name="End session").click()
    await until(console, "v.status === 'ended'")
    assert live.state.status == "ended"
    await context.close()
    assert problems.items == []


@needs_browser
async def test_the_learner_link_after_the_end_offers_the_replay(server, browser, problems):
    info, trainer = await server.live_session("Finished class")
    await trainer.request("chat.send", text="Thanks, everyone")
    await trainer.request("session.end")
    live = server.app[SESSIONS].live[info["id"]]
    seq, people = live.state.seq, set(live.state.participants)

    context = await browser.new_context()
    page = await open_page(context, info["join_url"], problems, "late")
    await page.fill(tid("name-input"), "Latecomer")
    await page.click(tid("join-button"))
    await expect(page.get_by_role("heading", name="This class has ended")).to_be_visible()
    link = page.locator(tid("replay-link"))
    await expect(link).to_have_text("Watch the replay")
    # Nobody was added and the recording did not grow.
    assert live.state.seq == seq and set(live.state.participants) == people

    await link.click()
    await page.wait_for_selector(tid("timeline"))
    assert "/replay?token=" in page.url
    await context.close()
    assert problems.items == []
