// Live media over WebRTC (issue 10; the socket protocol is in docs/protocol.md, "Media"): a
// publisher (one RTCPeerConnection sending the microphone, camera and screen to the server,
// renegotiated with a new offer on the same connection as tracks come and go) and a viewer (one
// RTCPeerConnection the server offers with every live track; `media.offer` renegotiates it).
// Both use the STUN/TURN servers the server sent in the join ack (`Live.iceServers`).
// No UI here: stage.ts draws the stage and the controls.
import type { Ack, Live } from "./live";

export type Label = "mic" | "camera" | "screen";

/** How long to wait for ICE gathering before sending what is there (loopback needs milliseconds;
 * the server also takes trickled candidates, but one SDP with all of them is simpler). */
const GATHER_MS = 3000;

function gathered(pc: RTCPeerConnection): Promise<void> {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, GATHER_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** Run async steps one at a time, in order (negotiations must not interleave). */
function queue() {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(step: () => Promise<T>): Promise<T> => {
    const next = tail.then(step, step);
    tail = next.catch(() => undefined);
    return next;
  };
}

export class MediaFailure extends Error {
  constructor(
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

function check(ack: Ack): Ack {
  if (!ack.ok) throw new MediaFailure(ack.error?.code ?? "media_failed", ack.error?.message ?? "The server refused the media.");
  return ack;
}

// -- publishing -------------------------------------------------------------------------------------

/** After `media.reset`, a refused offer with one of these codes is sent again, up to
 * REPUBLISH_TRIES times, waiting REPUBLISH_BASE_MS, then twice as long each time (0.5 s ... 8 s).
 * `rate_limited` too: the media node's negotiation budget (20 per 10 s per participant, shared by
 * a participant's tabs) refills within the first waits, and giving up would leave the tracks dead.
 * `offline` (the socket down, or lost before the answer) is not a try: the offer is sent again
 * once the page has joined again, however long the reconnect takes. Any other refusal
 * (`forbidden`, `session_ended`, ...) would be refused again: no retry. */
const RETRY_CODES = new Set(["temporarily_unavailable", "timeout", "internal_error", "media_failed", "rate_limited"]);
const REPUBLISH_TRIES = 6;
const REPUBLISH_BASE_MS = 500;
const LABELS: Label[] = ["mic", "camera", "screen"];

export interface PublisherState {
  /** Publishing to the server now (the answer is in). */
  live: boolean;
  busy: boolean;
  mic: boolean; // sending the microphone
  camera: boolean;
  screen: boolean;
  micDevice: string | null;
  cameraDevice: string | null;
}

/** One participant's outgoing media: local tracks, the preview stream, and the connection that
 * sends them. `allowed` limits the labels (a learner with the floor: mic, maybe camera). */
export class Publisher {
  /** What the preview shows: the camera (the screen share is previewed by the stage separately). */
  readonly preview = new MediaStream();
  readonly screenPreview = new MediaStream();
  state: PublisherState = { live: false, busy: false, mic: false, camera: false, screen: false, micDevice: null, cameraDevice: null };
  allowed: Set<Label> = new Set(["mic", "camera", "screen"]);
  private pc: RTCPeerConnection | null = null;
  private tx: Partial<Record<Label, RTCRtpTransceiver>> = {};
  private tracks: Partial<Record<Label, MediaStreamTrack>> = {};
  private serial = queue();
  private listeners: (() => void)[] = [];
  private resets = 0;
  private stopListeners: ((failure: MediaFailure) => void)[] = [];
  /** The labels of the last offer sent (a refusal's cause). */
  private offered: Label[] = [];
  /** Called at the next join (a republish waiting out a reconnect). */
  private rejoinWaiters: (() => void)[] = [];

  constructor(private live: Live) {
    // Cluster mode: the session's media moved to another server; this connection is dead. Send
    // the same tracks again (the server forwards the offer to the session's new media node).
    live.onPersonal("media.reset", () => void this.republish());
    live.onJoined(() => {
      const waiters = this.rejoinWaiters;
      this.rejoinWaiters = [];
      for (const fn of waiters) fn();
    });
  }

  /** Resolves once the page is joined (at once if it is now). */
  private rejoined(): Promise<void> {
    if (this.live.joinedNow) return Promise.resolve();
    return new Promise((resolve) => this.rejoinWaiters.push(resolve));
  }

  /** Publish the same tracks again on a new connection, retrying with backoff while the server
   * cannot take them yet (the new media node still taking the session over, an answer late, the
   * socket reconnecting): a refused offer tears the connection down, and nothing else would
   * send the tracks again. A newer reset, or the tracks stopped, ends the retries. A `forbidden`
   * refusal of an offer with a track the floor no longer allows (the trainer gave it again without
   * the camera meanwhile) is retried too: the next offer leaves that track out. An offer that
   * found the socket down (`offline`) is not a try: it is sent again when the page has joined
   * again. When the retries give up, the tracks stop (the camera light goes off) and `onStopped`
   * listeners hear why, so the controls do not claim to send what nobody receives. */
  private async republish(): Promise<void> {
    const round = ++this.resets;
    let attempt = 0;
    for (;;) {
      try {
        await this.restart(true);
        return;
      } catch (err) {
        this.changed();
        if (round !== this.resets) return;
        const failure = err instanceof MediaFailure ? err : new MediaFailure("media_failed", String((err as any)?.message ?? err));
        if (failure.code === "offline") {
          await this.rejoined();
          if (round !== this.resets) return;
          continue;
        }
        const narrowed = failure.code === "forbidden" && this.offered.some((l) => !this.allowed.has(l));
        if (attempt + 1 >= REPUBLISH_TRIES || !(RETRY_CODES.has(failure.code) || narrowed)) {
          await this.giveUp(round, failure);
          return;
        }
      }
      await new Promise((r) => setTimeout(r, REPUBLISH_BASE_MS * 2 ** attempt));
      attempt++;
      if (round !== this.resets) return;
    }
  }

  /** The republish of `round` gave up: stop the tracks, unless something else published them
   * meanwhile (or stopped them, or a newer reset took over), and say so. */
  private async giveUp(round: number, failure: MediaFailure): Promise<void> {
    let stopped = false;
    await this.step(async () => {
      if (round !== this.resets || this.state.live || !this.sending()) return;
      for (const label of LABELS) this.close(label);
      await this.teardown(true);
      stopped = true;
    }).catch(() => undefined);
    if (stopped) for (const fn of this.stopListeners) fn(failure);
  }

  /** Called when the tracks stopped by themselves: publishing them again after `media.reset` was
   * refused for good (the error says why). */
  onStopped(fn: (failure: MediaFailure) => void): void {
    this.stopListeners.push(fn);
  }

  /** What may be sent now (a learner's floor). Held tracks it no longer covers stop, and the rest
   * is published again on a new connection: the server ended all of this participant's tracks
   * when the floor stopped covering one of them. */
  allow(labels: Set<Label>): void {
    const same = labels.size === this.allowed.size && [...labels].every((l) => this.allowed.has(l));
    this.allowed = labels;
    if (same || !this.outside().length) return;
    void this.step(async () => {
      if (!this.outside().length) return;
      for (const label of this.outside()) this.close(label);
      // Not published now (a republish waiting to try again): its next offer sends what is left.
      if (!this.state.live && !this.pc) return;
      await this.teardown(false);
      await this.negotiate();
    }).catch(() => undefined);
  }

  /** Held tracks the floor does not cover now. */
  private outside(): Label[] {
    return LABELS.filter((l) => this.tracks[l] && !this.allowed.has(l));
  }

  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  private changed(): void {
    for (const fn of this.listeners) fn();
  }

  /** Start sending what is asked for (mic and/or camera); getUserMedia asks for permission. */
  goLive(want: { mic: boolean; camera: boolean }): Promise<void> {
    return this.step(async () => {
      if (want.mic && this.allowed.has("mic") && !this.tracks.mic) await this.open("mic");
      if (want.camera && this.allowed.has("camera") && !this.tracks.camera) await this.open("camera");
      await this.negotiate();
    });
  }

  /** Stop everything: the server ends the tracks; the camera light goes off. */
  stop(): Promise<void> {
    this.resets++;
    return this.step(async () => {
      for (const label of ["mic", "camera", "screen"] as Label[]) this.close(label);
      await this.teardown(true);
    });
  }

  setMic(on: boolean): Promise<void> {
    return this.toggle("mic", on);
  }

  setCamera(on: boolean): Promise<void> {
    return this.toggle("camera", on);
  }

  setScreen(on: boolean): Promise<void> {
    return this.toggle("screen", on);
  }

  /** Switch the microphone or camera to another device: replaceTrack, no renegotiation. */
  useDevice(label: "mic" | "camera", deviceId: string): Promise<void> {
    return this.step(async () => {
      if (label === "mic") this.state.micDevice = deviceId;
      else this.state.cameraDevice = deviceId;
      if (!this.tracks[label]) return;
      const old = this.tracks[label]!;
      const track = await this.capture(label);
      const sender = this.tx[label]?.sender;
      if (sender) await sender.replaceTrack(track);
      this.swapPreview(label, old, track);
      old.stop();
      this.tracks[label] = track;
    });
  }

  /** The page reconnected: the server dropped our connection with the socket; publish again on a
   * new one with the same tracks. */
  restart(again = false): Promise<void> {
    return this.step(async () => {
      // `again`: a retry after a refused offer (no connection left), while tracks are still on.
      if (!this.state.live && !this.pc && !(again && this.sending())) return;
      await this.teardown(false);
      await this.negotiate();
    });
  }

  private toggle(label: Label, on: boolean): Promise<void> {
    return this.step(async () => {
      if (on === !!this.tracks[label]) return;
      if (on) {
        if (!this.allowed.has(label)) throw new MediaFailure("forbidden", "You may not send this now.");
        await this.open(label);
      } else this.close(label);
      await this.negotiate();
    });
  }

  private sending(): boolean {
    return !!(this.tracks.mic || this.tracks.camera || this.tracks.screen);
  }

  private step(fn: () => Promise<void>): Promise<void> {
    return this.serial(async () => {
      this.state.busy = true;
      this.changed();
      try {
        await fn();
      } finally {
        this.state.busy = false;
        this.sync();
      }
    });
  }

  private sync(): void {
    this.state.mic = !!this.tracks.mic;
    this.state.camera = !!this.tracks.camera;
    this.state.screen = !!this.tracks.screen;
    this.changed();
  }

  private async capture(label: Label): Promise<MediaStreamTrack> {
    if (label === "screen") {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
      return stream.getVideoTracks()[0];
    }
    const device = label === "mic" ? this.state.micDevice : this.state.cameraDevice;
    const constraints: MediaStreamConstraints =
      label === "mic"
        ? { audio: device ? { deviceId: { exact: device } } : true }
        : { video: { ...(device ? { deviceId: { exact: device } } : {}), width: { ideal: 1280 }, height: { ideal: 720 } } };
    const stream = await navigator.mediaDevices.getUserMedia(constraints);
    const track = label === "mic" ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
    const id = track.getSettings().deviceId;
    if (id) {
      if (label === "mic") this.state.micDevice = id;
      else this.state.cameraDevice = id;
    }
    return track;
  }

  private async open(label: Label): Promise<void> {
    const track = await this.capture(label);
    if (label === "screen") {
      track.contentHint = "detail";
      // The browser's own "Stop sharing" ends the track: stop the share as the button would.
      track.addEventListener("ended", () => {
        if (this.tracks.screen === track) void this.setScreen(false);
      });
    }
    this.tracks[label] = track;
    this.swapPreview(label, null, track);
    const tx = this.tx[label];
    if (tx && this.pc) {
      await tx.sender.replaceTrack(track);
      tx.direction = "sendonly";
    }
  }

  private close(label: Label): void {
    const track = this.tracks[label];
    if (!track) return;
    delete this.tracks[label];
    this.swapPreview(label, track, null);
    track.stop();
    const tx = this.tx[label];
    if (tx && this.pc) {
      void tx.sender.replaceTrack(null);
      tx.direction = "inactive";
    }
  }

  private swapPreview(label: Label, old: MediaStreamTrack | null, track: MediaStreamTrack | null): void {
    if (label === "mic") return;
    const stream = label === "camera" ? this.preview : this.screenPreview;
    if (old) stream.removeTrack(old);
    if (track) stream.addTrack(track);
  }

  private async teardown(tell: boolean): Promise<void> {
    const pc = this.pc;
    this.pc = null;
    this.tx = {};
    this.state.live = false;
    pc?.close();
    if (tell && pc) await this.live.send("media.unpublish", {});
  }

  /** Offer what is sent now (a new connection, or a new offer on the same one) and apply the
   * server's answer. Nothing left to send: unpublish. */
  private async negotiate(): Promise<void> {
    for (const label of this.outside()) this.close(label); // never offer what the floor does not allow
    const labels = LABELS.filter((l) => this.tracks[l]);
    if (!labels.length) {
      await this.teardown(true);
      return;
    }
    if (!this.pc) {
      this.pc = new RTCPeerConnection({ iceServers: this.live.iceServers });
      this.tx = {};
    }
    const pc = this.pc;
    for (const label of labels) {
      if (!this.tx[label]) {
        this.tx[label] = pc.addTransceiver(this.tracks[label]!, { direction: "sendonly" });
      }
    }
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await gathered(pc);
    const byMid: Record<string, Label> = {};
    for (const label of labels) {
      const mid = this.tx[label]!.mid;
      if (mid !== null) byMid[mid] = label;
    }
    let ack: Ack;
    this.offered = labels;
    try {
      ack = check(await this.live.send("media.publish", { sdp: pc.localDescription!.sdp, labels: byMid }));
    } catch (err) {
      // Refused: this connection is unusable (its offer is pending); start over next time.
      if (this.pc === pc) await this.teardown(false);
      throw err;
    }
    if (this.pc !== pc) return;
    await pc.setRemoteDescription({ type: "answer", sdp: ack.sdp });
    this.state.live = true;
  }
}

// -- viewing ----------------------------------------------------------------------------------------

/** The server's connection to this page carrying every live track. `tracks()` maps track ids
 * ("<publisher>:<label>") to the received MediaStreamTracks. */
export class Viewer {
  private pc: RTCPeerConnection | null = null;
  private mids: Record<string, string> = {};
  private serial = queue();
  private listeners: (() => void)[] = [];
  private gen = 0;

  constructor(private live: Live) {
    live.onPersonal("media.offer", (data: any) => {
      if (!data || typeof data.sdp !== "string") return;
      const gen = this.gen;
      this.serial(() => this.renegotiate(data.sdp, data.mids ?? {})).catch(() => {
        // Not answered (refused, offline, too fast): this connection is stuck mid-negotiation;
        // ask for a fresh one shortly (a reconnect asks by itself).
        setTimeout(() => {
          if (gen === this.gen && this.pc) void this.start().catch(() => {});
        }, 2000);
      });
    });
    // Cluster mode: the session's media moved to another server; this connection is dead. The
    // stage asks for a new one once tracks are live again (`media.tracks`).
    live.onPersonal("media.reset", () => {
      if (this.pc) this.stop();
    });
  }

  get connected(): boolean {
    return !!this.pc;
  }

  get connection(): RTCPeerConnection | null {
    return this.pc;
  }

  onChange(fn: () => void): void {
    this.listeners.push(fn);
  }

  private changed(): void {
    for (const fn of this.listeners) fn();
  }

  /** Received tracks by track id. */
  tracks(): Map<string, MediaStreamTrack> {
    const out = new Map<string, MediaStreamTrack>();
    if (!this.pc) return out;
    for (const t of this.pc.getTransceivers()) {
      const id = t.mid !== null ? this.mids[t.mid] : undefined;
      if (id) out.set(id, t.receiver.track);
    }
    return out;
  }

  /** Ask the server for a connection (again: a reconnect starts over). */
  start(): Promise<void> {
    const gen = ++this.gen;
    return this.serial(async () => {
      if (gen !== this.gen) return;
      this.close();
      const ack = check(await this.live.send("media.view", {}));
      if (gen !== this.gen) return;
      const pc = new RTCPeerConnection({ iceServers: this.live.iceServers });
      this.pc = pc;
      pc.addEventListener("track", () => this.changed());
      pc.addEventListener("connectionstatechange", () => {
        if (pc.connectionState === "failed" && this.pc === pc) {
          this.close();
          this.changed();
        }
      });
      await this.answer(pc, ack.sdp, ack.mids ?? {});
    });
  }

  stop(): void {
    this.gen++;
    this.close();
    this.changed();
  }

  private close(): void {
    this.pc?.close();
    this.pc = null;
    this.mids = {};
  }

  private async renegotiate(sdp: string, mids: Record<string, string>): Promise<void> {
    if (!this.pc) return;
    await this.answer(this.pc, sdp, mids);
  }

  private async answer(pc: RTCPeerConnection, sdp: string, mids: Record<string, string>): Promise<void> {
    await pc.setRemoteDescription({ type: "offer", sdp });
    this.mids = { ...mids };
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await gathered(pc);
    if (this.pc !== pc) return;
    check(await this.live.send("media.answer", { sdp: pc.localDescription!.sdp }));
    this.changed();
  }
}

/** Connection quality from the viewer's inbound RTP stats over the last interval. */
export class Quality {
  private last = new Map<string, { lost: number; received: number }>();

  async measure(pc: RTCPeerConnection | null): Promise<"good" | "weak" | null> {
    if (!pc) return null;
    let lost = 0;
    let received = 0;
    let jitter = 0;
    const report = await pc.getStats();
    report.forEach((s: any) => {
      if (s.type !== "inbound-rtp") return;
      const prev = this.last.get(s.id) ?? { lost: 0, received: 0 };
      const now = { lost: s.packetsLost ?? 0, received: s.packetsReceived ?? 0 };
      this.last.set(s.id, now);
      lost += Math.max(0, now.lost - prev.lost);
      received += Math.max(0, now.received - prev.received);
      if (s.kind === "audio" && typeof s.jitter === "number") jitter = Math.max(jitter, s.jitter);
    });
    if (!received && !lost) return null;
    const loss = lost / Math.max(1, lost + received);
    return loss > 0.03 || jitter > 0.05 ? "weak" : "good";
  }
}
