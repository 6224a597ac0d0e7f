"""`make screenshots`: PNGs of the four pages from a scripted session, for the README.

python -m tests.web.screenshots docs/screenshots
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from playwright.async_api import async_playwright

from classroom.client import ClassroomClient
from tests.conftest import running_server
from tests.web.conftest import ARGS, CHROMIUM
from tests.web.helpers import tid, until


async def scripted(server) -> tuple[dict, ClassroomClient, list[ClassroomClient]]:
    info = await server.create_session("Intro to Python: generators")
    trainer = await server.client(info["trainer_url"], "Grace (trainer)")
    await trainer.request("session.start")
    names = ["Ada", "Linus", "Margaret", "Alan", "Barbara"]
    learners = [await server.client(info["join_url"], n) for n in names]
    await trainer.request("chat.send", text="Welcome! Today: generators and lazy evaluation.")
    await learners[0].request("chat.send", text="Hi everyone 👋")
    await learners[1].request("chat.send", text="Is yield like return?")
    await trainer.request("chat.send", text="Almost: it pauses instead of finishing.")
    await learners[2].request("reaction.send", emoji="👏")
    await learners[3].request("hand.raise")
    poll = await trainer.request(
        "poll.open",
        question="What does a generator return?",
        options=["A list", "An iterator", "None"],
        correct=[1],
    )
    for i, c in enumerate(learners):
        await c.request("poll.vote", poll_id=poll["id"], choices=[1 if i % 3 else 0])
    q = await learners[1].request("qa.ask", text="Can a generator be restarted?")
    await learners[4].request("qa.ask", text="When should I prefer a list?", anonymous=True)
    for c in learners[2:]:
        await c.request("qa.upvote", question_id=q["id"])
    await trainer.request("qa.answer", question_id=q["id"], text="No: create a new one from the function.")
    s = await trainer.request(
        "wb.stroke.begin", points=[120, 300, 160, 250, 210, 220, 260, 230], color="#1d4ed8", width=4
    )
    await trainer.request("wb.stroke.extend", element_id=s["id"], points=[320, 260, 360, 300, 420, 320])
    await trainer.request("wb.stroke.end", element_id=s["id"])
    await trainer.request(
        "wb.text", x=120, y=90, text="def count(): yield 1; yield 2", size=26, color="#111827"
    )
    await trainer.request("wb.shape", kind="rect", x1=100, y1=60, x2=560, y2=120, color="#dc2626", width=3)
    await trainer.request("wb.shape", kind="arrow", x1=560, y1=200, x2=680, y2=140, color="#059669", width=4)
    await trainer.request("session.mark", title="Generators in practice")
    return info, trainer, learners


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        async with running_server(Path(tmp)) as server, async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            info, trainer, learners = await scripted(server)
            desktop = {"viewport": {"width": 1366, "height": 900}}
            laptop = {"viewport": {"width": 1366, "height": 768}}  # the live pages fill the window

            page = await (await browser.new_context(**desktop)).new_page()
            await page.goto(server.base_url + "/")
            await page.fill(tid("admin-key"), "test-admin-key")
            await page.screenshot(path=str(out / "home.png"), full_page=True)

            page = await (await browser.new_context(**laptop)).new_page()
            await page.goto(info["trainer_url"])
            await page.fill(tid("trainer-name-input"), "Tess")
            await page.click(tid("trainer-name-submit"))
            await until(page, "v.chat.length >= 4")
            await page.wait_for_timeout(500)
            await page.screenshot(path=str(out / "trainer.png"), full_page=True)

            page = await (await browser.new_context(**laptop)).new_page()
            await page.goto(info["join_url"])
            await page.fill(tid("name-input"), "Katherine")
            await page.click(tid("join-button"))
            await until(page, "v.chat.length >= 4")
            await page.wait_for_timeout(500)
            await page.screenshot(path=str(out / "learner.png"), full_page=True)

            phone = await (
                await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
            ).new_page()
            await phone.goto(info["join_url"])
            await phone.fill(tid("name-input"), "Dorothy")
            await phone.click(tid("join-button"))
            await until(phone, "v.chat.length >= 4")
            # On a phone the board is a tab: a message meanwhile shows as a badge on Chat.
            await trainer.request("chat.send", text="Questions welcome any time.")
            await phone.wait_for_selector(tid("tab-chat") + " " + tid("tab-badge"))
            await phone.screenshot(path=str(out / "learner-phone.png"), full_page=True)

            for context in browser.contexts:
                await context.close()  # the live pages: the replay gets the machine to itself
            await trainer.request("poll.close", poll_id=(await trainer.wait_for("poll.opened"))["data"]["id"])
            await trainer.request("session.end")
            page = await (await browser.new_context(**desktop)).new_page()
            await page.goto(info["replay_url"])
            await page.wait_for_selector(tid("timeline"))
            async with server.http.get(
                f"{server.base_url}/api/recordings/{info['id']}", headers=server.admin
            ) as r:
                duration = (await r.json())["duration_ms"]
            await page.evaluate(f"() => window.classcast.seek({duration})")
            await page.wait_for_function(
                "() => document.querySelectorAll('[data-testid=chat-message]').length >= 4"
            )
            await page.wait_for_timeout(500)
            await page.screenshot(path=str(out / "replay.png"), full_page=True)
            await browser.close()
            for c in [trainer, *learners]:
                await c.close()
    print(f"screenshots written to {out}")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")))
