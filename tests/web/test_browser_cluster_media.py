"""Live media in cluster mode, in real Chromium with fake devices: the trainer's console on one
node publishes, a learner's page on another node sees and hears it, the session's media running on
a third node (its owner). That node is killed: both pages hear `media.reset`, the console publishes
again by itself, and the learner's stage plays the video again, now from the session's new node."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect

from classroom.cluster import k_lease
from tests.cluster import RedisServer, cluster_of
from tests.test_cluster import redis_server  # noqa: F401 - the fixture

from .conftest import needs_browser
from .helpers import holds, open_console, open_page, tid, until
from .test_browser_media import AUDIO_LIVE, LAPTOP, PLAYING, WAIT
from .test_browser_media_recovery import KEEP_PEERS

CAMERA = '[data-label="camera"]'

# The page's newest RTCPeerConnection is connected and its video bytes (in or out) keep growing.
NEWEST_FLOWING = """async (n) => {
  const pcs = window.__peers;
  if (pcs.length < n) return false;
  const pc = pcs[pcs.length - 1];
  if (pc.connectionState !== 'connected') return false;
  const bytes = async () => {
    let total = 0;
    (await pc.getStats()).forEach((s) => {
      if ((s.type === 'inbound-rtp' || s.type === 'outbound-rtp') && s.kind === 'video') {
        total += s.bytesReceived || s.bytesSent || 0;
      }
    });
    return total;
  };
  const before = await bytes();
  await new Promise((r) => setTimeout(r, 500));
  return (await bytes()) > before;
}"""

pytestmark = pytest.mark.timeout(300)


@needs_browser
async def test_media_across_nodes_and_after_the_media_node_dies(
    tmp_path: Path,
    redis_server: RedisServer | None,  # noqa: F811
    browser,
    problems,
) -> None:
    async with cluster_of(tmp_path, 3, redis_server and redis_server.url, "--log-level", "info") as cl:
        info = await cl.create_session(node=0, title="Cluster stage")
        host = await cl.client(info["trainer_url"], 2, "Host")  # first on node 2: it owns the session
        dead_owner = (await cl.redis.get(k_lease(info["id"]))).decode()
        context = await browser.new_context(viewport=LAPTOP)
        await context.add_init_script(KEEP_PEERS)
        console = await open_console(context, cl.on(info["trainer_url"], 0), problems)
        await console.click(tid("session-start"))
        await until(console, "v.status === 'live'")
        ada_context = await browser.new_context(viewport=LAPTOP)
        await ada_context.add_init_script(KEEP_PEERS)
        ada = await open_page(ada_context, cl.on(info["join_url"], 1), problems, "Ada")
        await ada.fill(tid("name-input"), "Ada")
        await ada.click(tid("join-button"))
        await ada.wait_for_selector(tid("status") + ":has-text('Live')")
        await console.click(tid("media-go"))
        await expect(console.locator(tid("on-air"))).to_be_visible(timeout=WAIT)
        await until(ada, "v.media.tracks.length === 2", timeout=WAIT)
        await holds(ada, PLAYING, tid("stage-video", CAMERA))
        await ada.wait_for_function(AUDIO_LIVE, timeout=WAIT, polling=300)
        await holds(ada, NEWEST_FLOWING, 1)
        assert await console.evaluate("() => window.__peers.length") == 1
        assert await ada.evaluate("() => window.__peers.length") == 1

        await host.close()
        await cl.nodes[2].kill()
        # On `media.reset` the console publishes again on a new connection, to the session's new
        # node, and Ada's stage views again on a new one, with video flowing.
        await holds(console, NEWEST_FLOWING, 2, timeout=45)
        await holds(ada, NEWEST_FLOWING, 2, timeout=45)
        owner = (await cl.redis.get(k_lease(info["id"]))).decode()
        assert owner != dead_owner
        await until(ada, "v.media.tracks.length === 2", timeout=WAIT)
        await holds(ada, PLAYING, tid("stage-video", CAMERA))
        await ada.wait_for_function(AUDIO_LIVE, timeout=WAIT, polling=300)
        await expect(console.locator(tid("on-air"))).to_be_visible()
        assert problems.items == []
