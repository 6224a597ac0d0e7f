"""A trainer and three learners run a whole session in real Chromium, then the replay."""

from __future__ import annotations

import asyncio

from playwright.async_api import expect

from .conftest import needs_browser
from .helpers import Network, jsq, open_console, open_page, tid, until, view

XSS = "<img src=x onerror=alert(1)>"

# Every visible control has an accessible name: its text, aria-label, aria-labelledby, a <label>,
# a title, or (for inputs) a placeholder.
UNLABELLED = """() => [...document.querySelectorAll('button, input, select, textarea')]
  .filter(el => el.offsetParent !== null && el.type !== 'hidden')
  .filter(el => !((el.innerText || '').trim() || el.getAttribute('aria-label') ||
                  el.getAttribute('aria-labelledby') || el.title || el.placeholder ||
                  (el.id && document.querySelector(`label[for="${el.id}"]`)) || el.closest('label')))
  .map(el => el.outerHTML.slice(0, 120))"""


async def join(browser, server_url: str, join_url: str, name: str, problems, **context_args):
    context = await browser.new_context(**context_args)
    page = await open_page(context, join_url, problems, name)
    await page.fill(tid("name-input"), name)
    await page.click(tid("join-button"))
    await until(page, "window.classcast.you !== null && window.classcast.you !== undefined")
    return context, page


async def send_chat(page, text: str) -> None:
    await page.fill(tid("chat-input"), text)
    await page.click(tid("chat-send"))


@needs_browser
async def test_whole_session_in_real_browsers(server, browser, problems):
    info = await server.create_session("Browser class")
    trainer_ctx = await browser.new_context(viewport={"width": 1280, "height": 860})
    trainer = await open_console(trainer_ctx, info["trainer_url"], problems)
    await trainer.wait_for_selector(tid("session-start"))

    ada_ctx, ada = await join(browser, server.base_url, info["join_url"], "Ada", problems)
    bob_ctx, bob = await join(browser, server.base_url, info["join_url"], "Bob", problems)
    cy_ctx, cy = await join(
        browser,
        server.base_url,
        info["join_url"],
        "Cy",
        problems,
        viewport={"width": 360, "height": 740},
        is_mobile=True,
        has_touch=True,
    )
    learners = [ada, bob, cy]
    await ada.wait_for_selector(tid("status") + ":has-text('Waiting')")

    await trainer.click(tid("session-start"))
    for page in learners:
        await page.wait_for_selector(tid("status") + ":has-text('Live')")
    await until(trainer, "v.participants.filter(p => p.online).length === 4")
    await trainer.click(tid("tab-people"))  # the console's side panel is tabbed
    await trainer.wait_for_selector(tid("participant-count") + ":has-text('4')")

    # Chat, including markup that must show as text.
    await send_chat(ada, "Hello from Ada")
    await send_chat(bob, XSS)
    for page in [trainer, *learners]:
        await until(page, "v.chat.length === 2")
        await expect(page.locator(tid("chat-message") + " .text")).to_have_text(["Hello from Ada", XSS])
        assert await page.locator(tid("chat-list") + " img").count() == 0

    # A poll: learners vote, the trainer sees live counts, shares, learners see the results.
    for page in (trainer, *learners):
        await page.click(tid("tab-polls"))
    await trainer.fill(tid("poll-question"), "Best language?")
    options = trainer.locator(tid("poll-option"))
    await options.nth(0).fill("Python")
    await options.nth(1).fill("TypeScript")
    await trainer.click(tid("poll-open"))
    for page, choice in ((ada, 0), (bob, 0), (cy, 1)):
        card = page.locator(tid("poll")).first
        await card.locator(tid("poll-choice") + f'[value="{choice}"]').check()
        await card.locator(tid("poll-vote")).click()
        await until(page, f"v.polls[0].my_choices && v.polls[0].my_choices[0] === {choice}")
    await until(trainer, "JSON.stringify(v.polls[0].counts) === '[2,1]'")
    poll_t = (await view(trainer))["polls"][0]["t"]
    await trainer.locator(tid("poll")).first.locator(tid("poll-close")).click()
    await trainer.locator(tid("poll")).first.locator(tid("poll-share")).click()
    for page in learners:
        await until(page, "v.polls[0].shared && JSON.stringify(v.polls[0].counts) === '[2,1]'")
        await expect(page.locator(tid("poll-result"))).to_contain_text(["2 (67%)", "1 (33%)"])

    # Q&A: asked, upvoted, answered.
    for page in (trainer, ada, bob):
        await page.click(tid("tab-qa"))
    await ada.fill(tid("qa-input"), "What is a generator?")
    await ada.click(tid("qa-ask"))
    await until(bob, "v.questions.length === 1")
    await bob.locator(tid("question")).first.locator(tid("qa-upvote")).click()
    await until(trainer, "v.questions[0].votes === 1")
    question = trainer.locator(tid("question")).first
    await question.locator(tid("qa-answer-input")).fill("A lazy iterator")
    await question.locator(tid("qa-answer")).click()
    await ada.wait_for_selector(tid("qa-answer-text") + ":has-text('A lazy iterator')")

    # A stroke drawn by the trainer appears on every learner's board.
    await trainer.click(tid("tool", '[data-tool="pen"]'))
    box = await trainer.locator(tid("board")).bounding_box()
    x, y = box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.3
    await trainer.mouse.move(x, y)
    await trainer.mouse.down()
    for i in range(1, 12):
        await trainer.mouse.move(x + i * 12, y + i * 6)
        await asyncio.sleep(0.02)
    await trainer.mouse.up()
    stroke = (
        "v.board.pages.find(p => p.id === v.board.current).elements"
        ".some(e => e.kind === 'stroke' && e.done && e.points.length >= 8)"
    )
    for page in learners:
        await until(page, stroke)

    # A hand raised, seen by the trainer, lowered by the trainer.
    await bob.click(tid("hand-raise"))
    await until(trainer, "v.participants.some(p => p.name === 'Bob' && p.hand)")
    bob_id = await bob.evaluate("() => window.classcast.you.id")
    await trainer.click(tid("tab-people"))
    await trainer.locator(tid("participant") + f"[data-id={jsq(bob_id)}]").locator(tid("lower-hand")).click()
    await until(bob, "!v.participants.find(p => p.name === 'Bob').hand")

    # Keyboard and screen-reader users can tell every control apart.
    for page in (trainer, ada, cy):
        assert await page.evaluate(UNLABELLED) == []

    # The end: everyone sees it, with the way to the replay.
    await trainer.click(tid("session-end"))
    await trainer.click(tid("dialog-confirm"))
    for page in learners:
        await page.wait_for_selector(tid("status") + ":has-text('ended')")
        await page.wait_for_selector(tid("replay-link"))

    # The replay, seeking to the poll's moment, shows the chat up to it.
    replay_ctx = await browser.new_context()
    replay = await open_page(replay_ctx, info["replay_url"], problems, "replay")
    await replay.wait_for_selector(tid("timeline"))
    marker = replay.locator(tid("marker") + f'[data-t="{poll_t}"]').first
    await marker.click()
    await replay.wait_for_function(f"() => window.classcast.time() === {poll_t}")
    await expect(replay.locator(tid("chat-message") + " .text")).to_have_text(["Hello from Ada", XSS])
    replay_view = await view(replay)
    assert [p["question"] for p in replay_view["polls"]] == ["Best language?"]
    assert replay_view["polls"][0]["status"] == "open"  # as it was at that moment
    assert await replay.evaluate(UNLABELLED) == []

    for ctx in (trainer_ctx, ada_ctx, bob_ctx, cy_ctx, replay_ctx):
        await ctx.close()
    assert problems.items == []


@needs_browser
async def test_network_drop_resumes_without_loss_or_duplicates(server, browser, problems):
    info, trainer = await server.live_session("Flaky wifi")
    context = await browser.new_context()
    network = Network(context)
    await network.install()
    page = await open_page(context, info["join_url"], problems, "learner")
    await page.fill(tid("name-input"), "Lou")
    await page.click(tid("join-button"))
    await page.wait_for_selector(tid("status") + ":has-text('Live')")
    await page.fill(tid("chat-input"), "a draft I am still writing")
    await trainer.request("chat.send", text="before")
    await until(page, "v.chat.length === 1")

    await network.drop()
    await page.wait_for_selector(tid("status") + ":has-text('Reconnecting')")
    for i in range(3):
        await trainer.request("chat.send", text=f"while away {i}")
    await network.restore()
    await page.wait_for_selector(tid("status") + ":has-text('Live')", timeout=20_000)
    await trainer.request("chat.send", text="after")
    await until(page, "v.chat.length === 5")

    shown = ["before", "while away 0", "while away 1", "while away 2", "after"]
    await expect(page.locator(tid("chat-message") + " .text")).to_have_text(shown)
    assert await page.input_value(tid("chat-input")) == "a draft I am still writing"
    people = (await view(page))["participants"]
    assert [p["name"] for p in people].count("Lou") == 1
    await context.close()
    assert problems.items == []
