"""A learner's page when the floor it holds narrows, in real Chromium with fake devices against a
real server: the trainer gives the floor again without the camera while she sends her microphone
and camera. The server ends all her tracks (the camera is no longer covered); her page stops the
camera (its light goes off) and publishes the microphone alone, so the trainer hears her again.
(The same in cluster mode, during a republish after `media.reset`:
test_browser_cluster_media.py.)"""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from classroom.client import ClassroomClient

from .conftest import needs_browser
from .helpers import join, tid
from .test_browser_media import LAPTOP, WAIT

pytestmark = pytest.mark.timeout(120)

# The page's camera track, kept to see whether it was stopped.
KEEP_CAMERA = """() => {
  const v = document.querySelector('[data-testid="media-preview-video"]');
  const t = v && v.srcObject && v.srcObject.getVideoTracks()[0];
  window.__camera = t || null;
  return !!t && t.readyState === 'live';
}"""


def published(client: ClassroomClient, pid: str) -> set[str]:
    """The labels of `pid`'s live tracks, as `client` folded them."""
    return {t["label"] for t in client.state.media["tracks"] if t["publisher"] == pid}


@needs_browser
async def test_the_floor_given_again_without_the_camera_keeps_the_microphone_on(server, browser, problems):
    info, tess = await server.live_session("Narrowed floor")
    _ctx, ada = await join(browser, info["join_url"], "Ada", problems, viewport=LAPTOP)
    aid = await ada.evaluate("() => window.classcast.you.id")
    await tess.request("floor.give", id=aid, camera=True)
    await ada.click(tid("media-go"))
    await expect(ada.locator(tid("on-air"))).to_be_visible(timeout=WAIT)
    await ada.click(tid("media-camera"))
    await tess.wait_until(lambda: published(tess, aid) == {"mic", "camera"}, 30)
    await expect(ada.locator(tid("media-preview"))).to_be_visible()
    assert await ada.evaluate(KEEP_CAMERA)

    await tess.request("floor.give", id=aid, camera=False)
    # The server ended both her tracks; the page sends the microphone again, alone.
    await tess.wait_until(lambda: published(tess, aid) == {"mic"}, 30)
    await ada.wait_for_function("() => window.__camera.readyState === 'ended'", timeout=WAIT)
    await expect(ada.locator(tid("media-preview"))).to_be_hidden()
    await expect(ada.locator(tid("media-camera"))).to_be_hidden()
    await expect(ada.locator(tid("on-air"))).to_be_visible()
    await expect(ada.locator(tid("media-go"))).to_have_text("Stop speaking")
    # And it stays on (no churn, no refusal).
    await asyncio.sleep(2)
    assert published(tess, aid) == {"mic"}
    await expect(ada.locator(tid("media-stopped"))).to_be_hidden()
    assert problems.items == []
