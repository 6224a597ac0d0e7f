"""The replay stays interactive in the browser: a viewer answers a poll as a quiz at its moment
and asks a question anchored there; the trainer answers it from the replay page; a later viewer
sees the answer at that moment. Deep links open at their time."""

from __future__ import annotations

from playwright.async_api import expect

from .conftest import needs_browser
from .helpers import open_page, tid


@needs_browser
async def test_replay_quiz_and_time_anchored_questions(server, browser, problems):
    info, trainer = await server.live_session("Replay quiz")
    ada = await server.client(info["join_url"], "Ada")
    await trainer.request("chat.send", text="Warm-up first")
    poll = await trainer.request("poll.open", question="2 + 2?", options=["3", "4", "5"], correct=[1])
    await ada.request("poll.vote", poll_id=poll["id"], choices=[1])
    await trainer.request("poll.close", poll_id=poll["id"])
    await trainer.request("poll.share", poll_id=poll["id"])
    await trainer.request("chat.send", text="Later on")
    await trainer.request("session.end")
    poll_t = (await trainer.wait_for("poll.opened"))["t"]

    # A viewer answers the quiz (wrong), then right, and asks a question at that moment.
    viewer_ctx = await browser.new_context()
    viewer = await open_page(viewer_ctx, info["replay_url"], problems, "viewer")
    await viewer.wait_for_selector(tid("timeline"))
    await viewer.evaluate(f"() => window.classcast.seek({poll_t})")
    quiz = viewer.locator(tid("quiz")).first
    await quiz.locator(tid("poll-choice") + '[value="0"]').check()
    await quiz.locator(tid("quiz-answer")).click()
    await quiz.locator(":text('Not quite')").wait_for()
    await quiz.locator(tid("poll-choice") + '[value="1"]').check()
    await quiz.locator(tid("quiz-answer")).click()
    await quiz.locator(":text('Correct!')").wait_for()
    # The class's shared result: Ada chose "4".
    await expect(quiz.locator(tid("quiz-live-result"))).to_contain_text(["0 (0%)", "1 (100%)", "0 (0%)"])
    await viewer.fill(tid("replay-question-input"), "Why not 5?")
    await viewer.click(tid("replay-ask"))
    await viewer.locator(tid("replay-question") + ":has-text('Why not 5?')").wait_for()

    # The trainer answers it from the replay page.
    trainer_replay = f"{server.base_url}/s/{info['id']}/replay?token={info['trainer_url'].split('token=')[1]}"
    trainer_ctx = await browser.new_context()
    tpage = await open_page(trainer_ctx, trainer_replay, problems, "trainer replay")
    await tpage.wait_for_selector(tid("timeline"))
    await tpage.evaluate(f"() => window.classcast.seek({poll_t})")
    question = tpage.locator(tid("replay-question") + ":has-text('Why not 5?')")
    await question.locator(tid("replay-answer-input")).fill("Because 2 + 2 is 4.")
    await question.locator(tid("replay-answer")).click()
    await tpage.locator(tid("replay-question") + ":has-text('Because 2 + 2 is 4.')").wait_for()
    # The learner-facing page offers no answer box.
    assert await viewer.locator(tid("replay-answer-input")).count() == 0

    # A later viewer opens a deep link at the poll's second and sees the question and its answer.
    later_ctx = await browser.new_context()
    seconds = poll_t // 1000
    later = await open_page(later_ctx, f"{info['replay_url']}&t={seconds}s", problems, "later viewer")
    await later.wait_for_selector(tid("timeline"))
    assert await later.evaluate("() => window.classcast.time()") == seconds * 1000
    await later.evaluate(f"() => window.classcast.seek({poll_t})")
    await later.locator(tid("replay-question") + ":has-text('Because 2 + 2 is 4.')").wait_for()
    # The chat exactly as it was at that moment.
    await expect(later.locator(tid("chat-message") + " .text")).to_have_text(["Warm-up first"])

    for ctx in (viewer_ctx, trainer_ctx, later_ctx):
        await ctx.close()
    assert problems.items == []
