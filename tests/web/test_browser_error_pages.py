"""A broken link or address opened in a browser gets a page that says what happened and links home;
and no page a browser opens asks for anything that answers an error (the favicon included)."""

from __future__ import annotations

from urllib.parse import quote

from playwright.async_api import expect

from .conftest import needs_browser
from .helpers import open_console, open_page, tid, until


class Failures:
    """Every response with status >= 400 that a browser context received."""

    def __init__(self, context) -> None:
        self.items: list[str] = []
        context.on("response", lambda r: r.status >= 400 and self.items.append(f"{r.status} {r.url}"))


# The icons the page names, each fetched: Playwright does not report the browser's own favicon
# request, so the page must name an icon (else the browser asks for /favicon.ico) that is there.
ICONS = """async () => {
  const hrefs = [...document.querySelectorAll('link[rel~=icon]')].map(l => l.href);
  return Promise.all(hrefs.map(async (href) => [href, (await fetch(href)).status]));
}"""


async def _settled(page) -> None:
    """The page is loaded, and every icon it names answers 200."""
    await page.wait_for_load_state("load")
    icons = await page.evaluate(ICONS)
    assert icons, f"{page.url} names no icon: the browser would ask for /favicon.ico"
    assert all(status == 200 for _, status in icons), icons


@needs_browser
async def test_broken_links_and_unknown_addresses_get_a_page_that_helps(server, browser, problems):
    info = await server.create_session("Real one")
    sid = info["id"]
    good = info["join_url"].split("token=")[1]
    base = server.base_url
    cases = [
        (f"{base}/s/{sid}/join?token=not-a-token", 403, "This link does not work", "copy the whole link"),
        (f"{base}/s/{sid}/join", 403, "This link does not work", "copy the whole link"),
        (f"{base}/s/someoneelse/join?token={good}", 403, "This link does not work", "made for this session"),
        (f"{base}/s/{sid}/trainer?token={good}", 403, "This link does not work", "ask the trainer"),
        (f"{base}/s/{sid}/bogus?token={good}", 404, "Page not found", "Check the address"),
        (f"{base}/s/{quote('<b>x</b>', safe='')}/join?token=x", 403, "This link does not work", "link"),
        (f"{base}/no/such/page", 404, "Page not found", "Check the address"),
        (f"{base}/static/nothing-here.js", 404, None, None),  # a file: JSON, not a page
    ]
    context = await browser.new_context()
    for url, status, title, advice in cases:
        page = await open_page(context, url, problems, "visitor")
        response = await page.reload()
        assert response is not None and response.status == status, (url, response and response.status)
        if title is None:
            assert response.headers["content-type"].startswith("application/json")
            await page.close()
            continue
        assert response.headers["content-type"].startswith("text/html"), url
        await expect(page.locator("h1")).to_have_text(title)
        await expect(page.locator("main")).to_contain_text(advice)
        assert await page.locator("main b").count() == 0  # the address is never markup
        home = page.locator(tid("home-link"))
        await expect(home).to_be_visible()
        await home.click()
        await page.wait_for_url(f"{base}/")
        await page.close()
    await context.close()
    # Pages that answer an error on purpose log it in the console; nothing else went wrong.
    assert [p for p in problems.items if "status of 40" not in p] == []


@needs_browser
async def test_no_page_asks_for_anything_that_is_not_there(server, browser, problems):
    info, trainer = await server.live_session("Icons")
    await trainer.request("chat.send", text="hello")
    context = await browser.new_context()
    failures = Failures(context)
    sid = info["id"]

    home = await open_page(context, f"{server.base_url}/", problems, "home")
    await _settled(home)
    console = await open_console(context, info["trainer_url"], problems)
    await _settled(console)
    learner = await open_page(context, info["join_url"], problems, "learner")
    await learner.fill(tid("name-input"), "Ada")
    await learner.click(tid("join-button"))
    await until(learner, "v.chat.length === 1")
    await _settled(learner)
    replay = await open_page(context, info["replay_url"], problems, "replay")
    await replay.wait_for_selector(tid("timeline"))
    await _settled(replay)
    assert failures.items == []

    # Error pages answer their own status, and ask for nothing else that fails.
    broken = await open_page(context, f"{server.base_url}/s/{sid}/join?token=nope", problems, "broken")
    await _settled(broken)
    lost = await open_page(context, f"{server.base_url}/nowhere", problems, "lost")
    await _settled(lost)
    assert sorted(failures.items) == sorted(
        [f"403 {server.base_url}/s/{sid}/join?token=nope", f"404 {server.base_url}/nowhere"]
    )
    # The icon every page names is there.
    icon = await context.request.get(f"{server.base_url}/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"] == "image/x-icon"
    assert (await icon.body())[:4] == b"\x00\x00\x01\x00"
    await context.close()
    assert [p for p in problems.items if "status of 40" not in p] == []
