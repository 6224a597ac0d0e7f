"""Live media in cluster mode, in real Chromium with fake devices: the trainer's console on one
node publishes, a learner's page on another node sees and hears it, the session's media running on
a third node (its owner). That node is killed: both pages hear `media.reset`, the console publishes
again by itself, and the learner's stage plays the video again, now from the session's new node.

The console's republish after `media.reset` (web/src/media.ts, `Publisher.republish`) is also
tested against real refusals of the session's new media node: its per-participant negotiation
budget spent (`rate_limited`, retried with backoff until it is taken, or six times: then it gives
up, stops its tracks and says so), a learner's camera no longer allowed (`forbidden`: offered
again without the camera), and the console's network down (`offline`: not a try; the offer goes
again once the page has joined again). `HOLD` lets the test spend the budget, withdraw the camera
or cut the network while the page's republished offer waits, so the refusal is certain rather
than a race."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import expect

from classroom.client import ClassroomClient
from classroom.cluster import k_lease
from tests.cluster import Cluster, RedisServer, cluster_of
from tests.test_cluster import redis_server  # noqa: F401 - the fixture

from .conftest import needs_browser
from .helpers import Network, holds, open_console, open_page, tid, until
from .test_browser_media import AUDIO_LIVE, LAPTOP, PLAYING, WAIT
from .test_browser_media_recovery import KEEP_PEERS
from .test_browser_media_retry import KEEP_CAMERA, published

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

# The page's publishing connections (those with a sending transceiver), each with when it made its
# first offer and when it was closed; while `__hold` is set, each offer it makes waits after its ICE
# gathering (so the page sends it at once when let go) until the test calls `__release()`.
HOLD = """(() => {
  window.__pubs = [];
  window.__hold = false;
  window.__held = 0;
  window.__release = () => {};
  const proto = RTCPeerConnection.prototype;
  const sending = (pc) => pc.getTransceivers().some((t) => t.direction === 'sendonly');
  const createOffer = proto.createOffer;
  proto.createOffer = function (...args) {
    if (sending(this) && !window.__pubs.some((p) => p.pc === this)) {
      window.__pubs.push({ pc: this, made: performance.now(), closed: null, answered: false });
    }
    return createOffer.apply(this, args);
  };
  const close = proto.close;
  proto.close = function () {
    const p = window.__pubs.find((p) => p.pc === this);
    if (p && p.closed === null) p.closed = performance.now();
    return close.apply(this);
  };
  const setRemote = proto.setRemoteDescription;
  proto.setRemoteDescription = function (...args) {
    const p = window.__pubs.find((p) => p.pc === this);
    if (p) p.answered = true;
    return setRemote.apply(this, args);
  };
  const setLocal = proto.setLocalDescription;
  proto.setLocalDescription = async function (...args) {
    const result = await setLocal.apply(this, args);
    if (window.__hold && sending(this)) {
      const until = performance.now() + 3000;
      while (this.iceGatheringState !== 'complete' && performance.now() < until) {
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => {
        window.__release = r;
        window.__held += 1;
      });
    }
    return result;
  };
})();"""

# NEWEST_FLOWING over the page's publishing connections only.
NEWEST_PUB_FLOWING = NEWEST_FLOWING.replace("window.__peers", "window.__pubs.map((p) => p.pc)")

# The publishing connections as plain data.
PUBS = "() => window.__pubs.map((p) => ({ made: p.made, closed: p.closed, answered: p.answered }))"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
async def cl(tmp_path: Path, redis_server: RedisServer | None) -> AsyncIterator[Cluster]:  # noqa: F811
    """Three nodes on loopback, sharing Redis (a private redis-server, or an in-process stand-in)."""
    async with cluster_of(tmp_path, 3, redis_server and redis_server.url, "--log-level", "info") as cluster:
        yield cluster


async def owned_by_node_2(cl: Cluster, title: str) -> tuple[dict, ClassroomClient]:
    """A new session, run by node 2 (its first client connects there): the node the tests kill.
    The host is that client."""
    info = await cl.create_session(node=0, title=title)
    host = await cl.client(info["trainer_url"], 2, "Host")
    return info, host


async def kill_the_owner(cl: Cluster, host: ClassroomClient) -> None:
    """Node 2, the session's node and so its media node, dies: the pages get `media.reset`."""
    await host.close()
    await cl.nodes[2].kill()


async def live_console(cl: Cluster, info: dict, context, problems):
    """The trainer console on node 0, the session started there."""
    console = await open_console(context, cl.on(info["trainer_url"], 0), problems)
    await console.click(tid("session-start"))
    await until(console, "v.status === 'live'")
    return console


async def joined_learner(cl: Cluster, info: dict, node: int, context, problems, name: str = "Ada"):
    """A learner's page on `node`, joined with her name, the class live on it."""
    page = await open_page(context, cl.on(info["join_url"], node), problems, name)
    await page.fill(tid("name-input"), name)
    await page.click(tid("join-button"))
    await page.wait_for_selector(tid("status") + ":has-text('Live')")
    return page


async def go_live(page) -> None:
    await page.click(tid("media-go"))
    await expect(page.locator(tid("on-air"))).to_be_visible(timeout=WAIT)


async def held_context(browser):
    """A browser context whose pages hold their publishing offers on request (`HOLD`)."""
    context = await browser.new_context(viewport=LAPTOP)
    await context.add_init_script(HOLD)
    return context


async def publishing_console(cl: Cluster, info: dict, context, problems):
    """The console live and publishing (its first connection answered, video flowing)."""
    console = await live_console(cl, info, context, problems)
    await go_live(console)
    await holds(console, NEWEST_PUB_FLOWING, 1)
    return console


@needs_browser
async def test_media_across_nodes_and_after_the_media_node_dies(cl: Cluster, browser, problems) -> None:
    info, host = await owned_by_node_2(cl, "Cluster stage")
    dead_owner = (await cl.redis.get(k_lease(info["id"]))).decode()
    context = await browser.new_context(viewport=LAPTOP)
    await context.add_init_script(KEEP_PEERS)
    console = await live_console(cl, info, context, problems)
    ada_context = await browser.new_context(viewport=LAPTOP)
    await ada_context.add_init_script(KEEP_PEERS)
    ada = await joined_learner(cl, info, 1, ada_context, problems)
    await go_live(console)
    await until(ada, "v.media.tracks.length === 2", timeout=WAIT)
    await holds(ada, PLAYING, tid("stage-video", CAMERA))
    await ada.wait_for_function(AUDIO_LIVE, timeout=WAIT, polling=300)
    await holds(ada, NEWEST_FLOWING, 1)
    assert await console.evaluate("() => window.__peers.length") == 1
    assert await ada.evaluate("() => window.__peers.length") == 1

    await kill_the_owner(cl, host)
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


async def twin_of(page, cl, info: dict, node: int) -> ClassroomClient:
    """A socket.io client as the page's own participant (its token from the page's storage), on
    `node`: its media commands spend the same per-participant budget as the page's."""
    token = await page.evaluate("(k) => sessionStorage.getItem(k)", f"classcast:{info['id']}")
    assert token
    c = ClassroomClient(f"{cl.nodes[node].base}/s/{info['id']}?token={token}")
    cl.clients.append(c)
    await c.connect()
    return c


async def spend(c: ClassroomClient, n: int) -> list[str]:
    """`n` negotiation commands of `c`'s participant at once (an answer with no offer waiting:
    refused, but counted against the media node's budget): the refusals' codes."""
    acks = await asyncio.gather(*(c.send("media.answer", sdp="v=0") for _ in range(n)))
    assert all(not a["ok"] for a in acks), acks
    return [a["error"]["code"] for a in acks]


@contextlib.asynccontextmanager
async def budget_spent(c: ClassroomClient) -> AsyncIterator[None]:
    """The media node's negotiation budget of `c`'s participant spent, and kept spent while the
    block runs: a burst of more than its 20 first, then a few commands in flight at all times, so
    the tokens it refills (2 a second) are taken as they come. An offer of the page's let go in
    the block is refused `rate_limited` however long it takes to reach the media node: it could
    take a token only in the moment between its refill and the next of those commands. (A single
    burst left the offer half a second to arrive before a token was back; a slow machine could
    take longer, and the offer was taken.)"""
    codes = await spend(c, 30)
    assert "rate_limited" in codes, codes
    stop = asyncio.Event()

    async def keep_spent() -> None:
        while not stop.is_set():
            await spend(c, 4)

    task = asyncio.create_task(keep_spent())
    try:
        yield
    finally:
        stop.set()
        await task  # ends after the commands in flight are answered


async def held(page, n: int, timeout: float = 45) -> None:
    await page.wait_for_function(f"() => window.__held >= {n}", timeout=timeout * 1000, polling=50)


async def refused(page, n: int, timeout: float = 10) -> None:
    """Until the page's `n`th publishing connection (0: the first) was closed, unanswered or not."""
    await page.wait_for_function(
        f"() => window.__pubs.length > {n} && window.__pubs[{n}].closed !== null",
        timeout=timeout * 1000,
        polling=50,
    )


@needs_browser
async def test_console_republishes_while_the_new_media_node_refuses_it(
    cl: Cluster, browser, problems
) -> None:
    """After `media.reset`, the new media node answers the console's offer `rate_limited` twice
    (its budget spent by the same trainer's other socket): the console offers again 0.5 s after
    the first refusal and 1 s after the second, and the third offer is taken, video flowing."""
    info, host = await owned_by_node_2(cl, "Retried stage")
    console = await publishing_console(cl, info, await held_context(browser), problems)
    twin = await twin_of(console, cl, info, 1)
    assert len(await console.evaluate(PUBS)) == 1

    await console.evaluate("() => { window.__hold = true; }")
    await kill_the_owner(cl, host)
    for attempt in (1, 2):
        await held(console, attempt)
        # The new media node's budget for this trainer spent: the offer let go now is refused.
        async with budget_spent(twin):
            await console.evaluate("() => window.__release()")
            await refused(console, attempt)
        assert len(await console.evaluate(PUBS)) == attempt + 1
    await held(console, 3, timeout=10)
    await console.evaluate("() => { window.__hold = false; window.__release(); }")
    await holds(console, NEWEST_PUB_FLOWING, 4, timeout=30)
    await expect(console.locator(tid("on-air"))).to_be_visible()
    pubs = await console.evaluate(PUBS)
    assert len(pubs) == 4, pubs
    assert [p["answered"] for p in pubs] == [True, False, False, True], pubs
    # The waits between a refusal and the next offer: 0.5 s, then 1 s.
    waits = [(pubs[i + 1]["made"] - pubs[i]["closed"]) / 1000 for i in (1, 2)]
    assert 0.45 <= waits[0] < 0.95 and 0.95 <= waits[1] < 1.9, waits
    assert problems.items == []


@needs_browser
async def test_console_stops_and_says_so_when_the_republish_retries_run_out(
    cl: Cluster, browser, problems
) -> None:
    """After `media.reset` the new media node refuses the console's republish six times
    (`rate_limited`: its budget kept spent by the trainer's other socket while each offer goes):
    after 0.5 + 1 + 2 + 4 + 8 s of waits the console gives up and says so rather than keeping
    "Stop media" up with nothing sent. The camera stops (its light off), the controls are back to
    "Go live", and a message (a toast, and a note kept beside the button) says the media stopped
    and how to start it again; no seventh offer follows. "Go live" then publishes to the new media
    node and the note goes."""
    info, host = await owned_by_node_2(cl, "Given-up stage")
    console = await publishing_console(cl, info, await held_context(browser), problems)
    assert await console.evaluate(KEEP_CAMERA)
    twin = await twin_of(console, cl, info, 1)

    await console.evaluate("() => { window.__hold = true; }")
    await kill_the_owner(cl, host)
    for attempt in range(1, 7):
        await held(console, attempt, timeout=45 if attempt == 1 else 20)
        if attempt == 6:
            await console.evaluate("() => { window.__hold = false; }")
        async with budget_spent(twin):
            await console.evaluate("() => window.__release()")
            await refused(console, attempt)
    stopped = console.locator(tid("media-stopped"))
    await expect(console.locator(".toast-error", has_text="stopped")).to_have_count(1, timeout=10_000)
    await expect(stopped).to_be_visible()
    await expect(stopped).to_contain_text("Go live")
    await expect(console.locator(tid("media-go"))).to_have_text("Go live")
    await expect(console.locator(tid("on-air"))).to_be_hidden()
    await expect(console.locator(tid("media-mic"))).to_be_hidden()
    await expect(console.locator(tid("media-preview"))).to_be_hidden()
    await console.wait_for_function("() => window.__camera.readyState === 'ended'", timeout=5000)
    pubs = await console.evaluate(PUBS)
    assert len(pubs) == 7 and [p["answered"] for p in pubs] == [True] + [False] * 6, pubs
    # The waits between a refusal and the next offer: 0.5 s, then twice as long each time.
    waits = [(pubs[i + 1]["made"] - pubs[i]["closed"]) / 1000 for i in range(1, 6)]
    assert all(0.5 * 2**k * 0.9 <= w < 0.5 * 2**k + 1.5 for k, w in enumerate(waits)), waits
    # No seventh try (it would have come 16 s after the sixth; none is even started).
    await asyncio.sleep(3)
    assert len(await console.evaluate(PUBS)) == 7

    # Started again by hand: published to the new media node, the note gone.
    await expect(console.locator(tid("media-go"))).to_be_enabled(timeout=WAIT)
    await go_live(console)
    await expect(stopped).to_be_hidden()
    await holds(console, NEWEST_PUB_FLOWING, 8, timeout=30)
    assert problems.items == []


@needs_browser
async def test_a_republish_that_finds_the_network_down_is_sent_again_on_rejoin(
    cl: Cluster, browser, problems
) -> None:
    """After `media.reset` the console's network drops while its republished offer waits: the
    offer is refused `offline` (it never reached the server). That is not a try: no offer follows
    while the page is offline (a counted refusal would be offered again after 0.5, 1 and 2 s), the
    tracks stay on and nothing says the media stopped. Back online, the page joins again and
    publishes at once to the new media node, video flowing."""
    info, host = await owned_by_node_2(cl, "Reconnected stage")
    context = await held_context(browser)
    network = Network(context)
    await network.install()
    console = await publishing_console(cl, info, context, problems)
    assert await console.evaluate(KEEP_CAMERA)

    await console.evaluate("() => { window.__hold = true; }")
    await kill_the_owner(cl, host)
    await held(console, 1)  # the republish, after `media.reset`: it goes once the network is down
    await network.drop()
    await console.evaluate("() => { window.__hold = false; window.__release(); }")
    await refused(console, 1)
    # Offline for longer than three counted tries would take (0.5 + 1 + 2 s): none is made.
    await asyncio.sleep(5)
    pubs = await console.evaluate(PUBS)
    assert [p["answered"] for p in pubs] == [True, False], pubs
    assert await console.evaluate("() => window.__camera.readyState === 'live'")
    await expect(console.locator(tid("media-stopped"))).to_be_hidden()
    await expect(console.locator(".toast-error", has_text="stopped")).to_have_count(0)

    await network.restore()
    await until(console, "v.status === 'live'", timeout=WAIT)
    await holds(console, NEWEST_PUB_FLOWING, 3, timeout=30)
    pubs = await console.evaluate(PUBS)
    assert [p["answered"] for p in pubs] == [True, False, True], pubs
    await expect(console.locator(tid("on-air"))).to_be_visible()
    await expect(console.locator(tid("media-go"))).to_have_text("Stop media")
    await expect(console.locator(tid("media-stopped"))).to_be_hidden()
    await expect(console.locator(".toast-error", has_text="stopped")).to_have_count(0)
    assert await console.evaluate("() => window.__camera.readyState === 'live'")
    assert problems.items == []


@needs_browser
async def test_a_republish_refused_for_a_withdrawn_camera_is_sent_again_without_it(
    cl: Cluster, browser, problems
) -> None:
    """A learner speaking with mic and camera; after `media.reset` (while her page's offer waits)
    the trainer gives her the floor again without the camera: the new media node refuses the
    offer (`forbidden`, a camera track). The page does not send that offer again: it stops the
    camera and, 0.5 s later, offers the microphone alone, which is taken."""
    info, host = await owned_by_node_2(cl, "Refused stage")
    await host.request("session.start")
    tess = await cl.client(info["trainer_url"], 0, "Tess")
    ada = await joined_learner(cl, info, 1, await held_context(browser), problems)
    aid = await ada.evaluate("() => window.classcast.you.id")
    await tess.request("floor.give", id=aid, camera=True)
    await go_live(ada)
    await ada.click(tid("media-camera"))
    await tess.wait_until(lambda: published(tess, aid) == {"mic", "camera"}, 15)
    await holds(ada, NEWEST_PUB_FLOWING, 1)
    assert await ada.evaluate(KEEP_CAMERA)

    await ada.evaluate("() => { window.__hold = true; }")
    await kill_the_owner(cl, host)
    await held(ada, 1)
    # Tess's node may still be finding the session's new node: `temporarily_unavailable`.
    for _ in range(50):
        ack = await tess.send("floor.give", id=aid, camera=False)
        if ack["ok"] or ack["error"]["code"] != "temporarily_unavailable":
            break
        await asyncio.sleep(0.2)
    assert ack["ok"], ack
    await until(ada, f"v.media.floor[{aid!r}] && v.media.floor[{aid!r}].camera === false")
    await ada.evaluate("() => { window.__hold = false; window.__release(); }")
    await refused(ada, 1)
    await tess.wait_until(lambda: published(tess, aid) == {"mic"}, 30)
    await ada.wait_for_function("() => window.__camera.readyState === 'ended'", timeout=5000)
    pubs = await ada.evaluate(PUBS)
    assert len(pubs) == 3 and [p["answered"] for p in pubs] == [True, False, True], pubs
    assert 0.45 <= (pubs[2]["made"] - pubs[1]["closed"]) / 1000 < 1.5, pubs
    await expect(ada.locator(tid("on-air"))).to_be_visible()
    await expect(ada.locator(tid("media-preview"))).to_be_hidden()
    await expect(ada.locator(tid("media-stopped"))).to_be_hidden()
    await asyncio.sleep(2)
    assert len(await ada.evaluate(PUBS)) == 3
    assert published(tess, aid) == {"mic"}
    assert problems.items == []
