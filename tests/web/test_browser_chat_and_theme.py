"""What learners see around the chat, and the dark theme's contrast, in real Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from .conftest import needs_browser
from .helpers import jsq, open_console, open_page, tid, until


async def _learner(browser, url: str, name: str, problems, **context_args):
    context = await browser.new_context(**context_args)
    page = await open_page(context, url, problems, name)
    await page.fill(tid("name-input"), name)
    await page.click(tid("join-button"))
    await until(page, "true")
    return context, page


def _badges(page, pid: str):
    return page.locator(tid("participant") + f"[data-id={jsq(pid)}]" + " .badges")


@needs_browser
async def test_chat_opens_with_the_class_and_only_trainers_and_the_muted_see_it(server, browser, problems):
    info = await server.create_session("Chatty")
    trainer = await server.client(info["trainer_url"], "Tess")
    console_ctx = await browser.new_context()
    console = await open_console(console_ctx, info["trainer_url"], problems)
    ada_ctx, ada = await _learner(browser, info["join_url"], "Ada", problems)
    bob_ctx, bob = await _learner(browser, info["join_url"], "Bob", problems)

    # Before the start: the chat says when it opens, over the disabled Send.
    for page in (ada, console):
        await expect(page.locator(".chat-panel .empty")).to_have_text("Chat opens when the class starts.")
        await expect(page.locator(tid("chat-send"))).to_be_disabled()
    await trainer.request("session.start")
    for page in (ada, console):
        await expect(page.locator(".chat-panel .empty")).to_have_text("No messages yet. Say hello!")
        await expect(page.locator(tid("chat-send"))).to_be_enabled()

    bob_id = await bob.evaluate("() => window.classcast.you.id")
    await trainer.request("participant.mute", participant_id=bob_id)
    await until(ada, f"v.participants.find(p => p.id === {jsq(bob_id)}).muted")
    await expect(_badges(bob, bob_id)).to_contain_text("Muted")
    await expect(_badges(console, bob_id)).to_contain_text("Muted")
    await expect(_badges(ada, bob_id)).not_to_contain_text("Muted")
    for ctx in (console_ctx, ada_ctx, bob_ctx):
        await ctx.close()
    assert problems.items == []


def _luminance(rgb: str) -> float:
    channels = [int(c) / 255 for c in re.findall(r"\d+", rgb)[:3]]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


COLOURS = "el => { const s = getComputedStyle(el); return [s.color, s.backgroundColor]; }"


@needs_browser
async def test_primary_buttons_reach_aa_contrast_in_both_themes(server, browser, problems):
    info, _trainer = await server.live_session("Contrast")
    for scheme in ("dark", "light"):
        context = await browser.new_context(color_scheme=scheme)
        page = await open_page(context, info["join_url"], problems, scheme)
        join = page.locator(tid("join-button"))
        fg, bg = await join.evaluate(COLOURS)
        assert _contrast(fg, bg) >= 4.5, (scheme, fg, bg)
        await join.hover()
        await page.wait_for_timeout(300)  # past any transition
        fg, bg = await join.evaluate(COLOURS)
        assert _contrast(fg, bg) >= 4.5, (scheme, "hover", fg, bg)
        await page.fill(tid("name-input"), "Ada")
        await join.click()
        send = page.locator(tid("chat-send"))
        await expect(send).to_be_enabled()
        fg, bg = await send.evaluate(COLOURS)
        assert _contrast(fg, bg) >= 4.5, (scheme, "send", fg, bg)
        await context.close()
    assert problems.items == []


AT_BOTTOM = "el => el.scrollHeight - el.scrollTop - el.clientHeight < 2"


@needs_browser
async def test_new_messages_hint_while_scrolled_up_and_earlier_messages_still_load(server, browser, problems):
    info, trainer = await server.live_session("Busy chat")
    for i in range(130):  # more than a join snapshot holds (100)
        await trainer.request("chat.send", text=f"old {i}")
    context, page = await _learner(browser, info["join_url"], "Ada", problems)
    chat = page.locator(tid("chat-list"))
    hint = page.locator(tid("chat-new-hint"))
    await until(page, "v.chat.length === 100")
    await expect(hint).to_be_hidden()

    # Scrolling to the top loads the earlier messages: that is not news.
    await chat.evaluate("el => { el.scrollTop = 0; }")
    await until(page, "v.chat.length === 130")
    await expect(page.locator(tid("chat-message")).first.locator(".text")).to_have_text("old 0")
    await expect(hint).to_be_hidden()

    # A message arrives while scrolled up: the hint says so; it takes one to the bottom.
    await chat.evaluate("el => { el.scrollTop = 200; }")
    await trainer.request("chat.send", text="fresh 1")
    await until(page, "v.chat.length === 131")
    await expect(hint).to_be_visible()
    await expect(hint).to_have_text("New messages ↓")
    assert not await chat.evaluate(AT_BOTTOM)
    await hint.click()
    await expect(hint).to_be_hidden()
    assert await chat.evaluate(AT_BOTTOM)
    await expect(page.locator(tid("chat-message")).last).to_be_in_viewport()

    # Scrolling down by oneself hides it too; at the bottom, new messages just show.
    await chat.evaluate("el => { el.scrollTop = 200; }")
    await trainer.request("chat.send", text="fresh 2")
    await expect(hint).to_be_visible()
    await chat.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    await expect(hint).to_be_hidden()
    await trainer.request("chat.send", text="fresh 3")
    await until(page, "v.chat.length === 133")
    await page.wait_for_function(f"() => ({AT_BOTTOM})(document.querySelector('[data-testid=chat-list]'))")
    await expect(hint).to_be_hidden()
    await context.close()
    assert problems.items == []


# Every frame: the boxes of the reactions on screen (and their labels); any two that intersect.
WATCH_REACTIONS = """() => {
  const w = window.__reactions = {overlaps: [], most: 0, seen: 0, labels: 0, outside: 0};
  const boxes = (sel) => [...document.querySelectorAll(sel)].map(el => el.getBoundingClientRect());
  const cross = (a, b) => a.left < b.right - 0.5 && b.left < a.right - 0.5 &&
                          a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
  const seen = new WeakSet();
  const tick = () => {
    const items = [...document.querySelectorAll('[data-testid=reaction-float]')];
    for (const el of items) if (!seen.has(el)) { seen.add(el); w.seen++; }
    const all = boxes('[data-testid=reaction-float]');
    const labels = boxes('[data-testid=reaction-float] .who');
    w.most = Math.max(w.most, all.length);
    w.labels = Math.max(w.labels, labels.length);
    for (let i = 0; i < all.length; i++)
      for (let j = i + 1; j < all.length; j++)
        if (cross(all[i], all[j])) w.overlaps.push([all[i], all[j]].map(r => [r.left, r.top, r.bottom]));
    items.forEach((el) => {
      const who = el.querySelector('.who');
      if (!who) return;
      const a = who.getBoundingClientRect(), b = el.getBoundingClientRect();
      if (a.left < b.left - 0.5 || a.right > b.right + 0.5) w.outside++;
    });
    if (!w.stop) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


@needs_browser
@pytest.mark.parametrize("scheme", ["dark", "light"])
async def test_simultaneous_reactions_never_overlap(server, browser, problems, scheme):
    info, _trainer = await server.live_session("Applause")
    long_name = "Bartholomew Fitzgerald-Montgomery the Third of Somewhere"
    clapper = await server.client(info["trainer_url"], long_name)
    context, page = await _learner(
        browser,
        info["join_url"],
        "Ada",
        problems,
        color_scheme=scheme,
        viewport={"width": 1280, "height": 800},
    )
    await page.wait_for_selector(tid("status") + ":has-text('Live')")
    await page.evaluate(WATCH_REACTIONS)
    for emoji in ["👍", "👏", "❤️", "😂", "😮", "🎉", "🤔", "🙌"] * 2:  # trainers have no reaction limit
        await clapper.request("reaction.send", emoji=emoji)
    await page.wait_for_function("() => window.__reactions.seen === 16", timeout=20_000)
    await page.wait_for_function(
        "() => !document.querySelector('[data-testid=reaction-float]')", timeout=20_000
    )
    seen = await page.evaluate("() => { window.__reactions.stop = true; return window.__reactions; }")
    assert seen["most"] >= 8 and seen["labels"] >= 8, seen  # many were on screen together
    assert seen["overlaps"] == [], seen
    assert seen["outside"] == 0, seen  # a long name is cut to its reaction's width
    await context.close()
    assert problems.items == []
