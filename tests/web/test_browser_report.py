"""The engagement report page in Chromium: the participants table sorts by a column with the mouse
and with the keyboard, names render as text, both charts are drawn in the theme's colours, and the
trainer console links to it."""

from __future__ import annotations

from playwright.async_api import expect

from ..recorder.test_replay_features import token_of
from .conftest import needs_browser
from .helpers import open_console, open_page, tid

MARKUP = "<img src=x onerror=alert(1)>Zed"


@needs_browser
async def test_report_page_sorts_and_draws(server, browser, problems):
    info, trainer = await server.live_session("Report page")
    chats = {"Ada": 3, "Bob": 1, MARKUP: 2}
    for name, n in chats.items():
        learner = await server.client(info["join_url"], name)
        for i in range(n):
            await learner.request("chat.send", text=f"message {i}")
    await trainer.request("reaction.send", emoji="👏")
    await trainer.request("session.end")
    await trainer.wait_for("session.ended")

    ctx = await browser.new_context()
    url = f"{server.base_url}/s/{info['id']}/report?token={token_of(info['trainer_url'])}"
    page = await open_page(ctx, url, problems, "report")
    table = page.locator(tid("participants-table"))
    names = table.locator("tbody tr th")
    # Sorted by name at first (the trainer among them); the markup name shows as text.
    expected = sorted([*chats, "Tess Trainer"], key=str)
    await expect(names).to_have_count(len(expected))
    initial = await names.all_inner_texts()
    assert sorted(initial, key=str) == expected
    assert await page.locator("img").count() == 0

    # A click on "Chat" sorts by it, largest first; the header says so.
    chat_head = table.locator("thead th", has=page.locator('[data-key="chat"]'))
    await table.locator('[data-key="chat"]').click()
    by_chat = [n for n, _ in sorted(chats.items(), key=lambda kv: -kv[1])] + ["Tess Trainer"]
    await expect(names).to_have_text(by_chat)
    await expect(chat_head).to_have_attribute("aria-sort", "descending")
    # Again: reversed. Then from the keyboard: Tab to the "Name" header's button and press Enter.
    await table.locator('[data-key="chat"]').click()
    await expect(names).to_have_text(list(reversed(by_chat)))
    await expect(chat_head).to_have_attribute("aria-sort", "ascending")
    await table.locator('[data-key="name"]').focus()
    await page.keyboard.press("Enter")  # by name, A to Z, as at first
    name_head = table.locator("thead th", has=page.locator('[data-key="name"]'))
    await expect(names).to_have_text(initial)
    await expect(name_head).to_have_attribute("aria-sort", "ascending")
    await expect(chat_head).not_to_have_attribute("aria-sort", "ascending")
    await page.keyboard.press("Space")  # again: Z to A
    await expect(names).to_have_text(list(reversed(initial)))
    await expect(name_head).to_have_attribute("aria-sort", "descending")

    # The charts: attendance as an area, activity as one bar per minute of the session.
    report = await page.evaluate("() => window.classcast.view()")
    await expect(page.locator(tid("attendance-chart") + " path.chart-area")).to_have_count(1)
    bars = page.locator(tid("activity-chart") + " rect.chart-bar")
    await expect(bars).to_have_count(len(report["timeline"]))
    assert sum(m["chat"] for m in report["timeline"]) == sum(chats.values())
    # The tallest bar fills the plot's height (a stylesheet rule for another `.bar` once squashed it).
    tallest = await page.evaluate(
        """() => { const c = document.querySelector('[data-testid="activity-chart"]');
        const bars = [...c.querySelectorAll('rect.chart-bar')].map((b) => b.getBoundingClientRect().height);
        return Math.max(...bars) / c.getBoundingClientRect().height; }"""
    )
    assert tallest > 0.7, tallest
    fill = "() => getComputedStyle(document.querySelector('.chart .chart-bar')).fill"
    assert await page.evaluate(fill) == "rgb(29, 78, 216)"  # --primary, light
    await page.emulate_media(color_scheme="dark")
    assert await page.evaluate(fill) == "rgb(59, 130, 246)"  # --primary, dark
    csv = page.locator(tid("report-csv"))
    assert "format=csv" in (await csv.get_attribute("href") or "")

    # The trainer console links to the report.
    console_ctx = await browser.new_context()
    console = await open_console(console_ctx, info["trainer_url"], problems)
    link = console.locator(tid("report-link"))
    await expect(link).to_have_attribute(
        "href", f"/s/{info['id']}/report?token={token_of(info['trainer_url'])}"
    )

    assert problems.items == []

    # A learner's link does not open the report page.
    async with server.http.get(
        f"{server.base_url}/s/{info['id']}/report?token={token_of(info['join_url'])}"
    ) as r:
        assert r.status == 403 and "This link does not work" in await r.text()
