"""Small helpers for driving Classcast pages in Playwright."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

SOCKET_URL = re.compile(r".*/socket\.io/.*")


def tid(name: str, extra: str = "") -> str:
    return f'[data-testid="{name}"]{extra}'


async def view(page) -> dict[str, Any]:
    return await page.evaluate("() => window.classcast.view()")


async def until(page, js_condition: str, timeout: float = 10_000) -> None:
    """Wait until `js_condition` (an expression over `v`, the page's folded view) holds."""
    script = (
        "() => { const c = window.classcast; const v = c && c.view && c.view(); "
        f"return !!v && ({js_condition}); }}"
    )
    await page.wait_for_function(script, timeout=timeout)


async def holds(page, js: str, arg: object = None, timeout: float = 30.0) -> None:
    """Until the (possibly async) function `js` resolves truthy on the page, polling.

    Playwright's `wait_for_function` does not await a promise: an async predicate counts as true
    at once, so an async check must be polled with `evaluate` instead."""
    deadline = time.monotonic() + timeout
    while not await page.evaluate(js, arg):
        assert time.monotonic() < deadline, f"not within {timeout} s: {js[:80]}"
        await asyncio.sleep(0.3)


async def open_page(context, url: str, problems, label: str):
    page = await context.new_page()
    problems.watch(page, label)

    async def on_dialog(dialog) -> None:
        # A prompt (chapter title) or confirm (end session) is answered like a user would.
        if dialog.type == "alert":
            problems.items.append(f"{label} alert: {dialog.message}")
            await dialog.dismiss()
        else:
            await dialog.accept("Chapter" if dialog.type == "prompt" else None)

    page.on("dialog", lambda d: asyncio.ensure_future(on_dialog(d)))
    await page.goto(url)
    return page


async def open_console(context, url: str, problems, name: str = "Tess", label: str = "trainer"):
    """The trainer console: opened, and the trainer's name given (the console asks for it)."""
    page = await open_page(context, url, problems, label)
    await page.fill(tid("trainer-name-input"), name)
    await page.click(tid("trainer-name-submit"))
    await page.wait_for_selector(tid("status"))
    return page


class Network:
    """A learner's connection that the test can cut: the context goes offline (no new requests)
    and its websockets, routed through Playwright, are closed and refused until it is back."""

    def __init__(self, context) -> None:
        self.context = context
        self.online = True
        self.sockets: list[Any] = []

    async def install(self) -> None:
        async def handler(ws) -> None:
            if not self.online:
                await ws.close()
                return
            ws.connect_to_server()
            self.sockets.append(ws)

        await self.context.route_web_socket(SOCKET_URL, handler)

    async def drop(self) -> None:
        self.online = False
        await self.context.set_offline(True)
        for ws in self.sockets:
            await ws.close()
        self.sockets.clear()

    async def restore(self) -> None:
        self.online = True
        await self.context.set_offline(False)


def jsq(value: str) -> str:
    return json.dumps(value)


async def join(browser, url: str, name: str, problems, **context_args):
    """A learner in a new browser context: their name given, the class live on their page."""
    context = await browser.new_context(**context_args)
    page = await open_page(context, url, problems, name)
    await page.fill(tid("name-input"), name)
    await page.click(tid("join-button"))
    await page.wait_for_selector(tid("status") + ":has-text('Live')")
    return context, page
