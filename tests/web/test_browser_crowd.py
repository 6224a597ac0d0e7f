"""Large sessions and draining in real Chromium: a learner's page in a large session shows the
presence summary (people online, hands raised) and the reactions counted per second; a draining
server's page says so and reconnects by itself."""

from __future__ import annotations

from classroom.keys import HUB, SESSIONS
from classroom.operate import NODE

from .conftest import needs_browser
from .helpers import join, tid, until


@needs_browser
async def test_a_learner_in_a_large_session_sees_the_counts_and_counted_reactions(server, browser, problems):
    server.app[SESSIONS].crowd = 2  # large from the third learner on
    info, trainer = await server.live_session("Webinar")
    others = [await server.client(info["join_url"], f"L{i}") for i in range(3)]
    context, page = await join(browser, info["join_url"], "Ada", problems)
    await page.click(tid("tab-people"))
    summary = page.locator(tid("presence-summary"))
    await summary.filter(has_text="4 learners online · 0 hands raised").wait_for(timeout=10_000)
    # The page holds only the trainer and Ada: the others are counted, not listed.
    await until(page, "v.participants.length === 2")
    await others[0].request("hand.raise")
    await summary.filter(has_text="1 hand raised").wait_for(timeout=10_000)
    await others[1].request("reaction.send", emoji="🎉")
    await page.locator(tid("reaction-float"), has_text="×1").first.wait_for(timeout=10_000)
    # Everything else arrives as before.
    ack = await trainer.request("chat.send", text="welcome, everyone")
    await until(page, f"v.chat.some((m) => m.seq === {ack['seq']})")
    await context.close()
    assert not problems.items, problems.items


@needs_browser
async def test_a_draining_server_tells_the_page_which_reconnects(server, browser, problems):
    info, trainer = await server.live_session("Moving")
    context, page = await join(browser, info["join_url"], "Ada", problems)
    node = server.app[NODE]
    await node.drain(0, 2)  # what SIGTERM runs: the page is told, and its socket closed
    await page.locator(".toast:has-text('reconnecting you to another one')").wait_for(timeout=5000)
    # "Another node" at the same address: this one takes sockets again, and the page comes back.
    server.app[HUB].draining = False
    node.draining = False
    await page.wait_for_selector(tid("status") + ":has-text('Live')", timeout=15_000)
    trainer = await server.client(info["trainer_url"], "Tess Trainer")  # the test's client does not come back
    ack = await trainer.request("chat.send", text="you are back")
    await until(page, f"v.chat.some((m) => m.seq === {ack['seq']})")
    await context.close()
    # Refused reconnection attempts while draining are the only console noise allowed.
    assert all("socket.io" in p or "WebSocket" in p for p in problems.items), problems.items
