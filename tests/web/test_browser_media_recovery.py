"""Live media through the things that go wrong or change mid-class, in real Chromium with fake
devices (issue 10): the trainer's network drops and comes back (the console publishes again and the
learner sees the video again); a learner's own network drops (the stage views again); the browser's
connections use the STUN/TURN servers the server hands out; a learner given the floor with camera
is seen by another learner and the trainer; and the browser's own "Stop sharing" ends the screen
share for the learners.

The network is cut with helpers.Network (the context goes offline and its websockets are closed and
refused until it is back). The browser's "Stop sharing" ends the screen track, which fires its
`ended` event; page JS can end the track (`stop()`) but a track stopped that way fires no event, so
the test stops it and dispatches the `ended` event the browser would have sent."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import expect

from classroom.keys import HUB
from tests.conftest import Server, running_server
from tests.webrtc.helpers import eventually

from .conftest import needs_browser
from .helpers import Network, join, open_console, open_page, tid, until
from .test_browser_media import AUDIO_LIVE, LAPTOP, WAIT, playing

CAMERA = '[data-label="camera"]'
SCREEN = '[data-label="screen"]'

# Every RTCPeerConnection the page negotiates, kept so the test can read its configuration.
KEEP_PEERS = """(() => {
  window.__peers = [];
  const proto = RTCPeerConnection.prototype;
  for (const name of ["createOffer", "setRemoteDescription"]) {
    const original = proto[name];
    proto[name] = function (...args) {
      if (!window.__peers.includes(this)) window.__peers.push(this);
      return original.apply(this, args);
    };
  }
})();"""

# The screen tracks getDisplayMedia hands out, kept so the test can end one as the browser would.
KEEP_SCREENS = """(() => {
  window.__screens = [];
  const md = navigator.mediaDevices;
  const original = md.getDisplayMedia.bind(md);
  md.getDisplayMedia = async (c) => {
    const stream = await original(c);
    window.__screens.push(...stream.getVideoTracks());
    return stream;
  };
})();"""

STOP_SHARING = """() => {
  const t = window.__screens.find((t) => t.readyState === 'live');
  t.stop();
  t.dispatchEvent(new Event('ended'));
}"""


def unused_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def ice_server(tmp_path: Path) -> AsyncIterator[tuple[Server, int]]:
    """A server configured with a STUN and a TURN server on a loopback UDP port nobody answers on
    (the browsers try them, get nothing, and use their host candidates, as on a LAN)."""
    port = unused_udp_port()
    urls = [f"stun:127.0.0.1:{port}", f"turn:class%40cast:s3cret@127.0.0.1:{port}?transport=udp"]
    async with running_server(tmp_path / "data", ice_servers=urls) as srv:
        yield srv, port


async def console_live(browser, info, problems, *scripts: str, network: bool = False):
    context = await browser.new_context(viewport=LAPTOP)
    for script in scripts:
        await context.add_init_script(script)
    net = Network(context)
    if network:
        await net.install()
    console = await open_console(context, info["trainer_url"], problems)
    await console.click(tid("session-start"))
    await until(console, "v.status === 'live'")
    return console, net


async def go_live(console) -> None:
    await console.click(tid("media-go"))
    await expect(console.locator(tid("on-air"))).to_be_visible(timeout=WAIT)
    await until(console, "v.media.tracks.length === 2", timeout=WAIT)


@needs_browser
async def test_the_trainer_publishes_again_after_a_network_drop(server, browser, problems):
    info = await server.create_session("Trainer drop")
    console, network = await console_live(browser, info, problems, network=True)
    _ctx, ada = await join(browser, info["join_url"], "Ada", problems, viewport=LAPTOP)
    await go_live(console)
    await playing(ada, tid("stage-video", CAMERA))
    tid_ = await console.evaluate("() => window.classcast.you.id")
    tracks = [f"{tid_}:mic", f"{tid_}:camera"]

    # The trainer's network drops: the server ends their tracks with their socket.
    await network.drop()
    await until(ada, "v.media.tracks.length === 0", timeout=WAIT)
    await expect(ada.locator(tid("media-stage"))).to_be_hidden(timeout=WAIT)
    # Back: the console publishes again by itself, the same track ids, and Ada sees the video again.
    await network.restore()
    await console.wait_for_selector(tid("status") + ":has-text('Live')", timeout=45_000)
    await until(ada, "v.media.tracks.length === 2", timeout=45_000)
    ids = await ada.evaluate("() => window.classcast.view().media.tracks.map((t) => t.id)")
    assert sorted(ids) == sorted(tracks)  # the same track ids as before the drop
    await expect(console.locator(tid("on-air"))).to_be_visible(timeout=WAIT)
    await playing(ada, tid("stage-video", CAMERA))
    await ada.wait_for_function(AUDIO_LIVE, timeout=WAIT, polling=300)
    assert problems.items == []


@needs_browser
async def test_the_browser_uses_the_ice_servers_the_server_was_given(ice_server, browser, problems):
    server, port = ice_server
    info = await server.create_session("ICE servers")
    console, _ = await console_live(browser, info, problems, KEEP_PEERS)
    await go_live(console)
    # The console's connection has the servers the server was configured with, from the join ack
    # (Chromium lists a STUN server with an empty username and credential).
    expected = [
        {"urls": [f"stun:127.0.0.1:{port}"], "username": "", "credential": ""},
        {"urls": [f"turn:127.0.0.1:{port}?transport=udp"], "username": "class@cast", "credential": "s3cret"},
    ]
    configs = await console.evaluate("() => window.__peers.map((pc) => pc.getConfiguration().iceServers)")
    assert configs and all(c == expected for c in configs), configs
    assert problems.items == []


@needs_browser
async def test_a_learner_views_again_after_its_own_network_drop(server, browser, problems):
    info = await server.create_session("Learner drop")
    console, _ = await console_live(browser, info, problems)
    await go_live(console)
    context = await browser.new_context(viewport=LAPTOP)
    network = Network(context)
    await network.install()
    ada = await open_page(context, info["join_url"], problems, "Ada")
    await ada.fill(tid("name-input"), "Ada")
    await ada.click(tid("join-button"))
    await ada.wait_for_selector(tid("status") + ":has-text('Live')")
    await playing(ada, tid("stage-video", CAMERA))
    room = server.app[HUB].media.rooms[info["id"]]
    assert len(room.viewers) == 1  # Ada's

    # Ada's network drops: her viewer connection goes with her socket; back, her stage views again.
    await network.drop()
    await ada.wait_for_selector(tid("status") + ":has-text('Reconnecting')", timeout=WAIT)
    await eventually(lambda: not room.viewers, 30, "Ada's old viewer connection closed")
    await network.restore()
    await ada.wait_for_selector(tid("status") + ":has-text('Live')", timeout=45_000)
    await eventually(lambda: len(room.viewers) == 1, 30, "Ada viewing again")
    await playing(ada, tid("stage-video", CAMERA))
    await ada.wait_for_function(AUDIO_LIVE, timeout=WAIT, polling=300)
    assert problems.items == []


@needs_browser
async def test_a_learner_given_the_floor_with_camera_is_seen_by_the_class(server, browser, problems):
    info = await server.create_session("Floor camera")
    console, _ = await console_live(browser, info, problems)
    _actx, ada = await join(browser, info["join_url"], "Ada", problems, viewport=LAPTOP)
    _bctx, bob = await join(browser, info["join_url"], "Bob", problems, viewport=LAPTOP)
    aid = await ada.evaluate("() => window.classcast.you.id")

    # The trainer gives Ada the floor (the People tab gives it with the camera).
    await console.click(tid("tab-people"))
    row = console.locator(tid("participant") + ":has-text('Ada')")
    await row.locator(tid("floor-toggle")).click()
    await until(ada, f"v.media.floor[{aid!r}] && v.media.floor[{aid!r}].camera === true")
    await expect(ada.locator(tid("media-controls"))).to_be_visible(timeout=WAIT)
    await ada.click(tid("media-go"))  # a learner speaks first: the microphone
    await expect(ada.locator(tid("on-air"))).to_be_visible(timeout=WAIT)
    await expect(ada.locator(tid("media-camera"))).to_be_visible()
    await ada.click(tid("media-camera"))
    await expect(ada.locator(tid("media-preview"))).to_be_visible(timeout=WAIT)
    await until(ada, f"v.media.tracks.some((t) => t.id === '{aid}:camera')", timeout=WAIT)

    # Bob and the trainer see her camera and hear her.
    for page in (bob, console):
        video = tid("stage-video", f'[data-track="{aid}:camera"]')
        await playing(page, video)
        await page.wait_for_function(AUDIO_LIVE, timeout=WAIT, polling=300)
        await expect(page.locator(tid("stage-speakers"))).to_contain_text("Ada")
    # Ada's own stage does not show herself.
    await expect(ada.locator(tid("stage-video"))).to_have_count(0)

    # Her camera off: it leaves Bob's stage; her voice stays.
    await ada.click(tid("media-camera"))
    await expect(bob.locator(tid("stage-video"))).to_have_count(0, timeout=WAIT)
    await bob.wait_for_function(AUDIO_LIVE, timeout=WAIT, polling=300)
    assert problems.items == []


@needs_browser
async def test_the_browsers_stop_sharing_ends_the_screen_share(server, browser, problems):
    info = await server.create_session("Stop sharing")
    console, _ = await console_live(browser, info, problems, KEEP_SCREENS)
    _ctx, ada = await join(browser, info["join_url"], "Ada", problems, viewport=LAPTOP)
    await go_live(console)
    share = console.locator(tid("media-screen"))

    # Sharing: the screen large on Ada's stage, the camera beside it.
    await share.click()
    await expect(share).to_have_text("🖥 Stop sharing", timeout=WAIT)
    await playing(ada, tid("stage-video", SCREEN))
    await expect(ada.locator(".media-main " + tid("stage-video"))).to_have_attribute("data-label", "screen")

    # The browser's "Stop sharing": the share ends, and Ada's stage goes back to the camera.
    await console.evaluate(STOP_SHARING)
    await expect(share).to_have_text("🖥 Share screen", timeout=WAIT)
    await until(console, "!v.media.tracks.some((t) => t.label === 'screen')", timeout=WAIT)
    await expect(ada.locator(tid("stage-video", SCREEN))).to_have_count(0, timeout=WAIT)
    await expect(ada.locator(".media-main " + tid("stage-video"))).to_have_attribute("data-label", "camera")
    await playing(ada, tid("stage-video", CAMERA))
    await expect(console.locator(tid("on-air"))).to_be_visible()  # still live: voice and camera

    # Camera off, then a share stopped the same way: no video left, the board has the room.
    await console.click(tid("media-camera"))
    await expect(ada.locator(tid("stage-video"))).to_have_count(0, timeout=WAIT)
    await share.click()
    await playing(ada, tid("stage-video", SCREEN))
    await console.evaluate(STOP_SHARING)
    await expect(share).to_have_text("🖥 Share screen", timeout=WAIT)
    await expect(ada.locator(tid("stage-video"))).to_have_count(0, timeout=WAIT)
    await expect(ada.locator(tid("media-stage"))).not_to_have_class(
        re.compile(r"\bhas-video\b"), timeout=WAIT
    )
    await expect(ada.locator(tid("board"))).to_be_visible()
    await ada.wait_for_function(AUDIO_LIVE, timeout=WAIT, polling=300)  # the voice goes on
    assert problems.items == []
