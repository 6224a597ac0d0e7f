// The benchmark peer: the fan-out scenarios of Classcast written the plainest idiomatic way with
// socket.io 4.8 (one room per session, io.to(room).emit, acks), in memory, no validation beyond
// what keeps it from crashing, no persistence. It speaks the subset of Classcast's protocol the
// load generator uses (auth {token, session}, `join`, `session.start`, `chat.send`, `wb.shape`,
// `poll.open`, `poll.vote`, `poll.close`; events `event` {seq, t, type, actor, data}), so the same
// generator drives both servers.
//
//   node peer.mjs --port 8090            prints "Peer listening on http://127.0.0.1:8090" when ready
//   node peer.mjs --port 8091 --redis-url redis://127.0.0.1:PORT
//                                        the same, scaled out the standard way: rooms and broadcasts
//                                        span every process on that Redis (@socket.io/redis-streams-adapter)
//
// POST /api/sessions {"title"} creates a session and answers {id, join_url, trainer_url} like
// Classcast; with {"id", "learner_token", "trainer_token"} it adopts a session another process
// created (scaled out, each process needs the links; the session's state stays per process, see
// bench/scale/README.md). GET /gc runs the garbage collector when started with --expose-gc.

import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import { Server } from "socket.io";

const args = process.argv.slice(2);
const opt = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const port = Number(opt("--port") || 8090);
const redisUrl = opt("--redis-url");
// --crowd N: from N participants on, joins and leaves go to the trainers only and a learner's
// snapshot lists no participants (only their count): Classcast's presence rule (its
// `--crowd-size`), which the plain peer's O(N²) storm needs to finish at 10,000 learners.
const crowd = Number(opt("--crowd") || Infinity);
const host = "127.0.0.1";
const base = `http://${host}:${port}`;

const sessions = new Map(); // id -> session
const tokens = new Map(); // link token -> {session, role}
const id = (n = 6) => randomBytes(n).toString("base64url");

function newSession(title, adopt = {}) {
  const s = {
    id: adopt.id || id(9), title, status: "created", seq: 0, t0: null,
    chat: [], elements: [], polls: new Map(), participants: new Map(),
  };
  sessions.set(s.id, s);
  const learner = adopt.learner_token || id(16), trainer = adopt.trainer_token || id(16);
  tokens.set(learner, { session: s, role: "learner" });
  tokens.set(trainer, { session: s, role: "trainer" });
  return {
    id: s.id, title, learner_token: learner, trainer_token: trainer,
    join_url: `${base}/s/${s.id}/join?token=${learner}`,
    trainer_url: `${base}/s/${s.id}/trainer?token=${trainer}`,
  };
}

// Every state change is one event {seq, t, type, actor, data}, broadcast to the room.
function event(s, type, actor, data) {
  s.seq += 1;
  const t = s.t0 === null ? 0 : Date.now() - s.t0;
  return { seq: s.seq, t, type, actor, data };
}

function snapshot(s, role) {
  return {
    id: s.id, title: s.title, status: s.status, seq: s.seq,
    chat: s.chat,
    polls: [...s.polls.values()].map((p) => ({
      ...p, counts: role === "trainer" ? p.counts : null, voters: role === "trainer" ? p.voters : null, votes: undefined,
    })),
    participants: role !== "trainer" && s.participants.size >= crowd ? [] : [...s.participants.values()],
    participant_count: s.participants.size,
    board: { pages: [{ id: "w1", elements: s.elements }], current: "w1" },
  };
}

const http = createServer((req, res) => {
  if (req.method === "POST" && req.url === "/api/sessions") {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      let title = "Session", parsed = {};
      try { parsed = JSON.parse(body || "{}"); title = parsed.title || title; } catch { /* default title */ }
      res.writeHead(201, { "content-type": "application/json" });
      res.end(JSON.stringify(newSession(title, parsed.id ? parsed : {})));
    });
  } else if (req.url === "/gc") {
    if (global.gc) global.gc();
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ gc: Boolean(global.gc), rss: process.memoryUsage().rss }));
  } else if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"status":"ok"}');
  } else if (!req.url.startsWith("/socket.io/")) {
    res.writeHead(404);
    res.end();
  }
});

const options = { pingInterval: 10000, pingTimeout: 10000, maxHttpBufferSize: 1e6 };
if (redisUrl) {
  const { createClient } = await import("redis");
  const { createAdapter } = await import("@socket.io/redis-streams-adapter");
  const redisClient = createClient({ url: redisUrl });
  redisClient.on("error", (e) => console.error(`redis: ${e.message}`));
  await redisClient.connect();
  options.adapter = createAdapter(redisClient);
}
const io = new Server(http, options);

io.use((socket, next) => {
  const link = tokens.get(socket.handshake.auth?.token);
  if (!link || (socket.handshake.auth.session && socket.handshake.auth.session !== link.session.id)) {
    const err = new Error("invalid token");
    err.data = { code: "invalid_token", message: "invalid token" };
    return next(err);
  }
  socket.data.session = link.session;
  socket.data.role = link.role;
  next();
});

io.on("connection", (socket) => {
  const s = socket.data.session;
  const role = socket.data.role;
  const room = s.id;
  let me = null;

  const fail = (ack, code) => typeof ack === "function" && ack({ ok: false, error: { code, message: code } });
  const on = (name, roles, handler) =>
    socket.on(name, (data, ack) => {
      if (!me) return fail(ack, "not_joined");
      if (!roles.includes(role)) return fail(ack, "forbidden");
      if (name !== "session.start" && s.status !== "live") return fail(ack, "session_not_live");
      const reply = handler(data || {});
      if (typeof ack === "function") ack(reply);
    });

  socket.on("join", (data, ack) => {
    if (!me) {
      const name = String(data?.name || (role === "trainer" ? "Trainer" : "")).slice(0, 60);
      if (!name) return fail(ack, "name_required");
      me = { id: id(6), name, role, online: true };
      s.participants.set(me.id, me);
      socket.join(room);
      socket.join(`${room}/${role}`);
      const to = s.participants.size > crowd ? `${room}/trainer` : room;
      io.to(to).emit("event", event(s, "participant.joined", me.id, { id: me.id, name, role }));
    }
    ack({ ok: true, you: { id: me.id, name: me.name, role }, seq: s.seq, snapshot: snapshot(s, role) });
  });

  on("session.start", ["trainer"], () => {
    if (s.status !== "created") return { ok: false, error: { code: "already_live", message: "already live" } };
    s.status = "live";
    s.t0 = Date.now();
    const e = event(s, "session.started", me.id, {});
    io.to(room).emit("event", e);
    return { ok: true, seq: e.seq };
  });

  on("chat.send", ["trainer", "learner"], ({ text }) => {
    if (typeof text !== "string" || !text.trim() || text.length > 2000) return { ok: false, error: { code: "invalid_payload" } };
    const e = event(s, "chat.message", me.id, { id: `m${s.seq + 1}`, text, name: me.name, role });
    e.data.id = `m${e.seq}`;
    s.chat.push({ id: e.data.id, author: me.id, name: me.name, role, text, t: e.t, seq: e.seq });
    io.to(room).emit("event", e);
    return { ok: true, seq: e.seq, id: e.data.id };
  });

  on("wb.shape", ["trainer"], ({ kind, x1, y1, x2, y2, color = "#000000", width = 3 }) => {
    const e = event(s, "wb.element.added", me.id, null);
    const element = { id: `e${e.seq}`, kind, x1, y1, x2, y2, color, width };
    e.data = { page: "w1", element };
    s.elements.push({ ...element, author: me.id, z: e.seq });
    io.to(room).emit("event", e);
    return { ok: true, seq: e.seq, id: element.id };
  });

  on("poll.open", ["trainer"], ({ question, options }) => {
    const e = event(s, "poll.opened", me.id, null);
    const poll = {
      id: `p${e.seq}`, question, options, status: "open",
      counts: options.map(() => 0), voters: 0, votes: new Map(),
    };
    s.polls.set(poll.id, poll);
    e.data = { id: poll.id, question, options };
    io.to(room).emit("event", e);
    return { ok: true, seq: e.seq, id: poll.id };
  });

  // A vote: count it, show the trainers the live count, confirm to the voter.
  on("poll.vote", ["learner"], ({ poll_id, choices }) => {
    const poll = s.polls.get(poll_id);
    if (!poll) return { ok: false, error: { code: "not_found" } };
    if (poll.status !== "open") return { ok: false, error: { code: "poll_closed" } };
    const previous = poll.votes.get(me.id);
    if (previous) previous.forEach((c) => (poll.counts[c] -= 1));
    else poll.voters += 1;
    choices.forEach((c) => (poll.counts[c] += 1));
    poll.votes.set(me.id, choices);
    const e = event(s, "poll.voted", me.id, { poll_id, choices, counts: poll.counts, voters: poll.voters });
    io.to(`${room}/trainer`).emit("event", e);
    socket.emit("event", { ...e, data: { poll_id, choices } });
    return { ok: true, seq: e.seq, choices };
  });

  on("poll.close", ["trainer"], ({ poll_id }) => {
    const poll = s.polls.get(poll_id);
    if (!poll) return { ok: false, error: { code: "not_found" } };
    poll.status = "closed";
    const e = event(s, "poll.closed", me.id, { poll_id });
    io.to(room).emit("event", e);
    return { ok: true, seq: e.seq };
  });

  socket.on("disconnect", () => {
    if (!me) return;
    me.online = false;
    const to = s.participants.size > crowd ? `${room}/trainer` : room;
    io.to(to).emit("event", event(s, "participant.left", me.id, { id: me.id }));
  });
});

http.listen(port, host, () => console.log(`Peer listening on ${base}`));
