"""A graceful stop in real Chromium: the page is told why its socket closes and says so."""

from __future__ import annotations

from .conftest import needs_browser
from .helpers import open_page, tid


@needs_browser
async def test_a_stopping_server_tells_the_page_why(server, browser, problems):
    info, _trainer = await server.live_session("Stopping")
    context = await browser.new_context()
    page = await open_page(context, info["join_url"], problems, "learner")
    await page.fill(tid("name-input"), "Ada")
    await page.click(tid("join-button"))
    await page.wait_for_selector(tid("status") + ":has-text('Live')")
    await server.app.shutdown()  # what SIGTERM runs first (on_shutdown), before the cleanup
    await page.locator(".toast:has-text('The server is restarting')").wait_for(timeout=5000)
    await context.close()
    # The page's failed reconnection attempts are the only console noise allowed.
    assert all("socket.io" in p or "WebSocket" in p for p in problems.items), problems.items
