// Fan-out load generator: one trainer and N learners over socket.io-client 4.8 (websocket only,
// one engine.io connection per participant), driving a Classcast server or the Node peer through
// the same protocol subset. Started by bench/fanout/harness.py, pinned to its own core:
//
//   node generator.mjs '<json config>'     → one JSON line of results on stdout, progress on stderr
//
// Config: {server, server_pid, clk_tck, trainer_url, join_url, n, deflate, steps: [...], gc_url,
//          connect_concurrency, rate: {...}, max: {...}, vote: {...}, join: {...}, timeout_s}
// Steps: "memory" (RSS per idle learner), "rate" (trainer chat at a fixed rate), "max" (trainer
// chat windowed on complete delivery), "vote" (vote storm), "join" (join storm on a prepared
// session). Every wait is bounded; the whole run ends by timeout_s.
//
// Latency: the trainer stamps each chat text with performance.now() of this process and the
// learners (same process, same clock) subtract it on arrival.

import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { io } from "socket.io-client";

const cfg = JSON.parse(process.argv[2]);
const N = cfg.n;
const CLK = cfg.clk_tck || 100;
const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => process.stderr.write(`[gen ${cfg.server} n=${N}] ${a.join(" ")}\n`);

const hardStop = setTimeout(() => {
  process.stdout.write(JSON.stringify({ error: `generator timed out after ${cfg.timeout_s} s`, partial: out }) + "\n");
  process.exit(3);
}, (cfg.timeout_s || 600) * 1000);
hardStop.unref();

// -- /proc ----------------------------------------------------------------------------------------

function cpuTimes(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // f[0] is field 3 (state)
  return { user: Number(f[11]) / CLK, sys: Number(f[12]) / CLK }; // utime, stime (fields 14, 15)
}
function cpuSeconds(pid) {
  const t = cpuTimes(pid);
  return t.user + t.sys;
}

function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
}

const server = cfg.server_pid;
// Busy CPU seconds of the whole machine (every core), to see anything else competing.
function machineBusy() {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / CLK; // user nice system irq softirq steal
}
const mark = () => {
  const srv = cpuTimes(server);
  return { t: now(), srv: srv.user + srv.sys, srvSys: srv.sys, gen: cpuSeconds("self"), all: machineBusy() };
};
function span(a, b) {
  const wall = (b.t - a.t) / 1000;
  const server_cpu_s = b.srv - a.srv, gen_cpu_s = b.gen - a.gen;
  // Cores' worth of CPU used by neither (other processes, interrupts accounted elsewhere).
  const other_cores = Math.max(0, b.all - a.all - server_cpu_s - gen_cpu_s) / wall;
  return { wall_s: wall, server_cpu_s, server_sys_s: b.srvSys - a.srvSys, gen_cpu_s, other_cores };
}

// Wait until the server and this generator have each used under `frac` of a core over a 300 ms
// window: queued fan-out done and received (a backlog can sit in either process).
async function waitQuiet(frac = 0.1, limitS = 60) {
  const end = now() + limitS * 1000;
  let prev = mark();
  while (now() < end) {
    await sleep(300);
    const cur = mark();
    const s = span(prev, cur);
    if (s.server_cpu_s / s.wall_s < frac && s.gen_cpu_s / s.wall_s < frac) return true;
    prev = cur;
  }
  return false;
}

function pct(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.round((p / 100) * (sorted.length - 1)))];
}

function summary(values) {
  const a = Float64Array.from(values).sort();
  return { p50: pct(a, 50), p99: pct(a, 99), max: a.length ? a[a.length - 1] : null, count: a.length };
}

// -- connections ----------------------------------------------------------------------------------

function parseLink(link) {
  const u = new URL(link);
  const parts = u.pathname.split("/").filter(Boolean);
  return { base: `${u.protocol}//${u.host}`, token: u.searchParams.get("token"), session: parts[0] === "s" ? parts[1] : undefined };
}

const trainerLink = parseLink(cfg.trainer_url);
const joinLink = parseLink(cfg.join_url);
let extensions = null;

function open(link, timeoutMs = 30000) {
  return io(link.base, {
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    timeout: timeoutMs,
    auth: { token: link.token, session: link.session },
    // Browsers offer permessage-deflate; whether the server accepts it is its own choice.
    perMessageDeflate: cfg.deflate ? { threshold: 1024 } : false,
  });
}

function connected(sock, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("connect timeout")), timeoutMs);
    sock.once("connect", () => { clearTimeout(timer); resolve(); });
    sock.once("connect_error", (e) => { clearTimeout(timer); reject(new Error(`connect_error: ${e.message}`)); });
  });
}

async function joinAs(link, name, timeoutMs = 30000) {
  const sock = open(link, timeoutMs);
  await connected(sock, timeoutMs);
  const ack = await sock.timeout(timeoutMs).emitWithAck("join", { name });
  if (!ack.ok) throw new Error(`join refused: ${JSON.stringify(ack.error)}`);
  if (extensions === null) extensions = sock.io.engine.transport.ws?.extensions ?? "";
  return { sock, ack };
}

// The chat a round is counting: learners record each of its messages they receive.
let round = null;
let stale = 0; // chat deliveries from a round already closed (late arrivals)
let otherEvents = 0;

function onLearnerEvent(e) {
  if (e.type !== "chat.message") { otherEvents++; return; }
  const text = e.data.text;
  if (text.charCodeAt(0) !== 102 || text.charCodeAt(1) !== 111) { otherEvents++; return; } // "fo"
  const t = now();
  const a = text.indexOf(" ", 3), b = text.indexOf(" ", a + 1);
  const r = +text.slice(3, a), k = +text.slice(a + 1, b), ts = +text.slice(b + 1);
  const cur = round;
  if (!cur || r !== cur.id) { stale++; return; }
  cur.got++;
  cur.lat.push(t - ts);
  cur.lastDelivery = t;
  const c = ++cur.counts[k];
  if (c === 1) cur.first.push(t - ts);
  if (c === N) { cur.full.push(t - ts); cur.onComplete(k); }
  else if (c > N) cur.dupes++;
}

class Growable {
  constructor(n = 1 << 16) { this.a = new Float64Array(n); this.length = 0; }
  push(v) {
    if (this.length === this.a.length) { const b = new Float64Array(this.a.length * 2); b.set(this.a); this.a = b; }
    this.a[this.length++] = v;
  }
  sorted() { return this.a.slice(0, this.length).sort(); }
}

let trainer = null;
const learners = [];
const out = { server: cfg.server, n: N, generator_pid: process.pid, deflate_offered: Boolean(cfg.deflate) };

async function connectLearners(n, concurrency) {
  const t0 = now();
  let next = 0, failed = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      try {
        const { sock } = await joinAs(joinLink, `Learner ${i}`);
        sock.on("event", onLearnerEvent);
        learners.push(sock);
      } catch (e) {
        failed++;
        if (failed <= 3) log(`learner ${i}: ${e.message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return { connected: learners.length, failed, connect_s: (now() - t0) / 1000 };
}

async function startTrainer() {
  const { sock } = await joinAs(trainerLink, "Trainer");
  trainer = sock;
  const ack = await trainer.timeout(10000).emitWithAck("session.start", {});
  if (!ack.ok && ack.error?.code !== "already_live") throw new Error(`session.start: ${JSON.stringify(ack.error)}`);
  return sock;
}

// -- fan-out rounds -------------------------------------------------------------------------------

let roundIds = 0;

// One counted round of trainer chat. mode "rate": `rate` messages/s for `seconds`; mode "max": keep
// `window` messages in flight, a message leaving the window once every learner has it.
async function chatRound({ mode, rate = 20, seconds = 3, window = 8, maxRate = 0, drainS = 30 }) {
  const cap = Math.ceil((mode === "rate" ? rate : maxRate || 5000) * seconds) + window + 16;
  const cur = {
    id: ++roundIds, counts: new Int32Array(cap), lat: new Growable(), got: 0, dupes: 0,
    first: new Growable(1024), full: new Growable(1024), acks: new Growable(1024),
    sent: 0, acked: 0, failed: 0, complete: 0, lastDelivery: 0, ackErrors: {}, onComplete: null,
  };
  const failedK = new Set();
  let finish;
  const finished = new Promise((r) => (finish = r));
  const settled = () => cur.complete + cur.failed;
  let sendingDone = false;
  const checkDone = () => { if (sendingDone && settled() === cur.sent) finish(); };

  const send = (k) => {
    if (k >= cur.counts.length) { const c = new Int32Array(cur.counts.length * 2); c.set(cur.counts); cur.counts = c; }
    cur.sent++;
    const t0 = now();
    trainer.timeout(drainS * 1000).emit("chat.send", { text: `fo ${cur.id} ${k} ${t0.toFixed(3)}` }, (err, ack) => {
      if (!err && ack.ok) { cur.acked++; cur.acks.push(now() - t0); return; }
      const code = err ? "ack_timeout" : ack.error?.code;
      cur.ackErrors[code] = (cur.ackErrors[code] || 0) + 1;
      if (!err) { cur.failed++; failedK.add(k); afterSettle(); }
    });
  };

  round = cur;
  const start = mark();
  const endSend = start.t + seconds * 1000;
  let afterSettle = checkDone;

  if (mode === "rate") {
    cur.onComplete = () => { cur.complete++; checkDone(); };
    const total = Math.round(rate * seconds);
    for (let k = 0; k < total; k++) {
      const due = start.t + (k * 1000) / rate;
      const wait = due - now();
      if (wait > 1) await sleep(wait);
      send(k);
    }
    sendingDone = true;
  } else {
    // Windowed: a new message whenever one is complete (or refused), while the time lasts;
    // maxRate keeps the trainer under a per-connection flood guard.
    let k = 0;
    let tokens = window;
    let lastRefill = now();
    let pendingTimer = null;
    const pump = () => {
      if (sendingDone) return;
      if (now() >= endSend) { sendingDone = true; checkDone(); return; }
      while (settled() + window > cur.sent && now() < endSend) {
        if (maxRate) {
          const t = now();
          tokens = Math.min(window, tokens + ((t - lastRefill) * maxRate) / 1000);
          lastRefill = t;
          if (tokens < 1) {
            if (!pendingTimer) pendingTimer = setTimeout(() => { pendingTimer = null; pump(); }, Math.max(1, ((1 - tokens) * 1000) / maxRate));
            return;
          }
          tokens -= 1;
        }
        send(k++);
      }
    };
    cur.onComplete = () => { cur.complete++; pump(); checkDone(); };
    afterSettle = () => { pump(); checkDone(); };
    pump();
    const endTimer = setTimeout(() => { pump(); checkDone(); }, seconds * 1000 + 5);
    await sleep(seconds * 1000);
    clearTimeout(endTimer);
    if (!sendingDone) { sendingDone = true; checkDone(); }
  }

  let timedOut = false;
  await Promise.race([finished, sleep(drainS * 1000).then(() => { timedOut = true; })]);
  const end = mark();
  round = null;
  if (timedOut) await sleep(200); // let late acks land in the error counts

  let lost = 0;
  for (let k = 0; k < cur.sent; k++) if (!failedK.has(k)) lost += Math.max(0, N - cur.counts[k]);
  const messages = cur.sent - cur.failed;
  const lastT = cur.lastDelivery || end.t;
  const window_s = (lastT - start.t) / 1000;
  const sp = span(start, end);
  const lat = cur.lat.sorted();
  return {
    mode, offered_rate: mode === "rate" ? rate : null, window: mode === "max" ? window : null,
    messages, expected: messages * N, deliveries: cur.got, lost, dupes: cur.dupes,
    send_errors: cur.ackErrors, timed_out: timedOut,
    window_s, deliveries_per_s: cur.got / window_s, messages_per_s: messages / window_s,
    latency_ms: { p50: pct(lat, 50), p99: pct(lat, 99), max: lat.length ? lat[lat.length - 1] : null },
    // Per message: to its first learner (the server's command path), to its last (plus the
    // fan-out), and the trainer's ack (Classcast: after the event is durable).
    first_ms_p50: pct(cur.first.sorted(), 50), complete_ms_p50: pct(cur.full.sorted(), 50),
    ack_ms_p50: pct(cur.acks.sorted(), 50),
    server_cpu_s: sp.server_cpu_s, gen_cpu_s: sp.gen_cpu_s, wall_s: sp.wall_s,
    server_us_per_delivery: cur.got ? (sp.server_cpu_s * 1e6) / cur.got : null,
    server_sys_s: sp.server_sys_s, server_sys_us_per_delivery: cur.got ? (sp.server_sys_s * 1e6) / cur.got : null,
    gen_busy: sp.gen_cpu_s / sp.wall_s, server_busy: sp.server_cpu_s / sp.wall_s, other_cores: sp.other_cores,
  };
}

// -- vote storm -----------------------------------------------------------------------------------

async function voteRound({ spreadS = 1, limitS = 60 }) {
  const options = ["a", "b", "c", "d"];
  const open = await trainer.timeout(10000).emitWithAck("poll.open", { question: "Which?", options });
  if (!open.ok) throw new Error(`poll.open: ${JSON.stringify(open.error)}`);
  const pollId = open.id;
  const n = learners.length;
  const expected = [0, 0, 0, 0];
  for (let i = 0; i < n; i++) expected[i % 4]++;
  let tFinal = null, lastVoters = 0, updates = 0, done;
  const final = new Promise((r) => (done = r));
  const onTrainer = (e) => {
    if (e.type !== "poll.voted" || e.data.poll_id !== pollId || !e.data.counts) return;
    updates++;
    lastVoters = e.data.voters;
    if (tFinal === null && e.data.voters === n && e.data.counts.every((c, i) => c === expected[i])) {
      tFinal = now();
      done();
    }
  };
  trainer.on("event", onTrainer);
  await sleep(200);
  const acks = [];
  const errors = {};
  let lastSent = 0;
  const start = mark();
  learners.forEach((sock, i) => {
    setTimeout(() => {
      const t = now();
      lastSent = Math.max(lastSent, t);
      sock.timeout(limitS * 1000).emit("poll.vote", { poll_id: pollId, choices: [i % 4] }, (err, ack) => {
        if (!err && ack.ok) acks.push(now() - t);
        else { const c = err ? "ack_timeout" : ack.error?.code; errors[c] = (errors[c] || 0) + 1; }
      });
    }, Math.random() * spreadS * 1000);
  });
  await Promise.race([final, sleep(limitS * 1000)]);
  const end = mark();
  // The trainer's count can reach it before the last voter's own ack does: wait for every answer
  // (bounded), so no ack is left out of the figures.
  const answered = () => acks.length + Object.values(errors).reduce((a, b) => a + b, 0);
  for (const stop = now() + limitS * 1000; answered() < n && now() < stop; ) await sleep(10);
  trainer.off("event", onTrainer);
  await trainer.timeout(10000).emitWithAck("poll.close", { poll_id: pollId });
  const sp = span(start, end);
  return {
    voters: n, exact: tFinal !== null, last_count: lastVoters, trainer_updates: updates, errors,
    final_ms: tFinal !== null ? tFinal - start.t : null,
    after_last_vote_ms: tFinal !== null ? tFinal - lastSent : null,
    ack_ms: summary(acks),
    server_cpu_s: sp.server_cpu_s, gen_cpu_s: sp.gen_cpu_s, wall_s: sp.wall_s,
  };
}

// -- join storm -----------------------------------------------------------------------------------

// Fill the session as a trainer would: chat and whiteboard shapes, from `trainers` connections
// in parallel (each under the server's per-connection flood guard when `rate` is set).
async function prepare({ chat = 500, shapes = 2000, trainers = 4, rate = 0, inFlight = 32 }) {
  const t0 = now();
  const socks = [trainer];
  for (let i = 1; i < trainers; i++) socks.push((await joinAs(trainerLink, `Trainer ${i}`)).sock);
  const jobs = [];
  for (let i = 0; i < chat; i++) jobs.push(["chat.send", { text: `Message ${i}: a line of chat as a class would write it.` }]);
  for (let i = 0; i < shapes; i++) {
    const x = (i * 37) % 700, y = (i * 53) % 400;
    jobs.push(["wb.shape", { kind: ["rect", "line", "ellipse", "arrow"][i % 4], x1: x, y1: y, x2: x + 60, y2: y + 40, color: "#1d3557" }]);
  }
  let next = 0, errors = 0;
  const minGap = rate ? 1000 / rate : 0;
  const run = async (sock) => {
    const lane = [];
    let lastAt = 0;
    while (next < jobs.length) {
      const [name, payload] = jobs[next++];
      if (minGap) { const wait = lastAt + minGap - now(); if (wait > 0) await sleep(wait); lastAt = now(); }
      lane.push(sock.timeout(30000).emitWithAck(name, payload).then((a) => { if (!a.ok) errors++; }, () => errors++));
      if (lane.length >= inFlight) await lane.shift();
    }
    await Promise.all(lane);
  };
  await Promise.all(socks.map(run));
  for (const s of socks.slice(1)) s.disconnect();
  return { prepare_s: (now() - t0) / 1000, commands: jobs.length, errors };
}

async function joinStorm({ spreadS = 5, limitS = 90, chat = 500, shapes = 2000 }) {
  const times = [], connects = [], errors = {};
  let usable = 0, unusable = 0, last = 0, snapshotBytes = 0;
  const socks = [];
  const start = mark();
  const one = (i) => new Promise((resolve) => {
    setTimeout(async () => {
      const t0 = now();
      const sock = open(joinLink, limitS * 1000);
      socks.push(sock);
      try {
        await connected(sock, limitS * 1000);
        connects.push(now() - t0);
        const ack = await sock.timeout(limitS * 1000).emitWithAck("join", { name: `Storm ${i}` });
        const t1 = now();
        last = Math.max(last, t1);
        const snap = ack.snapshot;
        // Usable: the snapshot accounts for all of it. The peer sends everything; Classcast sends
        // the recent part of what grows with history and counts the rest in `more` (paged on demand).
        const elements = snap?.board?.pages?.reduce((n, p) => n + (p.elements?.length ?? 0), 0) ?? 0;
        const messages = (snap?.chat?.length ?? 0) + (snap?.more?.chat ?? 0);
        if (ack.ok && snap && messages >= chat && elements >= shapes) {
          usable++;
          times.push(t1 - t0);
          if (!snapshotBytes) snapshotBytes = JSON.stringify(snap).length;
        } else unusable++;
      } catch (e) {
        const c = e.message.slice(0, 60);
        errors[c] = (errors[c] || 0) + 1;
      }
      resolve();
    }, Math.random() * spreadS * 1000);
  });
  await Promise.all(Array.from({ length: N }, (_, i) => one(i)));
  const end = mark();
  const sp = span(start, end);
  for (const s of socks) s.disconnect();
  return {
    learners: N, usable, unusable, errors, snapshot_bytes: snapshotBytes,
    snapshot_ms: summary(times), connect_ms: summary(connects),
    storm_s: ((last || end.t) - start.t) / 1000,
    server_cpu_s: sp.server_cpu_s, gen_cpu_s: sp.gen_cpu_s, wall_s: sp.wall_s,
  };
}

// -- main -----------------------------------------------------------------------------------------

async function gcPeer() {
  if (!cfg.gc_url) return;
  try { await fetch(cfg.gc_url); await sleep(200); await fetch(cfg.gc_url); } catch { /* best effort */ }
}

async function main() {
  const genStart = cpuSeconds("self");
  const steps = cfg.steps;
  await startTrainer();
  if (steps.includes("join")) {
    const j = cfg.join || {};
    out.prepare = await prepare(j);
    await waitQuiet();
    out.join = [await joinStorm({ spreadS: j.spread_s ?? 5, limitS: j.limit_s ?? 90, chat: j.chat ?? 500, shapes: j.shapes ?? 2000 })];
  } else {
    await waitQuiet();
    await gcPeer();
    await sleep(300);
    const rss0 = rssBytes(server);
    out.setup = await connectLearners(N, cfg.connect_concurrency || 50);
    out.setup.quiet = await waitQuiet(0.1, cfg.quiet_limit_s || 120);
    if (steps.includes("memory")) {
      await sleep((cfg.settle_s ?? 1) * 1000);
      await gcPeer();
      const rss1 = rssBytes(server);
      out.memory = { rss_before: rss0, rss_after: rss1, bytes_per_learner: (rss1 - rss0) / out.setup.connected };
    }
    const r = cfg.rate || {};
    if (steps.includes("rate") || steps.includes("max")) {
      out.warmup = await chatRound({ mode: "rate", rate: r.rate || 20, seconds: r.warmup_s ?? 1 });
      await waitQuiet();
    }
    if (steps.includes("rate")) {
      out.rate = [];
      for (let i = 0; i < (r.rounds || 3); i++) {
        out.rate.push(await chatRound({ mode: "rate", rate: r.rate || 20, seconds: r.seconds || 3, drainS: r.drain_s || 30 }));
        await waitQuiet();
      }
    }
    if (steps.includes("max")) {
      const m = cfg.max || {};
      out.max = [];
      if (cfg.markers) process.stdout.write(JSON.stringify({ marker: "max" }) + "\n");
      for (let i = 0; i < (m.rounds || 3); i++) {
        out.max.push(await chatRound({ mode: "max", window: m.window || 8, seconds: m.seconds || 3, maxRate: m.max_rate || 0, drainS: m.drain_s || 30 }));
        await waitQuiet();
      }
    }
    if (steps.includes("vote")) {
      const v = cfg.vote || {};
      out.vote = [];
      for (let i = 0; i < (v.rounds || 3); i++) {
        out.vote.push(await voteRound({ spreadS: v.spread_s || 1, limitS: v.limit_s || 60 }));
        await waitQuiet();
      }
    }
  }
  out.extensions = extensions;
  out.stale_deliveries = stale;
  out.other_events = otherEvents;
  out.generator_cpu_s = cpuSeconds("self") - genStart;
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(0);
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ error: String(e?.stack || e), partial: out }) + "\n");
  process.exit(2);
});
