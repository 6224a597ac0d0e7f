// The live connection: connect with a link or participant token, join, fold the session into the
// shared reducer, resume after a drop with {last_seq, epoch}, and send commands with acks.
// A port of classroom/client.py's join/resume/buffering logic.
import { io, type Socket } from "socket.io-client";
import { apply, fromView, mergeReply, view, type Audience, type State, type WireEvent } from "./reducer";
import { store, toast } from "./dom";

// Refusals of `join` that pass: the page waits and joins again rather than giving up.
const RETRY_JOIN = new Set(["rate_limited", "storage_full", "temporarily_unavailable"]);
// Read-only commands whose replies fold into the state (classroom/core/history.py).
const HISTORY = new Set(["chat.history", "poll.history", "qa.history", "board.page.get"]);

export type Status = "connecting" | "live" | "reconnecting";

export interface You {
  id: string;
  name: string;
  role: Audience;
}

export interface AckError {
  code: string;
  message: string;
}

export interface Ack {
  ok: boolean;
  error?: AckError;
  seq?: number;
  id?: string;
  [key: string]: any;
}

/** What changed: a whole new state (snapshot) or these events, folded in order. */
export interface Update {
  snapshot: boolean;
  events: WireEvent[];
  /** True for events pushed as they happened; false for those recovered by a resume. */
  live: boolean;
  /** A history command whose reply was folded in (older chat, a whiteboard page, …). */
  history?: string;
  /** A large session's presence summary, just received (not part of the event stream). */
  presence?: Presence;
}

/** A large session's coalesced presence (docs/protocol.md, `presence`): at most one a second,
 * instead of every join, leave, hand and reaction of others; reactions counted per emoji since
 * the previous summary. */
export interface Presence {
  learners: number;
  trainers: number;
  hands: number;
  reactions: Record<string, number>;
}

export interface LiveOptions {
  sessionId: string;
  /** The token from the page's link (trainer or learner link token). */
  linkToken: string;
  /** The role this page is for; a saved identity of another role is not reused. */
  role: Audience;
  onUpdate: (u: Update) => void;
  onStatus: (s: Status) => void;
  /** The connection was refused for good (bad link, expired, session gone). */
  onFatal: (err: AckError) => void;
  /** The saved identity no longer works and the link needs a name (learners). */
  onNeedName?: (err?: AckError) => void;
}

const ACK_TIMEOUT = 10_000;
// A connection can die without closing (a frozen server, a dead wifi link): the server pings every
// pingInterval, so silence for longer than that plus SILENCE_SLACK means it is gone. And a command
// not answered within PROBE_AFTER makes the page ask the server something trivial: no answer within
// PROBE_TIMEOUT either, and the connection is dropped at once (socket.io then reconnects and resumes)
// rather than the page saying "Live" until the ping timeout.
const SILENCE_SLACK = 3_000;
const PROBE_AFTER = 3_000;
const PROBE_TIMEOUT = 2_500;
const FATAL = new Set(["invalid_token", "expired_token", "wrong_session", "forbidden", "not_found"]);

export const identityKey = (sessionId: string) => `classcast:${sessionId}`;

export class Live {
  state: State | null = null;
  you: You | null = null;
  /** The STUN/TURN servers the server told us in the join ack (`ice_servers`), for live media. */
  iceServers: RTCIceServer[] = [];
  /** The latest presence summary: set only in a large session (from the join snapshot, then the
   * `presence` events). */
  presence: Presence | null = null;
  status: Status = "connecting";
  private socket: Socket | null = null;
  private fetching = new Set<string>();
  private epoch: string | null = null;
  private token: string;
  private usingSaved: boolean;
  private name: string | null = null;
  private buffer: WireEvent[] | null = null; // events that arrive while a join is in flight
  private joining = false;
  private joinGen = 0;
  private joined = false;
  private closed = false;
  private lastHeard = 0;
  private watchdog: ReturnType<typeof setInterval> | null = null;
  private probing = false;
  private personal: [string, (data: any) => void][] = [];
  private joinedHooks: (() => void)[] = [];

  constructor(private opts: LiveOptions) {
    const saved = store.get(identityKey(opts.sessionId));
    this.usingSaved = !!saved;
    this.token = saved || opts.linkToken;
  }

  /** Whether a saved participant token will be used (a learner then needs no name). */
  get hasIdentity(): boolean {
    return this.usingSaved;
  }

  /** The participant token of this identity (valid for the replay API too). */
  get participantToken(): string | null {
    return this.usingSaved || this.joined ? this.token : null;
  }

  /** A personal event (sent to this socket only, not in the event stream), e.g. `media.offer`;
   * every handler registered for it is called. */
  onPersonal(name: string, fn: (data: any) => void): void {
    this.personal.push([name, fn]);
    this.socket?.on(name, fn);
  }

  /** Called after every successful join (the first, and each one after a reconnect). */
  onJoined(fn: () => void): void {
    this.joinedHooks.push(fn);
  }

  get joinedNow(): boolean {
    return this.joined && !!this.socket?.connected;
  }

  /** Connect and join. A learner joining from the link gives a name. */
  start(name?: string): void {
    if (name !== undefined) this.name = name;
    this.closed = false;
    if (!this.socket) {
      this.socket = io(location.origin, {
        transports: ["websocket"],
        autoConnect: false,
        reconnectionDelay: 500,
        reconnectionDelayMax: 5000,
        auth: (cb) => cb({ token: this.token, session: this.opts.sessionId }),
      });
      this.socket.on("connect", () => {
        this.lastHeard = Date.now();
        void this.join();
      });
      this.socket.io.on("ping", () => (this.lastHeard = Date.now()));
      this.socket.io.on("packet", () => (this.lastHeard = Date.now()));
      this.watchdog = setInterval(() => this.checkSilence(), 1000);
      this.socket.on("event", (e: WireEvent) => this.onEvent(e));
      for (const [name, fn] of this.personal) this.socket.on(name, fn);
      this.socket.on("disconnect", (reason) => this.onDisconnect(reason));
      this.socket.on("connect_error", (err: any) => this.onConnectError(err));
      // Sent just before the server closes this socket (a graceful stop, say): show why. On
      // `draining` the server is going away: socket.io reconnects (with its randomised backoff,
      // so a whole audience does not come back at once) and reaches another server.
      this.socket.on("closing", (e: AckError) => toast(e?.message || "The server closed the connection."));
      this.socket.on("presence", (p: Presence) => {
        this.presence = p;
        this.opts.onUpdate({ snapshot: false, events: [], live: true, presence: p });
      });
    }
    this.setStatus(this.state ? "reconnecting" : "connecting");
    this.socket.connect();
  }

  close(): void {
    this.closed = true;
    if (this.watchdog !== null) clearInterval(this.watchdog);
    this.watchdog = null;
    this.socket?.disconnect();
  }

  /** The session as this participant sees it (the reducer's view). */
  view(): any {
    if (!this.state || !this.you) return null;
    return view(this.state, this.you.role, this.you.id);
  }

  /** Fetch the chat messages older than the oldest one held (a page of 50); false when there
   * are no more, null when it failed. */
  async loadEarlierChat(): Promise<boolean | null> {
    if (!this.state) return null;
    let before = this.state.seq + 1;
    for (const m of this.state.chat.values()) before = Math.min(before, m.seq);
    const ack = await this.send("chat.history", { before, limit: 50 });
    return ack.ok ? !!ack.more : null;
  }

  /** Fetch a whiteboard page the snapshot did not carry (shown when the trainer switches to it). */
  private fetchPage(page: string): void {
    if (this.fetching.has(page)) return;
    this.fetching.add(page);
    void this.send("board.page.get", { page_id: page }).finally(() => this.fetching.delete(page));
  }

  /** Send a command; resolves with its ack, or a local error when not connected or no answer. */
  async send(command: string, payload: Record<string, unknown> = {}): Promise<Ack> {
    const socket = this.socket;
    if (!socket || !socket.connected || !this.joined) {
      return { ok: false, error: { code: "offline", message: "Not connected right now; try again in a moment." } };
    }
    const slow = setTimeout(() => void this.probe(socket), PROBE_AFTER);
    try {
      const ack = await socket.timeout(ACK_TIMEOUT).emitWithAck(command, payload);
      if (ack && typeof ack === "object") {
        // Folded before the next event is handled (acks and events come in one ordered stream).
        if (HISTORY.has(command) && ack.ok && this.state && this.you) {
          mergeReply(this.state, command, ack, this.you.id);
          this.opts.onUpdate({ snapshot: false, events: [], live: false, history: command });
        }
        return ack as Ack;
      }
      return { ok: false, error: { code: "bad_ack", message: "The server sent an unexpected answer." } };
    } catch {
      if (!socket.connected) {
        return { ok: false, error: { code: "offline", message: "The connection was lost; try again once reconnected." } };
      }
      return { ok: false, error: { code: "timeout", message: "The server did not answer in time." } };
    } finally {
      clearTimeout(slow);
    }
  }

  /** Is the server still there? A trivial read-only query; no answer in time drops the connection. */
  private async probe(socket: Socket): Promise<void> {
    if (this.probing || !socket.connected || socket !== this.socket) return;
    this.probing = true;
    try {
      await socket.timeout(PROBE_TIMEOUT).emitWithAck("chat.history", { before: 0, limit: 1 });
    } catch {
      if (socket.connected && !this.closed) this.drop();
    } finally {
      this.probing = false;
    }
  }

  /** No ping from the server for longer than its ping interval (plus slack): the link is dead. */
  private checkSilence(): void {
    const socket = this.socket;
    if (!socket?.connected || this.closed) return;
    const announced: number = (socket.io.engine as any)?._pingInterval ?? -1; // -1 before the handshake
    const interval = announced > 0 ? announced : 25_000;
    if (Date.now() - this.lastHeard > interval + SILENCE_SLACK) this.drop();
  }

  /** Close the dead engine: socket.io reports the disconnect (pending acks fail at once), shows
   * "Reconnecting…" through onDisconnect, and reconnects; the join then resumes from our seq. */
  private drop(): void {
    this.socket?.io.engine?.close();
  }

  // -- internals -------------------------------------------------------------------------------

  private setStatus(s: Status): void {
    if (this.status === s) return;
    this.status = s;
    this.opts.onStatus(s);
  }

  private async join(): Promise<void> {
    const socket = this.socket;
    if (!socket || this.joining) return;
    const gen = ++this.joinGen;
    this.joining = true;
    this.joined = false;
    const payload: Record<string, unknown> = {};
    if (this.state && this.epoch !== null) {
      payload.last_seq = this.state.seq;
      payload.epoch = this.epoch;
    } else if (!this.usingSaved && this.name !== null) {
      payload.name = this.name;
    }
    this.buffer = [];
    let ack: any;
    try {
      ack = await socket.timeout(ACK_TIMEOUT).emitWithAck("join", payload);
    } catch {
      if (gen !== this.joinGen) return; // a later connection has its own join
      // No answer: drop the connection; the manager reconnects and we join again.
      this.joining = false;
      this.buffer = null;
      if (socket.connected) {
        socket.disconnect();
        if (!this.closed) setTimeout(() => socket.connect(), 1000);
      }
      return;
    }
    if (gen !== this.joinGen) return; // the connection this join was for is gone
    this.joining = false;
    if (!ack?.ok) {
      this.buffer = null;
      const err: AckError = ack?.error ?? { code: "internal_error", message: "Joining failed." };
      socket.disconnect();
      if (err.code === "name_required" && this.opts.onNeedName) this.opts.onNeedName(err);
      else if (RETRY_JOIN.has(err.code)) {
        // Too many joins from this address just now, or the disk is full: not the learner's fault
        // and not final; say so and try again shortly.
        toast(err.message);
        this.setStatus("reconnecting");
        if (!this.closed) setTimeout(() => socket.connect(), 5000);
      } else this.opts.onFatal(err);
      return;
    }
    const you = ack.you as You;
    if (you.role !== this.opts.role && this.usingSaved) {
      // A saved identity from another page of this session (same tab): start over from the link.
      this.forgetIdentity();
      socket.disconnect();
      this.state = null;
      if (this.opts.role === "learner" && this.name === null) this.opts.onNeedName?.();
      else socket.connect();
      return;
    }
    this.you = you;
    this.token = ack.token;
    this.usingSaved = true;
    this.epoch = ack.epoch;
    if (Array.isArray(ack.ice_servers)) this.iceServers = ack.ice_servers;
    store.set(identityKey(this.opts.sessionId), ack.token);
    let update: Update;
    if ("snapshot" in ack) {
      this.state = fromView(ack.snapshot, you.id);
      this.presence = ack.snapshot.presence ?? this.presence;
      update = { snapshot: true, events: [], live: false };
    } else {
      const folded: WireEvent[] = [];
      for (const e of ack.events as WireEvent[]) if (this.state && apply(this.state, e)) folded.push(e);
      update = { snapshot: false, events: folded, live: false };
    }
    const buffered = this.buffer ?? [];
    this.buffer = null;
    for (const e of buffered) if (this.state && apply(this.state, e)) update.events.push(e);
    this.joined = true;
    this.setStatus("live");
    this.opts.onUpdate(update);
    for (const fn of this.joinedHooks) fn();
    if (this.state && this.state.unloaded.has(this.state.current)) this.fetchPage(this.state.current);
  }

  private forgetIdentity(): void {
    store.remove(identityKey(this.opts.sessionId));
    this.usingSaved = false;
    this.token = this.opts.linkToken;
  }

  private onEvent(e: WireEvent): void {
    if (this.buffer !== null || !this.state) {
      this.buffer?.push(e);
      return;
    }
    if (apply(this.state, e)) this.opts.onUpdate({ snapshot: false, events: [e], live: true });
    if (e.type === "wb.page.switched" && this.state.unloaded.has(e.data.page)) this.fetchPage(e.data.page);
  }

  private onDisconnect(reason: string): void {
    this.joinGen++; // an answer to a join in flight belongs to the dead connection
    this.joined = false;
    this.joining = false;
    this.buffer = null;
    if (this.closed) return;
    this.setStatus(this.state ? "reconnecting" : "connecting");
    if (reason === "io server disconnect") {
      // The server closed this connection; socket.io does not retry on its own then.
      setTimeout(() => {
        if (!this.closed) this.socket?.connect();
      }, 1000);
    }
  }

  private onConnectError(err: any): void {
    const data: AckError | undefined = err?.data && typeof err.data === "object" ? err.data : undefined;
    if (this.socket?.active) {
      // A network failure: socket.io keeps retrying.
      this.setStatus(this.state ? "reconnecting" : "connecting");
      return;
    }
    // Refused by the server: it will not retry by itself.
    const code = data?.code ?? "connect_failed";
    if (this.usingSaved && FATAL.has(code) && this.token !== this.opts.linkToken) {
      // The saved identity no longer works (expired, server secret rotated…): use the link again.
      this.forgetIdentity();
      this.state = null;
      if (this.opts.role === "learner" && this.name === null) {
        this.opts.onNeedName?.({ code, message: "Your previous visit has expired; please join again." });
        return;
      }
      this.socket?.connect();
      return;
    }
    if (FATAL.has(code)) {
      this.opts.onFatal(data ?? { code, message: String(err?.message ?? "Connection refused") });
      return;
    }
    setTimeout(() => {
      if (!this.closed) this.socket?.connect();
    }, 2000);
  }
}
