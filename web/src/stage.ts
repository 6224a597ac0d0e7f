// The live media on the page (issue 10): the stage that shows what others publish (the screen share
// large, cameras small, the voices, a connection-quality hint; hidden when nobody publishes so the
// board keeps the room) and the publish controls (the trainer's console; a learner given the floor).
import { h, setAttr, setText, show, toast, toggleClass } from "./dom";
import type { Live } from "./live";
import { MediaFailure, Publisher, Quality, Viewer, type Label } from "./media";
import type { MediaTrack } from "./reducer";

const QUALITY_EVERY = 2000;

/** Events after which the stage and the controls look again (names, floor, session status). */
export const MEDIA_EVENTS = /^(media\.|floor\.|session\.|participant\.)/;

function nameOf(live: Live, id: string): string {
  return live.state?.participants.get(id)?.name ?? "Someone";
}

function attach(el: HTMLMediaElement, track: MediaStreamTrack | undefined): void {
  const current = (el.srcObject as MediaStream | null)?.getTracks()[0];
  if (current === track) return;
  el.srcObject = track ? new MediaStream([track]) : null;
}

function failed(err: unknown): void {
  const e = err as any;
  let message = e instanceof MediaFailure ? e.message : String(e?.message ?? e);
  if (e?.name === "NotAllowedError") message = "The browser was not allowed to use the device.";
  else if (e?.name === "NotFoundError") message = "No such device was found.";
  else if (e?.name === "NotReadableError") message = "The device is in use by another program.";
  toast(message, "error");
}

// -- the stage ----------------------------------------------------------------------------------------

export interface Stage {
  el: HTMLElement;
  viewer: Viewer;
  /** The media state may have changed (an update was folded). */
  refresh(): void;
}

/** `el`: the page's stage box (the learner page has one, hidden); made here if not given. */
export function createStage(live: Live, el?: HTMLElement): Stage {
  const box = el ?? h("div", { class: "media-stage", "data-testid": "media-stage", hidden: true });
  box.setAttribute("role", "region");
  box.setAttribute("aria-label", "Live video");
  const main = h("div", { class: "media-main" });
  const side = h("div", { class: "media-side" });
  const voices = h("div", { class: "media-voices" });
  const speakers = h("p", { class: "media-speakers", "data-testid": "stage-speakers" });
  const quality = h("span", { class: "media-quality", "data-testid": "stage-quality", role: "status", hidden: true });
  const soundBtn: HTMLButtonElement = h("button", {
    type: "button",
    class: "btn btn-small btn-primary media-sound",
    "data-testid": "stage-sound",
    text: "🔊 Turn on sound",
    hidden: true,
    onclick: () => {
      soundBtn.hidden = true;
      for (const a of audios.values()) void a.play().catch(() => (soundBtn.hidden = false));
    },
  });
  box.replaceChildren(main, side, h("div", { class: "media-bar" }, speakers, soundBtn, quality), voices);

  const viewer = new Viewer(live);
  const videos = new Map<string, { wrap: HTMLElement; video: HTMLVideoElement; caption: HTMLElement }>();
  const audios = new Map<string, HTMLAudioElement>();
  const meter = new Quality();
  let timer: ReturnType<typeof setInterval> | null = null;
  let wanted = false;

  const remote = (): MediaTrack[] => {
    const you = live.you?.id;
    return (live.state?.media?.tracks ?? []).filter((t) => t.publisher !== you);
  };

  function videoFor(t: MediaTrack) {
    let v = videos.get(t.id);
    if (!v) {
      const video = h("video", { autoplay: true, playsinline: true, "data-testid": "stage-video", "data-label": t.label, "data-track": t.id }) as HTMLVideoElement;
      video.muted = true; // the voice plays from its own <audio>; a muted video may always autoplay
      const caption = h("span", { class: "media-caption" });
      const wrap = h("div", { class: `media-tile media-${t.label}` }, video, caption);
      v = { wrap, video, caption };
      videos.set(t.id, v);
    }
    return v;
  }

  function play(a: HTMLMediaElement): void {
    const p = a.play();
    if (p) p.catch((err) => err?.name === "NotAllowedError" && (soundBtn.hidden = false));
  }

  async function measure(): Promise<void> {
    const q = await meter.measure(viewer.connection);
    show(quality, q !== null && remote().length > 0);
    if (q) {
      setText(quality, q === "good" ? "● Good connection" : "● Weak connection");
      quality.className = `media-quality is-${q}`;
    }
  }

  function refresh(): void {
    const tracks = remote();
    const ended = live.state?.status === "ended";
    // Watch while someone else publishes; one connection, kept (renegotiated) when they stop.
    const needed = tracks.length > 0 && !ended;
    if (needed && !viewer.connected && !wanted && live.joinedNow) {
      wanted = true;
      void viewer
        .start()
        .catch((err) => {
          if (!(err instanceof MediaFailure && err.code === "offline")) failed(err);
        })
        .finally(() => {
          wanted = false;
        });
    }
    if (ended && viewer.connected) viewer.stop();
    const received = viewer.tracks();

    // Videos: a screen share large with the cameras beside it; else the first camera large.
    const vids = tracks.filter((t) => t.kind === "video");
    const screens = vids.filter((t) => t.label === "screen");
    const cams = vids.filter((t) => t.label !== "screen");
    const big = screens.length ? screens : cams.slice(0, 1);
    const small = screens.length ? cams : cams.slice(1);
    const keep = new Set(vids.map((t) => t.id));
    for (const [id, v] of videos) {
      if (!keep.has(id)) {
        v.video.srcObject = null;
        v.wrap.remove();
        videos.delete(id);
      }
    }
    const place = (list: MediaTrack[], into: HTMLElement) => {
      const els = list.map((t) => {
        const v = videoFor(t);
        attach(v.video, received.get(t.id));
        const mic = tracks.some((x) => x.publisher === t.publisher && x.label === "mic");
        setText(v.caption, `${nameOf(live, t.publisher)}${t.label === "screen" ? " · screen" : ""}${mic || t.label === "screen" ? "" : " · 🔇 muted"}`);
        return v.wrap;
      });
      if (els.length !== into.children.length || els.some((e, i) => into.children[i] !== e)) into.replaceChildren(...els);
    };
    place(big, main);
    place(small, side);
    for (const v of videos.values()) if (v.video.paused && v.video.srcObject) play(v.video);

    // Voices: one <audio> per microphone.
    const mics = tracks.filter((t) => t.kind === "audio");
    for (const [id, a] of audios) {
      if (!mics.some((t) => t.id === id)) {
        a.srcObject = null;
        a.remove();
        audios.delete(id);
      }
    }
    for (const t of mics) {
      let a = audios.get(t.id);
      if (!a) {
        // Played by play() (not `autoplay`), so a refusal is seen and answered with the sound button.
        a = h("audio", { "data-testid": "stage-audio", "data-track": t.id }) as HTMLAudioElement;
        audios.set(t.id, a);
        voices.appendChild(a);
      }
      attach(a, received.get(t.id));
      if (a.paused && a.srcObject) play(a);
    }
    if (!mics.length) soundBtn.hidden = true;

    // Who is on: names, and who is muted.
    const publishers = [...new Set(tracks.map((t) => t.publisher))];
    setText(
      speakers,
      publishers
        .map((p) => {
          const has = (l: Label) => tracks.some((t) => t.publisher === p && t.label === l);
          return `${nameOf(live, p)}: ${has("mic") ? "🎙 on" : "🔇 muted"}${has("camera") ? "" : " · camera off"}${has("screen") ? " · sharing screen" : ""}`;
        })
        .join(" · "),
    );
    toggleClass(box, "has-video", vids.length > 0);
    toggleClass(box, "has-screen", screens.length > 0);
    toggleClass(box, "has-side", small.length > 0);
    show(box, tracks.length > 0);
    if (tracks.length && timer === null) timer = setInterval(() => void measure(), QUALITY_EVERY);
    if (!tracks.length && timer !== null) {
      clearInterval(timer);
      timer = null;
      quality.hidden = true;
    }
  }

  viewer.onChange(refresh);
  // A reconnect: the server dropped our viewer connection with the old socket; ask again.
  live.onJoined(() => {
    if (viewer.connected) viewer.stop();
    refresh();
  });
  return { el: box, viewer, refresh };
}

// -- publishing controls ------------------------------------------------------------------------------

export interface PublishControls {
  el: HTMLElement;
  preview: HTMLElement;
  publisher: Publisher;
  /** The session, connection or floor may have changed. */
  refresh(): void;
}

/** The trainer's media controls (`mode: "trainer"`: mic, camera, screen) or a learner's while they
 * hold the floor (`"learner"`: mic, and camera if given with it; a button gives the floor back). */
export function createPublishControls(live: Live, mode: "trainer" | "learner"): PublishControls {
  const publisher = new Publisher(live);
  const previewVideo = h("video", { autoplay: true, playsinline: true, "data-testid": "media-preview-video" }) as HTMLVideoElement;
  previewVideo.muted = true;
  previewVideo.srcObject = publisher.preview;
  const preview = h("div", { class: "media-preview", "data-testid": "media-preview", hidden: true }, previewVideo, h("span", { class: "media-caption" }, "You"));

  const act = (fn: () => Promise<void>) => () => void fn().catch(failed);
  const livePill = h("span", { class: "pill pill-onair", "data-testid": "on-air", role: "status", hidden: true }, "● You are live");
  const goBtn: HTMLButtonElement = h("button", {
    type: "button",
    class: "btn btn-primary",
    "data-testid": "media-go",
    onclick: act(() => {
      show(stoppedNote, false);
      return publisher.state.live || publisher.state.busy ? publisher.stop() : publisher.goLive({ mic: true, camera: mode === "trainer" });
    }),
  });
  // Publishing again after the media moved (cluster mode) was refused for good: the tracks stopped.
  // Said in a toast (announced) and kept beside the button until the user starts again.
  const stoppedNote = h("p", { class: "media-stopped", "data-testid": "media-stopped", hidden: true });
  publisher.onStopped((failure) => {
    const again = mode === "trainer" ? "Go live" : "Speak";
    const message = `Your microphone and camera stopped: the server could not take them back (${failure.message}). Press “${again}” to start again.`;
    setText(stoppedNote, message);
    show(stoppedNote, true);
    toast(message, "error");
  });
  const micBtn: HTMLButtonElement = h("button", {
    type: "button",
    class: "btn",
    "data-testid": "media-mic",
    onclick: act(() => publisher.setMic(!publisher.state.mic)),
  });
  const camBtn: HTMLButtonElement = h("button", {
    type: "button",
    class: "btn",
    "data-testid": "media-camera",
    onclick: act(() => publisher.setCamera(!publisher.state.camera)),
  });
  const screenBtn: HTMLButtonElement = h("button", {
    type: "button",
    class: "btn",
    "data-testid": "media-screen",
    onclick: act(() => publisher.setScreen(!publisher.state.screen)),
  });
  const giveBack: HTMLButtonElement = h("button", {
    type: "button",
    class: "btn btn-ghost",
    "data-testid": "floor-return",
    text: "Give the floor back",
    onclick: act(async () => {
      await publisher.stop();
      const ack = await live.send("floor.take", { id: live.you?.id });
      if (!ack.ok) toast(ack.error?.message ?? "That did not work.", "error");
    }),
  });

  const micSel = h("select", { id: `media-mic-device-${mode}`, "data-testid": "media-mic-device" }) as HTMLSelectElement;
  const camSel = h("select", { id: `media-camera-device-${mode}`, "data-testid": "media-camera-device" }) as HTMLSelectElement;
  micSel.addEventListener("change", act(() => publisher.useDevice("mic", micSel.value)));
  camSel.addEventListener("change", act(() => publisher.useDevice("camera", camSel.value)));
  const devices = h(
    "details",
    { class: "media-devices" },
    h("summary", { class: "btn btn-small btn-ghost", "data-testid": "media-devices" }, "Devices"),
    h(
      "div",
      { class: "media-devices-menu" },
      h("label", { for: micSel.id }, "Microphone"),
      micSel,
      h("label", { for: camSel.id }, "Camera"),
      camSel,
    ),
  );
  devices.addEventListener("toggle", () => devices.open && void listDevices());

  async function listDevices(): Promise<void> {
    if (!navigator.mediaDevices?.enumerateDevices) return;
    const all = await navigator.mediaDevices.enumerateDevices();
    const fill = (sel: HTMLSelectElement, kind: MediaDeviceKind, current: string | null, fallback: string) => {
      const list = all.filter((d) => d.kind === kind);
      sel.replaceChildren(...list.map((d, i) => h("option", { value: d.deviceId }, d.label || `${fallback} ${i + 1}`)));
      if (current) sel.value = current;
      sel.disabled = list.length === 0;
    };
    fill(micSel, "audioinput", publisher.state.micDevice, "Microphone");
    fill(camSel, "videoinput", publisher.state.cameraDevice, "Camera");
  }
  navigator.mediaDevices?.addEventListener?.("devicechange", () => devices.open && void listDevices());

  const el = h(
    "div",
    { class: `media-controls media-controls-${mode}`, role: "group", "aria-label": "Your microphone and camera", "data-testid": "media-controls" },
    livePill,
    goBtn,
    micBtn,
    camBtn,
    ...(mode === "trainer" ? [screenBtn] : [giveBack]),
    devices,
    stoppedNote,
  );

  let hadFloor = false;
  function refresh(): void {
    const s = publisher.state;
    const you = live.you?.id ?? "";
    const floor = live.state?.media?.floor?.[you];
    const sessionLive = live.state?.status === "live";
    if (mode === "learner") {
      // The floor given again without the camera: the camera stops, the microphone goes on alone.
      publisher.allow(new Set<Label>(floor ? (floor.camera ? ["mic", "camera"] : ["mic"]) : []));
      if (!floor && hadFloor && (s.live || s.mic || s.camera)) void publisher.stop().catch(() => {});
      if (floor && !hadFloor) toast(floor.camera ? "You have the floor: you may turn on your microphone and camera." : "You have the floor: you may turn on your microphone.");
      hadFloor = !!floor;
    }
    const may = mode === "trainer" ? sessionLive : sessionLive && !!floor;
    show(el, mode === "trainer" ? live.state?.status !== "ended" : may);
    const on = s.live || s.mic || s.camera || s.screen;
    const connected = live.status === "live";
    setText(goBtn, on ? (mode === "trainer" ? "Stop media" : "Stop speaking") : mode === "trainer" ? "Go live" : "Speak");
    setAttr(goBtn, "title", on ? "Stop sending your microphone, camera and screen" : "Send your microphone" + (mode === "trainer" ? " and camera" : ""));
    goBtn.disabled = !connected || !may || s.busy;
    toggleClass(goBtn, "btn-primary", !on);
    toggleClass(goBtn, "btn-danger", on);
    show(livePill, s.live);
    if (s.live) show(stoppedNote, false);
    show(micBtn, on);
    setText(micBtn, s.mic ? "🎙 Mute" : "🔇 Unmute");
    setAttr(micBtn, "aria-pressed", String(!s.mic));
    show(camBtn, on && publisher.allowed.has("camera"));
    setText(camBtn, s.camera ? "📷 Camera off" : "📷 Camera on");
    setAttr(camBtn, "aria-pressed", String(!s.camera));
    show(screenBtn, on && mode === "trainer");
    setText(screenBtn, s.screen ? "🖥 Stop sharing" : "🖥 Share screen");
    setAttr(screenBtn, "aria-pressed", String(s.screen));
    for (const b of [micBtn, camBtn, screenBtn]) b.disabled = s.busy || !connected;
    screenBtn.disabled ||= !navigator.mediaDevices?.getDisplayMedia;
    show(preview, s.camera);
    toggleClass(document.body, "is-on-air", s.live);
    if (live.state?.status === "ended" && on && !s.busy) void publisher.stop().catch(() => {});
  }
  publisher.onChange(() => {
    refresh();
    if (devices.open) void listDevices();
  });
  live.onJoined(() => {
    // A reconnect: the server ended our tracks with the old socket; send them again.
    if (publisher.state.live) void publisher.restart().catch(failed);
    refresh();
  });
  refresh();
  return { el, preview, publisher, refresh };
}
