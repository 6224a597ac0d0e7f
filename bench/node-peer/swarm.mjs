// The scale benchmark's load generator (bench/scale/harness.py): one process per role, driven by
// the harness through JSON lines on stdin, answering JSON lines on stdout.
//
//   node swarm.mjs '{"role": "learners", "urls": [...], "token", "session", "count", "offset"}'
//   node swarm.mjs '{"role": "trainer", "urls": [...], "token", "session"}'
//
// Learners are raw engine.io 4 / socket.io 5 clients over `ws` (websocket only, no compression):
// tens of thousands fit in a few processes, and a frame that is not one of the counted chat
// messages (presence, say) costs a byte search, not a JSON parse. Learner i connects to
// urls[i % urls.length], so learners are spread round-robin over the servers' ports. The
// trainer is one socket.io-client 4.8 connection to urls[0].
//
// Latency: the trainer stamps each chat text with CLOCK_MONOTONIC (process.hrtime, the same
// clock in every process of the machine) in µs; a learner subtracts it on arrival.
//
// Learner commands: {"cmd": "join", "spread_s", "limit_s"} connects and joins every learner, each
// at a random moment within spread_s; answers {"joined", "failed", "errors", "join_ms": [...]}
// (time from opening the websocket to the join ack). {"cmd": "round", "id", "messages"} starts
// counting the chat of round `id`; answers {"drained": id} once every learner has every message.
// {"cmd": "stats", "id"} answers {"got", "dupes", "stale", "hist": {bucket: count}} (0.1 ms
// buckets), "last_us" (CLOCK_MONOTONIC of the round's last delivery) and "dropped" (learners whose
// connection the server closed after their join, so far). {"cmd": "quit"} closes everything.
// Trainer commands: {"cmd": "send", "id", "rate", "seconds"} sends rate × seconds chat messages
// paced evenly; answers {"sent", "acked", "errors", "ack_ms_p50"} once every ack is in.

import { createInterface } from "node:readline";
import WebSocket from "ws";
import { io } from "socket.io-client";

const cfg = JSON.parse(process.argv[2]);
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const reply = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const log = (...a) => process.stderr.write(`[swarm ${cfg.role} ${cfg.offset ?? ""}] ${a.join(" ")}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// -- learners -------------------------------------------------------------------------------------

const TEXT = Buffer.from('"text":"fo ');
const learners = [];
let round = null; // {id, messages, counts: Int32Array, got, dupes, hist: Map, expect, drained}
let stale = 0;
let joinedCount = 0;
let dropped = 0; // learners whose connection closed after they joined (a server dropping them)
// Where each learner not yet settled is (by index): "tcp" (websocket opening), "open" (engine.io
// open received, socket.io connect sent), "join" (join sent), "retry" (waiting to retry). The
// progress line counts them, so a storm that stalls says at which step.
const phase = new Map();
const retryErrors = {}; // why connections were retried, by error

function onChat(buf, at) {
  // `"text":"fo <round> <k> <µs>"`: parse the three numbers by hand.
  let i = at + TEXT.length;
  const num = () => {
    let v = 0;
    for (let c = buf[i]; c >= 48 && c <= 57; c = buf[++i]) v = v * 10 + (c - 48);
    i++;
    return v;
  };
  const r = num(), k = num(), ts = num();
  const cur = round;
  if (!cur || cur.id !== r || k >= cur.counts.length) { stale++; return; }
  const c = ++cur.counts[k];
  if (c > cfg.count) { cur.dupes++; return; }
  cur.got++;
  const t = nowUs();
  cur.lastUs = t;
  const bucket = Math.floor((t - ts) / 100); // 0.1 ms
  cur.hist.set(bucket, (cur.hist.get(bucket) || 0) + 1);
  if (cur.got === cur.expect && !cur.drained) { cur.drained = true; reply({ drained: cur.id }); }
}

// One learner: connect, join; a connection that fails before the join ack is retried, as
// socket.io-client's reconnection does (1 s doubling up to 5 s, ± 50 %), until limitMs from the
// first attempt, which the join time counts from. An attempt that has not reached socket.io's
// "connected" within CONNECT_TIMEOUT_MS is given up and retried, as socket.io-client's `timeout`
// option does: without it, a connection the server's kernel dropped from a full accept queue sits
// in TCP's retransmission backoff (minutes) while the server is idle. socket.io-client's default
// is 20 s; on a shared 2-core machine a server's accept queue (2,048) can take longer than that to
// drain during a storm, and every learner then gives up, retries and queues again (a retry storm
// that never ends): 60 s bounds TCP's backoff without measuring that instead of the server.
const CONNECT_TIMEOUT_MS = 60000;
const retryDelay = (retries) => Math.min(1000 * 2 ** (retries - 1), 5000) * (0.5 + Math.random());
function learner(i, limitMs) {
  return new Promise((resolve) => {
    const base = cfg.urls[i % cfg.urls.length];
    const t0 = performance.now();
    let retries = 0, lastErr = null, done = false, ws = null;
    const finish = (err) => {
      if (done) return;
      done = true;
      phase.delete(i);
      clearTimeout(timer);
      resolve(err ? { err, retries } : { ms: performance.now() - t0, retries });
    };
    const timer = setTimeout(() => { finish(lastErr ? `timeout after ${lastErr}` : "timeout"); ws?.terminate(); }, limitMs);
    const retry = (err) => {
      if (done) return;
      lastErr = err;
      retries++;
      const key = String(err).slice(0, 80);
      retryErrors[key] = (retryErrors[key] || 0) + 1;
      phase.set(i, "retry");
      setTimeout(attempt, retryDelay(retries));
    };
    const attempt = () => { if (!done) ws = connectOnce(i, base, limitMs, finish, retry); };
    attempt();
  });
}

function connectOnce(i, base, limitMs, finish, retry) {
  let joined = false, failed = false;
  const fail = (err) => {
    clearTimeout(connectTimer);
    if (!joined && !failed) { failed = true; ws.terminate(); retry(err); }
  };
  const connectTimer = setTimeout(() => fail("connect timeout"), Math.min(CONNECT_TIMEOUT_MS, limitMs));
  phase.set(i, "tcp");
  const ws = new WebSocket(`${base.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`, {
    perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: limitMs,
  });
  ws.on("message", (buf) => {
    const b0 = buf[0];
    if (b0 === 52 /* 4: message */) {
      const b1 = buf[1];
      if (b1 === 50 /* 2: event */) {
        const at = buf.indexOf(TEXT);
        if (at >= 0) onChat(buf, at);
      } else if (b1 === 51 /* 3: ack, of our join */) {
        joined = true;
        finish(buf.includes('"ok":true') ? null : `join refused: ${buf.toString().slice(0, 120)}`);
      } else if (b1 === 48 /* 0: connected */) {
        clearTimeout(connectTimer);
        phase.set(i, "join");
        ws.send(`420["join",{"name":"Learner ${i}"}]`);
      } else if (b1 === 52 /* 4: connect error */) {
        finish(`connect_error: ${buf.toString().slice(2, 120)}`);
      }
    } else if (b0 === 50 /* 2: ping */) {
      ws.send("3");
    } else if (b0 === 48 /* 0: open */) {
      phase.set(i, "open");
      ws.send(`40${JSON.stringify({ token: cfg.token, session: cfg.session })}`);
    }
  });
  ws.on("error", (e) => fail(`ws error: ${e.message}`));
  ws.on("close", () => { if (joined) dropped++; else fail("closed"); });
  learners.push(ws);
  return ws;
}

async function join({ spread_s = 5, limit_s = 120 }) {
  let settled = 0;
  const t0 = performance.now();
  const progress = setInterval(() => {
    const at = {};
    for (const p of phase.values()) at[p] = (at[p] || 0) + 1;
    log(`${settled}/${cfg.count} settled after ${((performance.now() - t0) / 1000).toFixed(0)} s; unsettled at ${JSON.stringify(at)}`);
  }, 15000);
  const results = await Promise.all(
    Array.from({ length: cfg.count }, (_, j) =>
      sleep(Math.random() * spread_s * 1000).then(() => learner(cfg.offset + j, limit_s * 1000)).then((r) => { settled++; return r; })),
  );
  clearInterval(progress);
  const errors = {};
  const joinMs = [];
  let retries = 0;
  for (const r of results) {
    retries += r.retries;
    if (r.err) errors[r.err.slice(0, 80)] = (errors[r.err.slice(0, 80)] || 0) + 1;
    else joinMs.push(Math.round(r.ms * 100) / 100);
  }
  joinedCount = joinMs.length;
  return { joined: joinMs.length, failed: cfg.count - joinMs.length, errors, retries, retry_errors: retryErrors, join_ms: joinMs };
}

// -- trainer --------------------------------------------------------------------------------------

let trainer = null;

async function trainerJoin() {
  const u = new URL(cfg.urls[0]);
  trainer = io(`${u.protocol}//${u.host}`, {
    transports: ["websocket"], forceNew: true, reconnection: false, timeout: 30000,
    auth: { token: cfg.token, session: cfg.session }, perMessageDeflate: false,
  });
  await new Promise((resolve, reject) => {
    trainer.once("connect", resolve);
    trainer.once("connect_error", (e) => reject(new Error(`trainer connect_error: ${e.message}`)));
  });
  const ack = await trainer.timeout(30000).emitWithAck("join", { name: "Trainer" });
  if (!ack.ok) throw new Error(`trainer join: ${JSON.stringify(ack.error)}`);
  const start = await trainer.timeout(30000).emitWithAck("session.start", {});
  if (!start.ok && start.error?.code !== "already_live") throw new Error(`session.start: ${JSON.stringify(start.error)}`);
}

async function send({ id, rate, seconds, drain_s = 60 }) {
  // A server that fell far behind (a long join storm) may have dropped the trainer on a ping
  // timeout: join again, as a trainer's browser would reconnect.
  let rejoined = false;
  if (!trainer.connected) {
    trainer.disconnect();
    await trainerJoin();
    rejoined = true;
  }
  const total = Math.round(rate * seconds);
  const t0 = performance.now();
  const errors = {};
  const acks = [];
  const pending = [];
  for (let k = 0; k < total; k++) {
    const wait = t0 + (k * 1000) / rate - performance.now();
    if (wait > 1) await sleep(wait);
    const sentAt = performance.now();
    pending.push(
      trainer.timeout(drain_s * 1000).emitWithAck("chat.send", { text: `fo ${id} ${k} ${nowUs()}` }).then(
        (a) => { if (a.ok) acks.push(performance.now() - sentAt); else errors[a.error?.code] = (errors[a.error?.code] || 0) + 1; },
        () => { errors.ack_timeout = (errors.ack_timeout || 0) + 1; },
      ),
    );
  }
  await Promise.all(pending);
  acks.sort((a, b) => a - b);
  return { sent: total, acked: acks.length, errors, rejoined, ack_ms_p50: acks.length ? acks[Math.floor(acks.length / 2)] : null };
}

// -- commands -------------------------------------------------------------------------------------

async function handle(msg) {
  switch (msg.cmd) {
    case "join":
      if (cfg.role === "trainer") { await trainerJoin(); return { joined: 1 }; }
      return join(msg);
    case "round":
      round = {
        id: msg.id, counts: new Int32Array(msg.messages), got: 0, dupes: 0, hist: new Map(),
        expect: msg.messages * (joinedCount - dropped), drained: false, lastUs: 0, droppedBefore: dropped,
      };
      return { ready: msg.id };
    case "stats": {
      const cur = round;
      round = null;
      return {
        got: cur?.got ?? 0, dupes: cur?.dupes ?? 0, stale, hist: Object.fromEntries(cur?.hist ?? []),
        last_us: cur?.lastUs ?? 0, dropped, dropped_during: dropped - (cur?.droppedBefore ?? dropped),
      };
    }
    case "send":
      return send(msg);
    case "quit":
      for (const ws of learners) ws.terminate();
      if (trainer) trainer.disconnect();
      setTimeout(() => process.exit(0), 50);
      return { bye: true };
    default:
      return { error: `unknown command ${msg.cmd}` };
  }
}

const lines = createInterface({ input: process.stdin });
lines.on("line", async (line) => {
  let msg;
  try { msg = JSON.parse(line); } catch { return; }
  try {
    reply({ re: msg.cmd, ...(await handle(msg)) });
  } catch (e) {
    reply({ re: msg.cmd, error: String(e?.stack || e) });
  }
});
lines.on("close", () => process.exit(0));
process.on("uncaughtException", (e) => { log(e?.stack || e); reply({ error: String(e?.stack || e) }); });
