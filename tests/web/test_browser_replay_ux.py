"""The replay reads like a recording of a class: a poll's results stay hidden until the viewer
answers it (or asks to see them), chapters name pages by number, each thing appears once on the
timeline with a role, and a legend says in words what each marker stands for."""

from __future__ import annotations

import asyncio
import re

from playwright.async_api import expect

from .conftest import needs_browser
from .helpers import open_page, tid


async def tick() -> None:
    """Let the session clock move on, so the next event gets a later t."""
    await asyncio.sleep(0.015)


async def _recorded(server):
    """A short class: a chapter, two shared quiz polls, a new page and back, a question."""
    info, trainer = await server.live_session("Replay UX")
    ada = await server.client(info["join_url"], "Ada")
    await trainer.request("session.mark", title="Intro")
    polls = {}
    for question, options, vote in (("2 + 2?", ["3", "4", "5"], 1), ("3 × 3?", ["6", "9"], 1)):
        await tick()
        poll = await trainer.request("poll.open", question=question, options=options, correct=[1])
        await ada.request("poll.vote", poll_id=poll["id"], choices=[vote])
        await tick()
        await trainer.request("poll.close", poll_id=poll["id"])
        await trainer.request("poll.share", poll_id=poll["id"])
        opened = await trainer.wait_for("poll.opened", lambda e, i=poll["id"]: e["data"]["id"] == i)
        polls[question] = {"id": poll["id"], "t": opened["t"]}
    await tick()
    page = await trainer.request("wb.page.add")
    await tick()
    await trainer.request("wb.page.switch", page_id="w1")
    await ada.request("qa.ask", text="Why 9?")
    await tick()
    await trainer.request("session.end")
    await ada.wait_for("session.ended")
    return info, polls, page["id"]


@needs_browser
async def test_replay_chapters_markers_and_legend(server, browser, problems):
    info, polls, page_id = await _recorded(server)
    ctx = await browser.new_context()
    viewer = await open_page(ctx, info["replay_url"], problems, "viewer")
    await viewer.wait_for_selector(tid("timeline"))

    # Chapters: the trainer's mark and the page changes, pages by their number, no polls.
    chapters = viewer.locator(tid("chapter"))
    await expect(chapters.locator(".chapter-title")).to_have_text(
        ["Intro", "Whiteboard page 2", "Whiteboard page 1"]
    )
    await expect(chapters.locator(".kind")).to_have_text(["Chapter", "Page", "Page"], ignore_case=True)
    assert page_id not in await viewer.locator(".chapters-panel").inner_text()

    # The timeline: each thing once, with its role; a poll is a poll marker, never a chapter too.
    markers = viewer.locator(tid("marker"))
    await expect(markers).to_have_count(6)
    kinds = await markers.evaluate_all(
        "ms => ms.map(m => [m.dataset.kind, +m.dataset.t, m.getAttribute('aria-label')])"
    )
    assert sorted(k for k, _, _ in kinds) == ["mark", "page", "page", "poll", "poll", "question"]
    for poll in polls.values():
        assert [k for k, t, _ in kinds if t == poll["t"]] == ["poll"]
    labels = {k: label for k, _, label in kinds}
    assert labels["mark"].startswith("Chapter: Intro, at ")
    assert labels["poll"].startswith("Poll: ")
    assert labels["question"].startswith("Question: Why 9?")
    assert re.match(r"Page change: Whiteboard page \d, at ", labels["page"])

    # The legend names, in words, every kind of marker the timeline shows.
    legend = viewer.locator(tid("legend-item"))
    await expect(legend).to_have_text(
        ["Chapter marked by the trainer", "Whiteboard page change", "Poll opened", "Question asked"]
    )
    assert await legend.evaluate_all("ls => ls.map(l => l.dataset.kind)") == [
        "mark",
        "page",
        "poll",
        "question",
    ]
    await expect(viewer.locator(tid("marker-legend"))).to_have_attribute("aria-label", "Timeline markers")

    # A poll marker seeks to the poll.
    first = polls["2 + 2?"]
    await markers.and_(viewer.locator(f'[data-t="{first["t"]}"]')).click()
    assert await viewer.evaluate("() => window.classcast.time()") == first["t"]
    await ctx.close()
    assert problems.items == []


@needs_browser
async def test_replay_poll_results_stay_hidden_until_answered_or_asked_for(server, browser, problems):
    info, polls, _ = await _recorded(server)
    ctx = await browser.new_context()
    viewer = await open_page(ctx, info["replay_url"], problems, "viewer")
    await viewer.wait_for_selector(tid("timeline"))
    first, second = polls["2 + 2?"], polls["3 × 3?"]

    # While the poll is open, nothing was shared: nothing to hide, nothing to reveal.
    await viewer.evaluate(f"() => window.classcast.seek({first['t']})")
    card = viewer.locator(tid("poll") + f'[data-id="{first["id"]}"]')
    await expect(card.locator(tid("quiz"))).to_be_visible()
    await expect(card.locator(tid("quiz-reveal"))).to_be_hidden()

    # At the end both polls were shared, yet no results and no right answer show above the quiz.
    await viewer.evaluate("() => window.classcast.seek(1e12)")
    for poll in (first, second):
        c = viewer.locator(tid("poll") + f'[data-id="{poll["id"]}"]')
        await expect(c.locator(tid("quiz-hidden-note"))).to_be_visible()
        await expect(c.locator(tid("quiz-reveal"))).to_have_text("Show results")
        await expect(c.locator(tid("poll-result"))).to_have_count(0)
        await expect(c.locator(tid("quiz-live-result"))).to_have_count(0)
        await expect(c).not_to_contain_text("✓", use_inner_text=True)

    # Answering (wrong) shows the answer, the verdict, the right answer and the class's results,
    # once: in the quiz box, not again above it.
    await card.locator(tid("poll-choice") + '[value="0"]').check()
    await card.locator(tid("quiz-answer")).click()
    await expect(card.locator(tid("quiz-your-answer"))).to_have_text("Your answer: 3")
    await expect(card).to_contain_text("Not quite")
    await expect(card).to_contain_text("Correct answer: 4")
    rows = card.locator(tid("quiz-live-result"))
    await expect(rows).to_have_count(3)
    await expect(rows.nth(0)).to_contain_text("your answer")
    await expect(rows.nth(1)).to_contain_text("✓ correct")
    await expect(rows.nth(1)).to_contain_text("1 (100%)")
    await expect(card.locator(tid("poll-result"))).to_have_count(0)
    await expect(card.locator(tid("quiz-reveal"))).to_be_hidden()
    await expect(card.locator(tid("quiz-hidden-note"))).to_be_hidden()

    # "Show results" reveals the other poll's results as they were, correct mark included, without
    # answering; it hides them again on a second press.
    other = viewer.locator(tid("poll") + f'[data-id="{second["id"]}"]')
    reveal = other.locator(tid("quiz-reveal"))
    await reveal.click()
    await expect(reveal).to_have_attribute("aria-pressed", "true")
    await expect(reveal).to_have_text("Hide results")
    results = other.locator(tid("poll-result"))
    await expect(results).to_have_count(2)
    await expect(results.nth(1)).to_contain_text("✓ correct")
    await expect(other.locator(tid("quiz-hidden-note"))).to_be_hidden()
    await reveal.click()
    await expect(results.first).to_be_hidden()
    await expect(other).not_to_contain_text("✓", use_inner_text=True)

    # The answer is kept: the same viewer reloading the replay sees it, the other still hidden.
    await viewer.reload()
    again = viewer
    await again.wait_for_selector(tid("timeline"))
    await again.evaluate("() => window.classcast.seek(1e12)")
    card2 = again.locator(tid("poll") + f'[data-id="{first["id"]}"]')
    await expect(card2.locator(tid("quiz-your-answer"))).to_have_text("Your answer: 3")
    await expect(card2.locator(tid("quiz-live-result"))).to_have_count(3)
    other2 = again.locator(tid("poll") + f'[data-id="{second["id"]}"]')
    await expect(other2.locator(tid("quiz-hidden-note"))).to_be_visible()
    await expect(other2).not_to_contain_text("✓", use_inner_text=True)
    await ctx.close()
    assert problems.items == []


PAGE_TEXTS = """() => {
  const b = window.classcast.view().board;
  const page = b.pages.find((p) => p.id === b.current);
  return [b.current, (page?.elements ?? []).map((e) => e.text)];
}"""


@needs_browser
async def test_replay_plays_from_the_bounded_state_and_fetches_what_it_lacks(server, browser, problems):
    info, trainer = await server.live_session("Bounded replay")
    await trainer.request("wb.text", x=40, y=30, text="on page one", size=18)
    await trainer.request("chat.send", text="first page done")
    await tick()
    page = await trainer.request("wb.page.add")
    drawn = await trainer.request("wb.text", x=40, y=30, text="on page two", size=18)
    await tick()
    back = await trainer.request("wb.page.switch", page_id="w1")
    await tick()
    await trainer.request("chat.send", text="back on page one")
    # More polls than the bounded state carries (20 recent and the older open ones): the first
    # stays open, the others close.
    for i in range(25):
        poll = await trainer.request("poll.open", question=f"Poll {i + 1}?", options=["yes", "no"])
        if i:
            await trainer.request("poll.close", poll_id=poll["id"])
    await trainer.request("session.end")
    t_of = {e["seq"]: e["t"] for e in trainer.events}
    t_two, t_back = t_of[drawn["seq"]], t_of[back["seq"]]

    ctx = await browser.new_context()
    urls: list[str] = []
    ctx.on("request", lambda r: urls.append(r.url))
    viewer = await open_page(ctx, info["replay_url"], problems, "viewer")
    await viewer.wait_for_selector(tid("timeline"))

    # Seeking back to page two's drawing loads the state there, which carries that page only; a
    # seek on to the switch back folds the switch and loads the first page, which the board then
    # shows with its text.
    await viewer.evaluate("() => window.classcast.seek(1e12)")
    await expect(viewer.locator(tid("chat-message"))).to_have_count(2)
    await viewer.evaluate(f"() => window.classcast.seek({t_two})")
    await viewer.wait_for_function(f"() => ({PAGE_TEXTS})()[0] === {page['id']!r}")
    assert await viewer.evaluate(PAGE_TEXTS) == [page["id"], ["on page two"]]
    await viewer.evaluate(f"() => window.classcast.seek({t_back})")
    await viewer.wait_for_function(f'() => JSON.stringify(({PAGE_TEXTS})()) === \'["w1",["on page one"]]\'')
    await expect(viewer.locator(tid("chat-message") + " .text")).to_have_text(["first page done"])

    # The player asked for states at times and windows of events, never for every event.
    assert any("/state?t=" in u for u in urls)
    events = [u for u in urls if "/events" in u]
    assert events and all("from=" in u and "to=" in u for u in events), events

    # Only the search reads the whole recording, on its first use.
    await viewer.fill(tid("search-input"), "back on")
    await expect(viewer.locator(tid("search-result"))).to_have_count(1)
    assert any(u.split("?")[0].endswith("/events") and "from=" not in u for u in urls)
    await viewer.locator(tid("search-result")).click()
    await expect(viewer.locator(tid("chat-message") + " .text")).to_have_text(
        ["first page done", "back on page one"]
    )

    # A link to the end loads the state there, which carries the 20 recent polls and the older open
    # one; the polls panel pages in the rest: every poll, newest first.
    end = await open_page(ctx, info["replay_url"] + "&t=99h", problems, "at the end")
    newest_first = [f"Poll {i}?" for i in range(25, 0, -1)]
    await expect(end.locator(tid("poll") + " .poll-question")).to_have_text(newest_first)
    await ctx.close()
    assert problems.items == []
