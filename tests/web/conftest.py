"""Browser fixtures: Debian's Chromium driven by Playwright, against a real server on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
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


_bundle_checked = False


def fresh_bundle() -> None:
    """The pages test what web/src says: a bundle older than its sources (web/dist copied or
    left from before a change, tests run without `make`) is built again first. A stale bundle
    once hid the console's `media.reset` handling from the cluster failover test."""
    global _bundle_checked
    if _bundle_checked:
        return
    web = DIST.parent
    sources = [*web.joinpath("src").rglob("*.ts"), web / "build.mjs"]
    bundles = list(DIST.glob("*.js"))
    newest = max(f.stat().st_mtime for f in sources)
    if bundles and min(f.stat().st_mtime for f in bundles) >= newest:
        _bundle_checked = True
        return
    node = shutil.which("node")
    if node is None or not (web / "node_modules").exists():
        pytest.fail("web/dist is older than web/src and cannot be rebuilt here: run `make web`")
    subprocess.run([node, "build.mjs"], cwd=web, check=True, capture_output=True, timeout=120)
    (DIST / ".built").touch()
    _bundle_checked = True


@pytest.fixture
async def browser() -> AsyncIterator:
    from playwright.async_api import async_playwright

    fresh_bundle()
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
def problems() -> Problems:
    return Problems()
