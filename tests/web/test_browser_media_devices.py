"""Switching the trainer's camera and microphone while live (issue 10), in real Chromium with two
fake cameras and microphones: the new device's track replaces the old one on the same connection
(no new track for the learners, no renegotiation), and the learner's stage keeps playing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import expect

from .conftest import ARGS, CHROMIUM, needs_browser
from .helpers import open_console, tid, until
from .test_browser_media import AUDIO_LIVE, LAPTOP, WAIT, join, playing

# The preview's camera and the microphone being sent, by their device labels.
SENDING = """() => {
  const v = document.querySelector('[data-testid="media-preview-video"]');
  const t = v && v.srcObject && v.srcObject.getVideoTracks()[0];
  return t ? t.label : null;
}"""


@pytest.fixture
async def two_devices() -> AsyncIterator:
    from playwright.async_api import async_playwright

    args = [a for a in ARGS if a != "--use-fake-device-for-media-stream"]
    args.append("--use-fake-device-for-media-stream=device-count=2")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        try:
            yield b
        finally:
            await b.close()


@needs_browser
async def test_switching_devices_keeps_the_class_watching(server, browser, two_devices, problems):
    info = await server.create_session("Devices")
    context = await two_devices.new_context(viewport=LAPTOP)
    publishes: list[str] = []  # media.publish commands the console sends (offers)

    def watch(ws) -> None:
        ws.on("framesent", lambda f: isinstance(f, str) and '"media.publish"' in f and publishes.append(f))

    context.on("page", lambda page: page.on("websocket", watch))
    console = await open_console(context, info["trainer_url"], problems)
    await console.click(tid("session-start"))
    await until(console, "v.status === 'live'")
    _ctx, ada = await join(browser, info["join_url"], "Ada", problems, viewport=LAPTOP)

    await console.click(tid("media-go"))
    await expect(console.locator(tid("on-air"))).to_be_visible(timeout=WAIT)
    await playing(ada, tid("stage-video", '[data-label="camera"]'))
    await ada.wait_for_function(AUDIO_LIVE, timeout=WAIT, polling=300)
    tracks_before = await console.evaluate("() => JSON.stringify(window.classcast.view().media.tracks)")
    assert len(publishes) == 1

    # The Devices menu lists both cameras and both microphones; the ones in use are selected.
    await console.click(tid("media-devices"))
    cameras = console.locator(tid("media-camera-device") + " option")
    await expect(cameras).to_have_count(2)
    first = await console.evaluate(SENDING)
    assert first and await console.locator(tid("media-camera-device")).input_value()
    other = [t for t in await cameras.all_inner_texts() if t != first]
    assert len(other) == 1, (first, other)
    await console.locator(tid("media-camera-device")).select_option(label=other[0])
    await console.wait_for_function(f"() => ({SENDING})() === {other[0]!r}", timeout=WAIT)
    mics = console.locator(tid("media-mic-device") + " option")
    assert await mics.count() >= 2
    current = await console.locator(tid("media-mic-device")).input_value()
    values = [await o.get_attribute("value") for o in await mics.all()]
    await console.locator(tid("media-mic-device")).select_option(next(v for v in values if v != current))

    # The learner keeps seeing and hearing; the tracks are the same (replaced, not renegotiated).
    await playing(ada, tid("stage-video", '[data-label="camera"]'))
    await ada.wait_for_function(AUDIO_LIVE, timeout=WAIT, polling=300)
    assert (
        await console.evaluate("() => JSON.stringify(window.classcast.view().media.tracks)") == tracks_before
    )
    assert len(publishes) == 1
    assert problems.items == []
