"""A connection that dies without closing (a frozen server, a dead wifi link), in real Chromium: the
page says "Reconnecting…" within seconds of a command going unanswered, not "Live" until the ping
timeout, says "Reconnected" once back, and the chat message that failed is still there to resend."""

from __future__ import annotations

import time

from playwright.async_api import expect

from .conftest import needs_browser
from .helpers import SOCKET_URL, open_page, tid, until


class HalfOpenLink:
    """The page's websockets go through Playwright; `freeze()` makes the current ones carry nothing
    more either way while staying open. Connections opened afterwards work."""

    def __init__(self) -> None:
        self.links: list[dict[str, bool]] = []

    async def install(self, context) -> None:
        async def handler(ws) -> None:
            server = ws.connect_to_server()
            state = {"frozen": False}
            server.on_message(lambda m: None if state["frozen"] else ws.send(m))
            ws.on_message(lambda m: None if state["frozen"] else server.send(m))
            self.links.append(state)

        await context.route_web_socket(SOCKET_URL, handler)

    def freeze(self) -> None:
        for state in self.links:
            state["frozen"] = True


@needs_browser
async def test_a_dead_link_shows_reconnecting_at_once_and_keeps_the_failed_message(server, browser, problems):
    info, trainer = await server.live_session("Half-open")
    context = await browser.new_context()
    link = HalfOpenLink()
    await link.install(context)
    page = await open_page(context, info["join_url"], problems, "learner")
    await page.fill(tid("name-input"), "Lou")
    await page.click(tid("join-button"))
    await page.wait_for_selector(tid("status") + ":has-text('Live')")

    # Every label the banner shows, in order (a short "Reconnecting…" must not slip between polls).
    await page.evaluate(
        """() => { const el = document.querySelector('[data-testid=status]'); window.__seen = [];
                   new MutationObserver(() => window.__seen.push(el.textContent))
                     .observe(el, {subtree: true, childList: true, characterData: true}); }"""
    )
    link.freeze()
    await page.fill(tid("chat-input"), "are you there?")
    started = time.monotonic()
    await page.click(tid("chat-send"))
    # Unanswered for 3 s, then a probe unanswered for 2.5 s: the page gives the link up (socket.io's
    # own ping timeout would take 10-20 s, the command's 10 s).
    try:
        seen = "() => window.__seen.some(t => t.startsWith('Reconnecting'))"
        await page.wait_for_function(seen, timeout=8_000)
    except Exception:
        raise AssertionError(await page.evaluate("() => window.__seen")) from None
    assert time.monotonic() - started < 8
    await page.locator(".toast:has-text('connection was lost')").wait_for(timeout=5_000)
    assert await page.input_value(tid("chat-input")) == "are you there?"  # nothing typed is lost

    await page.wait_for_selector(tid("status") + ":has-text('Reconnected')", timeout=10_000)
    await page.wait_for_selector(tid("status") + ":has-text('Live')", timeout=10_000)
    assert trainer.view()["chat"] == []  # it really was not sent
    await page.click(tid("chat-send"))
    await until(page, "v.chat.length === 1 && v.chat[0].text === 'are you there?'")
    await expect(page.locator(tid("chat-input"))).to_have_value("")
    await trainer.wait_until(lambda: [m["text"] for m in trainer.view()["chat"]] == ["are you there?"])
    await context.close()
    assert problems.items == []
