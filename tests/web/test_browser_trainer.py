"""The trainer console in real Chromium: trainers give a name, so co-trainers can be told apart, and
one button lowers every raised hand."""

from __future__ import annotations

from playwright.async_api import expect

from .conftest import needs_browser
from .helpers import open_console, open_page, tid, until, view


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


@needs_browser
async def test_a_poll_prepared_before_the_start_is_opened_once_the_class_runs(server, browser, problems):
    info = await server.create_session("Prepared")
    console_ctx = await browser.new_context(viewport={"width": 1280, "height": 860})
    console = await open_console(console_ctx, info["trainer_url"], problems)
    learner_ctx = await browser.new_context()
    learner = await open_page(learner_ctx, info["join_url"], problems, "Ada")
    await learner.fill(tid("name-input"), "Ada")
    await learner.click(tid("join-button"))
    await learner.wait_for_selector(tid("status") + ":has-text('Waiting')")

    # Before the start: the poll can only be saved for later, and learners learn nothing of it.
    await console.click(tid("tab-polls"))
    await expect(console.locator(tid("poll-open"))).to_be_disabled()
    await console.fill(tid("poll-question"), "Secret warm-up?")
    options = console.locator(tid("poll-option"))
    await options.nth(0).fill("Ready")
    await options.nth(1).fill("Not yet")
    await console.click(tid("poll-save-draft"))
    draft = console.locator(tid("poll-draft"))
    await expect(draft).to_have_count(1)
    await expect(draft.locator(".draft-question")).to_have_text("Secret warm-up?")
    await expect(draft.locator(tid("poll-draft-open"))).to_be_disabled()
    await until(console, "v.drafts.length === 1 && v.polls.length === 0")
    # A learner joining now gets a snapshot taken after the draft (events hide it the same way).
    await learner.reload()
    await learner.wait_for_selector(tid("status") + ":has-text('Waiting')")
    await until(learner, f"v.seq >= {(await view(console))['seq']}")
    seen = await view(learner)
    assert seen["drafts"] == [] and seen["polls"] == []
    assert "Secret warm-up?" not in await learner.content()

    # Started: the trainer opens it, the learner gets it and votes.
    await console.click(tid("session-start"))
    await learner.wait_for_selector(tid("status") + ":has-text('Live')")
    await learner.click(tid("tab-polls"))
    await draft.locator(tid("poll-draft-open")).click()
    await expect(draft).to_have_count(0)
    card = learner.locator(tid("poll")).first
    await expect(card.locator(".poll-question")).to_have_text("Secret warm-up?")
    await card.locator(tid("poll-choice") + '[value="0"]').check()
    await card.locator(tid("poll-vote")).click()
    await until(console, "JSON.stringify(v.polls[0].counts) === '[1,0]'")
    for ctx in (console_ctx, learner_ctx):
        await ctx.close()
    assert problems.items == []
