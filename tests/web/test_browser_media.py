"""Live media in real Chromium with fake devices (issue 10): the trainer console publishes its
camera and microphone through the server, a learner's stage plays the video and the voice and
follows mute, camera off and a screen share; nobody publishing leaves no stage box; a learner given
the floor is heard by the trainer; and the replay plays the recorded video in step with its clock
through seeks, pauses and speed changes.

Chromium runs with `--use-fake-device-for-media-stream --use-fake-ui-for-media-stream` (conftest's
ARGS): getUserMedia gets a synthetic camera and a beeping microphone without asking, and
getDisplayMedia a synthetic screen. Headless Chromium autoplays sound whatever its flags, so the
"Turn on sound" path runs under an emulated strict autoplay rule (see STRICT_AUTOPLAY)."""

from __future__ import annotations

import json

from playwright.async_api import expect

from .conftest import needs_browser
from .helpers import holds, join, open_console, open_page, tid, until

LAPTOP = {"width": 1366, "height": 768}
SCROLLS = "() => document.documentElement.scrollHeight - window.innerHeight"
WAIT = 30_000  # ms: WebRTC set-up on a loaded two-core machine

# A <video> of the stage is playing: frames of a real size, and its clock moving.
PLAYING = """async (sel) => {
  const v = document.querySelector(sel);
  if (!v || !(v.videoWidth > 0)) return false;
  const t0 = v.currentTime;
  await new Promise((r) => setTimeout(r, 400));
  return v.currentTime > t0 && !v.paused;
}"""

# A voice is live: its <audio> holds a live remote audio track that has had packets (not muted).
AUDIO_LIVE = """() => {
  const a = document.querySelector('[data-testid="stage-audio"]');
  const t = a && a.srcObject && a.srcObject.getAudioTracks()[0];
  return !!t && t.readyState === 'live' && !t.muted;
}"""

# The browser's autoplay rule, as strict as a fresh visit gets it: a sounding play() without a user
# gesture is refused (headless Chromium lets every page autoplay, whatever its flags, and a test's
# evaluate counts as a gesture, so the rule is emulated: until a real click or key press).
STRICT_AUTOPLAY = """(() => {
  let touched = false;  // sticky: a real click or key press on the page
  for (const type of ["pointerdown", "keydown"])
    addEventListener(type, (e) => { if (e.isTrusted) touched = true; }, true);
  const play = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function () {
    if (!this.muted && !touched)
      return Promise.reject(new DOMException("play() needs a user gesture", "NotAllowedError"));
    return play.call(this);
  };
})();"""


async def playing(page, selector: str) -> None:
    await holds(page, PLAYING, selector, WAIT / 1000)


async def trainer_live(browser, info, problems):
    context = await browser.new_context(viewport=LAPTOP)
    console = await open_console(context, info["trainer_url"], problems)
    await console.click(tid("session-start"))
    await until(console, "v.status === 'live'")
    return console


@needs_browser
async def test_trainer_publishes_and_a_learner_sees_and_hears_it(server, browser, problems):
    info = await server.create_session("Media")
    console = await trainer_live(browser, info, problems)
    _ctx, ada = await join(browser, info["join_url"], "Ada", problems, viewport=LAPTOP)

    # Nobody publishes: no stage box, the board has the room.
    stage = ada.locator(tid("media-stage"))
    await expect(stage).to_be_hidden()
    await expect(ada.locator(tid("board"))).to_be_visible()
    board_before = await ada.locator(tid("board")).bounding_box()

    # The trainer goes live: "You are live", a preview of their own camera.
    await expect(console.locator(tid("on-air"))).to_be_hidden()
    await console.click(tid("media-go"))
    await expect(console.locator(tid("on-air"))).to_be_visible(timeout=WAIT)
    await expect(console.locator(tid("on-air"))).to_have_text("● You are live")
    await expect(console.locator(tid("media-preview"))).to_be_visible()
    await playing(console, tid("media-preview-video"))
    await until(console, "v.media.tracks.length === 2")

    # The learner's stage shows the camera playing and plays the voice.
    await expect(stage).to_be_visible(timeout=WAIT)
    await playing(ada, tid("stage-video", '[data-label="camera"]'))
    await ada.wait_for_function(AUDIO_LIVE, timeout=WAIT, polling=300)
    sound = ada.locator(tid("stage-sound"))
    if await sound.is_visible():  # autoplay refused: one click turns the sound on
        await sound.click()
    await ada.wait_for_function(
        "() => { const a = document.querySelector('[data-testid=\"stage-audio\"]'); return a && !a.paused; }",
        timeout=WAIT,
    )
    await expect(ada.locator(tid("stage-quality"))).to_have_text("● Good connection", timeout=WAIT)
    # The board is still on screen below the stage.
    assert (await ada.locator(tid("board")).bounding_box())["height"] > 0.3 * board_before["height"]

    # The trainer's console still fits the laptop screen with the media controls.
    assert await console.evaluate(SCROLLS) <= 2
    box = await console.locator(tid("board")).bounding_box()
    assert box["y"] + box["height"] <= LAPTOP["height"] + 0.5, box
    assert box["height"] >= 0.55 * LAPTOP["height"], box

    # Mute: the learner's stage says so and the voice goes; unmute brings it back.
    await console.click(tid("media-mic"))
    await expect(console.locator(tid("media-mic"))).to_have_attribute("aria-pressed", "true")
    await expect(ada.locator(tid("stage-speakers"))).to_contain_text("muted", timeout=WAIT)
    await expect(ada.locator(tid("stage-audio"))).to_have_count(0)
    await console.click(tid("media-mic"))
    await expect(ada.locator(tid("stage-speakers"))).to_contain_text("🎙 on", timeout=WAIT)
    await ada.wait_for_function(AUDIO_LIVE, timeout=WAIT, polling=300)

    # Camera off: the video leaves the learner's stage (the voice stays); on again: it plays again.
    await console.click(tid("media-camera"))
    await expect(console.locator(tid("media-preview"))).to_be_hidden()
    await expect(ada.locator(tid("stage-video"))).to_have_count(0, timeout=WAIT)
    await expect(ada.locator(tid("stage-speakers"))).to_contain_text("camera off")
    await expect(stage).to_be_visible()
    await console.click(tid("media-camera"))
    await playing(ada, tid("stage-video", '[data-label="camera"]'))

    # A screen share: shown large, the camera beside it; stopped: gone again.
    await console.click(tid("media-screen"))
    await expect(console.locator(tid("media-screen"))).to_have_text("🖥 Stop sharing", timeout=WAIT)
    await playing(ada, tid("stage-video", '[data-label="screen"]'))
    await expect(ada.locator(".media-main " + tid("stage-video"))).to_have_attribute("data-label", "screen")
    await expect(ada.locator(".media-side " + tid("stage-video"))).to_have_attribute("data-label", "camera")
    await console.click(tid("media-screen"))
    await expect(ada.locator(tid("stage-video", '[data-label="screen"]'))).to_have_count(0, timeout=WAIT)
    await playing(ada, tid("stage-video", '[data-label="camera"]'))

    # Stop: the stage goes and the board has its room back.
    await console.click(tid("media-go"))
    await expect(console.locator(tid("on-air"))).to_be_hidden(timeout=WAIT)
    await expect(stage).to_be_hidden(timeout=WAIT)
    assert problems.items == []


@needs_browser
async def test_refused_autoplay_asks_for_one_click(server, browser, problems):
    info = await server.create_session("Autoplay")
    console = await trainer_live(browser, info, problems)
    await console.click(tid("media-go"))
    await expect(console.locator(tid("on-air"))).to_be_visible(timeout=WAIT)
    # Ada comes back to the class (her identity saved in the tab): nothing clicked on the page.
    ada_client = await server.client(info["join_url"], "Ada")
    saved = (
        f"sessionStorage.setItem({json.dumps('classcast:' + info['id'])}, {json.dumps(ada_client._token)})"
    )
    context = await browser.new_context(viewport=LAPTOP)
    await context.add_init_script(saved)
    await context.add_init_script(STRICT_AUTOPLAY)
    ada = await open_page(context, info["join_url"], problems, "Ada")
    await playing(ada, tid("stage-video", '[data-label="camera"]'))
    await ada.wait_for_function(AUDIO_LIVE, timeout=WAIT, polling=300)
    sound = ada.locator(tid("stage-sound"))
    await expect(sound).to_be_visible(timeout=WAIT)
    assert await ada.evaluate("() => document.querySelector('[data-testid=\"stage-audio\"]').paused")
    await sound.click()
    await expect(sound).to_be_hidden()
    await ada.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stage-audio\"]').paused", timeout=WAIT
    )
    assert problems.items == []


@needs_browser
async def test_a_learner_given_the_floor_is_heard_by_the_trainer(server, browser, problems):
    info = await server.create_session("Floor")
    console = await trainer_live(browser, info, problems)
    _ctx, ada = await join(browser, info["join_url"], "Ada", problems, viewport=LAPTOP)
    speak = ada.locator(tid("media-controls"))
    await expect(speak).to_be_hidden()

    await console.click(tid("tab-people"))
    row = console.locator(tid("participant") + ":has-text('Ada')")
    await row.locator(tid("floor-toggle")).click()
    await expect(row.locator(tid("floor-toggle"))).to_have_text("Take the floor back")
    await expect(speak).to_be_visible(timeout=WAIT)
    await ada.click(tid("media-go"))
    await expect(ada.locator(tid("on-air"))).to_be_visible(timeout=WAIT)

    # The trainer hears Ada: a voice-only stage (no video box).
    tstage = console.locator(tid("media-stage"))
    await expect(tstage).to_be_visible(timeout=WAIT)
    await console.wait_for_function(AUDIO_LIVE, timeout=WAIT, polling=300)
    await expect(tstage.locator(tid("stage-video"))).to_have_count(0)
    await expect(tstage.locator(tid("stage-speakers"))).to_contain_text("Ada")

    # Taken back: Ada's controls go, and so does her voice.
    await row.locator(tid("floor-toggle")).click()
    await expect(speak).to_be_hidden(timeout=WAIT)
    await expect(tstage).to_be_hidden(timeout=WAIT)
    await expect(ada.locator(tid("on-air"))).to_be_hidden()
    assert problems.items == []


@needs_browser
async def test_the_replay_plays_the_recorded_video_in_step_with_its_clock(server, browser, problems):
    info = await server.create_session("Media replay")
    console = await trainer_live(browser, info, problems)
    await console.click(tid("media-go"))
    await expect(console.locator(tid("on-air"))).to_be_visible(timeout=WAIT)
    await until(console, "v.media.tracks.length === 2")
    # Some seconds of media (the fake camera's frames are counted by the server's recorder).
    await console.wait_for_timeout(6000)
    await console.click(tid("media-go"))
    await expect(console.locator(tid("on-air"))).to_be_hidden(timeout=WAIT)
    await console.click(tid("session-end"))
    await console.click(tid("dialog-confirm"))
    await until(console, "v.status === 'ended'")

    manifest = await (
        await server.http.get(f"{server.base_url}/api/recordings/{info['id']}", headers=server.admin)
    ).json()
    [entry] = [m for m in manifest["media"] if any(t["kind"] == "video" for t in m["tracks"])]
    start, end = entry["start_ms"], entry["end_ms"]
    assert end - start > 4000, entry

    # The trainer's replay: a download link; the video hidden before its start.
    token = info["trainer_url"].split("token=")[1]
    context = await browser.new_context(viewport=LAPTOP)
    url = f"{server.base_url}/s/{info['id']}/replay?token={token}"
    page = await open_page(context, url, problems, "replay")
    await page.wait_for_selector(tid("timeline"))
    await expect(page.locator(tid("media-download"))).to_have_count(1)
    href = await page.locator(tid("media-download")).get_attribute("href")
    assert entry["file"] in href and "download=1" in href
    video = page.locator(tid("replay-video"))
    if start > 500:
        await page.evaluate(f"() => window.classcast.seek({start - 400})")
        await expect(video).to_be_hidden()

    follows = f"""() => {{
      const v = document.querySelector('[data-testid="replay-video"]');
      if (!v || v.hidden || v.readyState < 2) return false;
      const want = (window.classcast.time() - {start}) / 1000;
      return Math.abs(v.currentTime - want) < 0.3;
    }}"""
    # Play from a moment in the middle: it plays, in step with the clock.
    await page.evaluate(f"() => window.classcast.seek({start + 1000})")
    await page.click(tid("play"))
    await expect(video).to_be_visible()
    await playing(page, tid("replay-video"))
    await page.wait_for_function(follows, timeout=WAIT)

    # A seek while playing, back and forth: the video follows within 0.3 s.
    for at in (start + 3000, start + 500, start + 2000):
        await page.evaluate(f"() => window.classcast.seek({at})")
        await page.wait_for_function(follows, timeout=WAIT)
        await playing(page, tid("replay-video"))
        await page.wait_for_function(follows, timeout=WAIT)

    # Paused: the video pauses where the clock stops; a seek while paused moves it there too.
    await page.click(tid("play"))
    await page.wait_for_function("() => document.querySelector('[data-testid=\"replay-video\"]').paused")
    await page.evaluate(f"() => window.classcast.seek({start + 1500})")
    await page.wait_for_function(follows, timeout=WAIT)

    # Twice the speed: the video plays twice as fast and stays in step.
    await page.select_option(tid("speed"), "2")
    await page.click(tid("play"))
    # (about 2: the player nudges the rate by up to a quarter to catch up with the clock)
    await page.wait_for_function(
        "() => Math.abs(document.querySelector('[data-testid=\"replay-video\"]').playbackRate - 2) <= 0.5",
        timeout=WAIT,
    )
    await page.wait_for_timeout(1000)
    await page.wait_for_function(follows, timeout=WAIT)

    # Past its end the video is hidden again.
    await page.evaluate(f"() => window.classcast.seek({end + 300})")
    await expect(video).to_be_hidden()

    # A learner's replay plays the media too, with no download link.
    learner = await open_page(
        context, f"{info['replay_url']}&t={(start + 1000) // 1000}s", problems, "learner"
    )
    await expect(learner.locator(tid("replay-video"))).to_be_visible(timeout=WAIT)
    await expect(learner.locator(tid("media-download"))).to_have_count(0)
    assert problems.items == []
