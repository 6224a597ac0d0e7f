"""What happens out of a learner's sight comes to them: a new poll, an answer to their question, their
hand lowered, as a prompt in view that is announced and brings the panel into view (real Chromium)."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from .conftest import needs_browser
from .helpers import Network, open_page, tid, until

XSS = "Tabs or spaces? <img src=x onerror=alert(1)>"
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}

# Records what the prompts ask the page's layout to reveal.
LISTEN = """() => { window.__reveals = [];
  document.addEventListener('classcast:reveal', (e) => window.__reveals.push(e.detail.panel)); }"""
# Two frames: whatever an update would have rendered is on screen by then.
FRAMES = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"


async def _learner(browser, url: str, name: str, problems, device: dict):
    context = await browser.new_context(**device)
    page = await open_page(context, url, problems, name)
    await page.fill(tid("name-input"), name)
    await page.click(tid("join-button"))
    await page.wait_for_selector(tid("status") + ":has-text('Live')")
    await page.evaluate(LISTEN)
    return context, page


@needs_browser
@pytest.mark.parametrize("device", [DESKTOP, PHONE], ids=["desktop", "phone"])
async def test_a_new_poll_answer_and_lowered_hand_come_into_view(server, browser, problems, device):
    info, trainer = await server.live_session("Prompted")
    context, page = await _learner(browser, info["join_url"], "Ada", problems, device)
    prompt = page.locator(tid("prompt"))

    # A new poll: a prompt in view, its question as text, announced politely.
    poll = await trainer.request("poll.open", question=XSS, options=["tabs", "spaces"])
    await expect(prompt).to_have_count(1)
    await expect(prompt).to_be_in_viewport()
    await expect(prompt.locator(tid("prompt-text"))).to_have_text(f"New poll: {XSS}")
    await expect(page.locator(tid("prompt-announcer"))).to_have_text(f"New poll: {XSS}")
    assert await page.locator(tid("prompt-announcer")).get_attribute("aria-live") == "polite"
    assert await page.locator(tid("prompts") + " img").count() == 0
    await prompt.locator(tid("prompt-action")).click()
    card = page.locator(tid("poll") + f'[data-id="{poll["id"]}"]')
    await expect(card).to_be_in_viewport()
    await expect(prompt).to_have_count(0)
    assert await page.evaluate("() => window.__reveals") == ["polls"]
    await card.locator(tid("poll-choice") + '[value="1"]').check()
    await card.locator(tid("poll-vote")).click()
    await until(page, "v.polls[0].my_choices && v.polls[0].my_choices[0] === 1")

    # My question answered (asked from the Q&A tab).
    await page.click(tid("tab-qa"))
    await page.fill(tid("qa-input"), "Why spaces?")
    await page.click(tid("qa-ask"))
    await until(page, "v.questions.length === 1")
    await page.evaluate("() => window.scrollTo(0, 0)")
    question = (await trainer.wait_for("qa.asked"))["data"]["id"]
    await trainer.request("qa.answer", question_id=question, text="Alignment.")
    await expect(prompt.locator(tid("prompt-text"))).to_have_text("The trainer answered your question")
    await expect(prompt).to_be_in_viewport()
    await prompt.locator(tid("prompt-action")).click()
    await expect(page.locator(tid("question") + f'[data-id="{question}"]')).to_be_in_viewport()
    assert await page.evaluate("() => window.__reveals") == ["polls", "qa"]

    # My hand lowered by the trainer; the prompt can be dismissed.
    if device is PHONE:  # the hand is raised from the board's tab on a phone
        await page.click(tid("tab-board"))
    await page.click(tid("hand-raise"))
    await until(page, "v.participants.find(p => p.name === 'Ada').hand")
    ada = page.evaluate("() => window.classcast.you.id")
    await trainer.request("hand.lower", participant_id=await ada)
    await expect(prompt.locator(tid("prompt-text"))).to_have_text("Your hand was lowered")
    await expect(prompt).to_be_in_viewport()
    await expect(page.locator(tid("prompt-announcer"))).to_have_text("Your hand was lowered")
    await prompt.locator(tid("prompt-dismiss")).click()
    await expect(prompt).to_have_count(0)

    # Lowering one's own hand, and a poll someone else answers: nothing to tell.
    if device is PHONE:  # the hand is raised from the board's tab on a phone
        await page.click(tid("tab-board"))
    await page.click(tid("hand-raise"))
    await until(page, "v.participants.find(p => p.name === 'Ada').hand")
    await page.click(tid("hand-raise"))
    await until(page, "!v.participants.find(p => p.name === 'Ada').hand")
    await page.evaluate(FRAMES)
    await expect(prompt).to_have_count(0)
    await context.close()
    assert problems.items == []


@needs_browser
async def test_the_join_snapshot_and_earlier_polls_prompt_nothing(server, browser, problems):
    info, trainer = await server.live_session("Quiet join")
    for i in range(25):  # more than a snapshot holds: the older ones come as history pages
        await trainer.request("poll.open", question=f"Old poll {i}", options=["a", "b"])
    context, page = await _learner(browser, info["join_url"], "Bob", problems, DESKTOP)
    await until(page, "v.polls.length >= 20")
    await page.evaluate(FRAMES)
    await expect(page.locator(tid("prompt"))).to_have_count(0)
    await page.reload()
    await page.wait_for_selector(tid("status") + ":has-text('Live')")
    await until(page, "v.polls.length >= 20")
    await page.evaluate(FRAMES)
    await expect(page.locator(tid("prompt"))).to_have_count(0)
    # A poll opened now does prompt: the page was listening all along.
    await trainer.request("poll.open", question="Fresh one", options=["a", "b"])
    await expect(page.locator(tid("prompt-text"))).to_have_text("New poll: Fresh one")
    await context.close()
    assert problems.items == []


@needs_browser
async def test_a_poll_opened_while_offline_prompts_after_the_resume(server, browser, problems):
    info, trainer = await server.live_session("Flaky")
    context = await browser.new_context(**DESKTOP)
    network = Network(context)
    await network.install()
    page = await open_page(context, info["join_url"], problems, "Cy")
    await page.fill(tid("name-input"), "Cy")
    await page.click(tid("join-button"))
    await page.wait_for_selector(tid("status") + ":has-text('Live')")
    await network.drop()
    await page.wait_for_selector(tid("status") + ":has-text('Reconnecting')")
    await trainer.request("poll.open", question="While you were away", options=["a", "b"])
    await network.restore()
    # However long socket.io's back-off keeps it away, the resume brings the poll, and its prompt.
    prompt = page.locator(tid("prompt-text"))
    await expect(prompt).to_have_text("New poll: While you were away", timeout=45_000)
    await until(page, "v.polls.length === 1")
    await context.close()
    assert problems.items == []
