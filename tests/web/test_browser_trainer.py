"""The trainer console in real Chromium: trainers give a name, so co-trainers can be told apart, and
one button lowers every raised hand."""

from __future__ import annotations

from playwright.async_api import expect

from .conftest import needs_browser
from .helpers import open_console, tid, until


@needs_browser
async def test_co_trainers_have_names_and_lower_all_hands(server, browser, problems):
    info = await server.create_session("Two trainers")
    tess_ctx = await browser.new_context()
    tess = await open_console(tess_ctx, info["trainer_url"], problems, "Tess")
    theo_ctx = await browser.new_context()
    theo = await open_console(theo_ctx, info["trainer_url"], problems, "Theo", label="theo")
    for page in (tess, theo):
        trainers = "v.participants.filter(p => p.role === 'trainer').map(p => p.name).sort().join()"
        await until(page, f"{trainers} === 'Tess,Theo'")
    assert await theo.evaluate("() => window.classcast.you.name") == "Theo"

    # The name is offered again on this browser for the next class.
    other = await server.create_session("Next class")
    again = await tess_ctx.new_page()
    await again.goto(other["trainer_url"])
    await expect(again.locator(tid("trainer-name-input"))).to_have_value("Tess")
    await again.close()

    await tess.click(tid("session-start"))
    await until(tess, "v.status === 'live'")
    learners = [await server.client(info["join_url"], name) for name in ("Ada", "Bob", "Cy")]
    for learner in learners[:2]:
        await learner.request("hand.raise")
    await until(tess, "v.participants.filter(p => p.hand).length === 2")
    button = tess.locator(tid("lower-all-hands"))
    await expect(button).to_be_visible()
    await button.click()
    await until(theo, "v.participants.every(p => !p.hand)")
    await expect(button).to_be_hidden()
    cy = learners[2]
    await cy.wait_until(lambda: sum(e["type"] == "hand.lowered" for e in cy.events) == 2)
    lowered = [e for e in cy.events if e["type"] == "hand.lowered"]
    tess_id = await tess.evaluate("() => window.classcast.you.id")
    assert len(lowered) == 2 and {e["actor"] for e in lowered} == {tess_id}
    for ctx in (tess_ctx, theo_ctx):
        await ctx.close()
    assert problems.items == []
