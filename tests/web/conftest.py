"""Browser fixtures: Debian's Chromium driven by Playwright, against a real server on loopback."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DIST = Path(__file__).resolve().parents[2] / "web" / "dist"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]

needs_browser = pytest.mark.skipif(
    not Path(CHROMIUM).exists() or not (DIST / "learner.js").exists(),
    reason="needs /usr/bin/chromium and the built web client (make test installs and builds both)",
)


@dataclass
class Problems:
    """Console errors, page errors and alerts seen in any page: a run must end with none."""

    items: list[str] = field(default_factory=list)

    def watch(self, page, label: str) -> None:
        page.on(
            "console",
            lambda m: (
                m.type in ("error", "warning") and self.items.append(f"{label} console {m.type}: {m.text}")
            ),
        )
        page.on("pageerror", lambda e: self.items.append(f"{label} page error: {e}"))
        # Dialogs: `helpers.open_page` answers prompts and confirms and counts alerts as problems.


@pytest.fixture
async def browser() -> AsyncIterator:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def problems() -> Problems:
    return Problems()
