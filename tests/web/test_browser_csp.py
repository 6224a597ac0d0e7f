"""The Content Security Policy in real Chromium: every page (home, trainer, learner, replay) is
served with it and works under it, drawing, chatting and connecting its socket, with no violation
reported; an inline script is refused, so the check is live."""

from __future__ import annotations

from classroom.http import CSP

from ..conftest import ADMIN_KEY
from .conftest import needs_browser
from .helpers import open_page, tid, until

# Collects every violation the page reports, from before its first script runs.
WATCH = """window.__csp = [];
document.addEventListener('securitypolicyviolation',
  e => window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));"""


async def _page(browser, url: str, problems, label: str):
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    await context.add_init_script(WATCH)
    headers: dict[str, str] = {}

    def on_response(response) -> None:
        if response.url == url:
            headers.update(response.headers)

    context.on("response", on_response)
    page = await open_page(context, url, problems, label)
    return context, page, headers


async def _draw(page) -> None:
    box = await page.locator(tid("board")).bounding_box()
    x, y = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
    await page.mouse.move(x, y)
    await page.mouse.down()
    await page.mouse.move(x + 80, y + 50, steps=5)
    await page.mouse.up()


@needs_browser
async def test_every_page_runs_under_its_csp(server, browser, problems):
    info = await server.create_session("CSP class")
    pages = []

    home_ctx, home, home_headers = await _page(browser, server.base_url + "/", problems, "home")
    await home.fill(tid("admin-key"), ADMIN_KEY)
    await home.fill(tid("title-input"), "Made at home")
    await home.click(tid("create-session"))
    await home.locator(tid("trainer-url")).wait_for()
    pages.append(("home", home, home_headers))

    t_ctx, trainer, t_headers = await _page(browser, info["trainer_url"], problems, "trainer")
    await trainer.fill(tid("trainer-name-input"), "Tess")
    await trainer.click(tid("trainer-name-submit"))
    await trainer.click(tid("session-start"))
    await trainer.wait_for_selector(tid("status") + ":has-text('Live')")
    await _draw(trainer)
    await until(trainer, "v.board.pages.find(p => p.id === v.board.current).elements.length === 1")
    await trainer.fill(tid("chat-input"), "Hello <b>class</b>")
    await trainer.click(tid("chat-send"))
    pages.append(("trainer", trainer, t_headers))

    l_ctx, learner, l_headers = await _page(browser, info["join_url"], problems, "learner")
    await learner.fill(tid("name-input"), "Ada")
    await learner.click(tid("join-button"))
    await until(learner, "v.chat.length === 1")
    await learner.fill(tid("chat-input"), "Hi")
    await learner.click(tid("chat-send"))
    await until(trainer, "v.chat.length === 2")
    pages.append(("learner", learner, l_headers))

    await trainer.click(tid("session-end"))
    await trainer.click(tid("dialog-confirm"))
    await learner.wait_for_selector(tid("status") + ":has-text('ended')")
    r_ctx, replay, r_headers = await _page(browser, info["replay_url"], problems, "replay")
    await replay.wait_for_selector(tid("timeline"))
    end_t = (await trainer.evaluate("() => window.classcast.view().t")) + 1000
    await replay.evaluate(f"() => window.classcast.seek({end_t})")
    await replay.locator(tid("chat-message")).first.wait_for()
    pages.append(("replay", replay, r_headers))

    for label, page, headers in pages:
        host = server.base_url.split("//")[1]
        assert headers.get("content-security-policy") == CSP.format(ws=f" ws://{host} wss://{host}"), label
        assert headers.get("x-frame-options") == "DENY" and headers.get("referrer-policy") == "no-referrer"
        assert await page.evaluate("() => window.__csp") == [], label
    assert problems.items == []

    # The policy is enforced: an injected inline script does not run and is reported.
    ran = await replay.evaluate(
        """() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';
                   document.head.appendChild(s); return window.__ran === 1; }"""
    )
    assert ran is False
    await replay.wait_for_function("() => window.__csp.length === 1")
    assert (await replay.evaluate("() => window.__csp[0]")).startswith("script-src")
    for ctx in (home_ctx, t_ctx, l_ctx, r_ctx):
        await ctx.close()
