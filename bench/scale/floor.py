"""The floor of server CPU per delivery on this machine: what one write of one chat frame to one
loopback websocket costs the writer, with no server around it (issue 11's goal is Classcast's CPU
per delivery at most 0.5x the Node peer's, and on loopback most of both servers' cost is the kernel's).

A sender process accepts N websocket connections from receiver processes (Node, the `ws` client the
scale harness's learners use, `bench/node-peer/swarm.mjs`), then writes a chat-sized frame to every
connection at 1 and 5 messages/s, one system call per connection per message; the sender's utime and
stime are read from `/proc/PID/stat` around each window (until every receiver has every frame) and
divided by the frames delivered. Each variant is a fresh set of processes and one row: plain
`socket.send` from a tight loop, uvloop's `transport.write` through Classcast's own `write_frame`,
a C loop and io_uring (built with `cc` at first use), socket options, other system calls, busy or
pinned receivers, and (for reference, as it holds messages back) several messages per write.
`--perf` profiles a variant's sender and sorts its kernel time into the sender's output, the
receiver's input, the wakeup, the ACK and the system call.

    python bench/scale/floor.py [--n 10000] [--receivers 4] [--variants send,asyncio,...] [--perf send]
                                [--peer | --peer-json harness.json | --peer-us 47.9,25.1] [--json out.json]

prints a markdown section for docs/benchmarks.md on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

# Run as a script too: `bench` importable from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.plans import plan_from, save_json
from bench.scale import harness
from bench.scale.child import Child

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "bench" / "node-peer"
# The chat event a learner receives in the scale harness, as both servers write it (measured: a
# `chat.message` event with the harness's text, seq and ids of their usual lengths), 149 bytes of
# engine.io/socket.io payload in a 153-byte websocket frame (4 bytes of header: over 125 bytes).
PAYLOAD = (
    b'42["event",{"seq":4,"t":1,"type":"chat.message","actor":"FiawMSXW","data":{"id":"m4",'
    b'"text":"fo 2 37 1096780987","name":"Trainer","role":"trainer"}}]'
)
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(payload: bytes = PAYLOAD) -> bytes:
    """An unmasked, final websocket text frame (server to client), as `signaling/websocket.py` writes."""
    n = len(payload)
    assert n < 65536
    head = bytes((0x81, n)) if n < 126 else bytes((0x81, 126)) + n.to_bytes(2, "big")
    return head + payload


@dataclass(frozen=True)
class Variant:
    """One row: how the sender writes and how the receivers wait."""

    how: str  # send, asyncio, native, native-send, write, sendmsg, dontwait, c-send, io_uring
    what: str
    nodelay: bool = True  # both servers set TCP_NODELAY (uvloop, Node's http server)
    sndbuf: int | None = None
    busy: bool = False  # receivers poll without sleeping (a spinning event loop)
    pin: str | None = None  # "same": sender and receivers on CPU 0; "cross": sender 0, receivers 1
    coalesce: int = 1  # messages per write (>1 holds messages back: reference only)


VARIANTS: dict[str, Variant] = {
    "send": Variant("send", "`socket.send` per connection from a tight loop (non-blocking sockets)"),
    "asyncio": Variant(
        "asyncio", "uvloop `transport.write` through Classcast's `write_frame` (its send path)"
    ),
    "write": Variant("write", "`os.write` on the socket's descriptor (libuv's call, Node's and uvloop's)"),
    "sendmsg": Variant("sendmsg", "`socket.sendmsg`"),
    "dontwait": Variant("dontwait", "blocking sockets, `send(..., MSG_DONTWAIT)`"),
    "nodelay-off": Variant("send", "`socket.send`, TCP_NODELAY off (Nagle on)", nodelay=False),
    "sndbuf-4k": Variant("send", "`socket.send`, SO_SNDBUF 4 KiB", sndbuf=4096),
    "sndbuf-1m": Variant("send", "`socket.send`, SO_SNDBUF 1 MiB", sndbuf=1 << 20),
    "busy": Variant(
        "send", "`socket.send`, receivers busy-polling (never asleep when a frame comes)", busy=True
    ),
    "pin-same": Variant("send", "`socket.send`, sender and receivers pinned to CPU 0", pin="same"),
    "pin-cross": Variant("send", "`socket.send`, sender pinned to CPU 0, receivers to CPU 1", pin="cross"),
    "native": Variant(
        "native", "Classcast's native path: uvloop transports, one `sendmany` call per room (io_uring)"
    ),
    "native-send": Variant("native-send", "Classcast's native path with send(2) in its C loop (no io_uring)"),
    "c-send": Variant(
        "c-send", "`send(MSG_DONTWAIT)` per connection from a C loop (ctypes): no Python per write"
    ),
    "io_uring": Variant(
        "io_uring", "one `IORING_OP_SEND` per connection, 4,096 submitted per `io_uring_enter` (C, ctypes)"
    ),
    "coalesce-5": Variant(
        "send",
        "`socket.send` of 5 messages' frames in one write (holds messages back: reference)",
        coalesce=5,
    ),
}
DEFAULT_VARIANTS = tuple(VARIANTS)


@dataclass
class Plan:
    n: int
    mode: str = "custom"
    receivers: int = 4  # receiver processes (the scale harness's generators at N = 10,000)
    rates: tuple[float, ...] = (1, 5)  # messages/s
    seconds: float = 5  # per rate per window
    windows: int = 3  # windows per rate per variant (medians over them)
    # Passes over the variants, each a fresh set of processes (A B A B ...): a machine whose cost per
    # write drifts (other work on it) then weighs on every variant alike.
    repeat: int = 1
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    extra: dict[str, Any] = field(default_factory=dict)


PLANS = {
    "full": Plan(n=10_000, mode="full", seconds=4),
    "quick": Plan(n=2_000, mode="quick", receivers=2, seconds=3, variants=("send", "asyncio", "busy")),
    "tiny": Plan(n=100, mode="tiny", receivers=2, seconds=1, windows=1, variants=("send", "asyncio")),
}


def log(msg: str) -> None:
    print(f"[floor] {msg}", file=sys.stderr, flush=True)


# The C variants' code, built with the system's C compiler into a shared library the first time one
# runs (`c-send`: the loop of `send` calls without Python; `io_uring`: the same sends batched into a
# few system calls, liburing not needed).
C_SOURCE = r"""
// The C-speed floor and the io_uring batch for bench/scale/floor.py (ctypes).
#define _GNU_SOURCE
#include <linux/io_uring.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdatomic.h>

// One send() per descriptor; returns the number of short or failed writes.
int send_all(const int *fds, int n, const char *buf, int len) {
    int bad = 0;
    for (int i = 0; i < n; i++) bad += send(fds[i], buf, len, MSG_DONTWAIT) != len;
    return bad;
}

static int ring_fd = -1;
static unsigned *sq_head, *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
static struct io_uring_sqe *sqes;
static struct io_uring_cqe *cqes;
static unsigned entries;

int uring_init(unsigned want) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    ring_fd = syscall(__NR_io_uring_setup, want, &p);
    if (ring_fd < 0) return -1;
    entries = p.sq_entries;
    size_t sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    int prot = PROT_READ | PROT_WRITE, flags = MAP_SHARED | MAP_POPULATE;
    char *sq = mmap(0, sq_sz, prot, flags, ring_fd, IORING_OFF_SQ_RING);
    char *cq = mmap(0, cq_sz, prot, flags, ring_fd, IORING_OFF_CQ_RING);
    sqes = mmap(0, p.sq_entries * sizeof(struct io_uring_sqe), prot, flags, ring_fd, IORING_OFF_SQES);
    if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) return -2;
    sq_head = (unsigned *)(sq + p.sq_off.head); sq_tail = (unsigned *)(sq + p.sq_off.tail);
    sq_mask = (unsigned *)(sq + p.sq_off.ring_mask); sq_array = (unsigned *)(sq + p.sq_off.array);
    cq_head = (unsigned *)(cq + p.cq_off.head); cq_tail = (unsigned *)(cq + p.cq_off.tail);
    cq_mask = (unsigned *)(cq + p.cq_off.ring_mask); cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
    return (int)entries;
}

// One IORING_OP_SEND per descriptor, submitted `entries` at a time with one io_uring_enter each
// (which also waits for their completions); returns the number of short or failed writes.
int uring_send_all(const int *fds, int n, const char *buf, int len) {
    int bad = 0;
    for (int start = 0; start < n; start += entries) {
        int k = n - start < (int)entries ? n - start : (int)entries;
        unsigned tail = atomic_load_explicit((_Atomic unsigned *)sq_tail, memory_order_acquire);
        for (int j = 0; j < k; j++) {
            unsigned idx = (tail + j) & *sq_mask;
            struct io_uring_sqe *e = &sqes[idx];
            memset(e, 0, sizeof *e);
            e->opcode = IORING_OP_SEND;
            e->fd = fds[start + j];
            e->addr = (unsigned long)buf;
            e->len = len;
            e->msg_flags = MSG_DONTWAIT;
            sq_array[idx] = idx;
        }
        atomic_store_explicit((_Atomic unsigned *)sq_tail, tail + k, memory_order_release);
        int got = 0;
        int r = syscall(__NR_io_uring_enter, ring_fd, k, k, IORING_ENTER_GETEVENTS, 0, 0);
        if (r < 0) return -1;
        while (got < k) {
            unsigned head = *cq_head;
            unsigned ctail = atomic_load_explicit((_Atomic unsigned *)cq_tail, memory_order_acquire);
            if (head == ctail) {
                if (syscall(__NR_io_uring_enter, ring_fd, 0, 1, IORING_ENTER_GETEVENTS, 0, 0) < 0) return -1;
                continue;
            }
            for (; head != ctail; head++, got++) bad += cqes[head & *cq_mask].res != len;
            atomic_store_explicit((_Atomic unsigned *)cq_head, head, memory_order_release);
        }
    }
    return bad;
}
"""
C_CACHE = Path(tempfile.gettempdir()) / "classcast-floor"


def c_library() -> Any:
    """The C variants' library (ctypes), compiled when missing or older than this file."""
    import ctypes

    digest = hashlib.sha1(C_SOURCE.encode()).hexdigest()[:12]
    lib = C_CACHE / f"floor-{digest}.so"
    if not lib.exists():
        C_CACHE.mkdir(parents=True, exist_ok=True)
        src = C_CACHE / f"floor-{digest}.c"
        src.write_text(C_SOURCE)
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            raise RuntimeError("the C variants need a C compiler (cc)")
        tmp = lib.with_suffix(f".{os.getpid()}.so")
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(src)], check=True)
        tmp.replace(lib)
    return ctypes.CDLL(str(lib))


# -- the sender (a process of its own: `floor.py --sender CONFIG`) ------------------------------


def accept_websockets(lsock: socket.socket, n: int, limit_s: float) -> list[socket.socket]:
    """Accept `n` connections and answer each one's websocket upgrade (RFC 6455's accept key);
    return the sockets, non-blocking."""
    sel = selectors.DefaultSelector()
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, None)
    done: list[socket.socket] = []
    bufs: dict[socket.socket, bytes] = {}
    deadline = time.monotonic() + limit_s
    while len(done) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(done)} of {n} websockets within {limit_s:.0f} s")
        for key, _ in sel.select(1.0):
            if key.data is None:
                while True:
                    try:
                        conn, _ = lsock.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    bufs[conn] = b""
                    sel.register(conn, selectors.EVENT_READ, True)
                continue
            conn = key.fileobj  # type: ignore[assignment]
            assert isinstance(conn, socket.socket)
            try:
                data = conn.recv(4096)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(conn)
                del bufs[conn]
                conn.close()
                continue
            bufs[conn] += data
            if b"\r\n\r\n" not in bufs[conn]:
                continue
            head = bufs.pop(conn).split(b"\r\n\r\n", 1)[0].decode("latin-1")
            ws_key = next(
                line.split(":", 1)[1].strip().encode()
                for line in head.split("\r\n")
                if line.lower().startswith("sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(ws_key + WS_GUID).digest())
            conn.setblocking(True)
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            conn.setblocking(False)
            sel.unregister(conn)
            done.append(conn)
    sel.close()
    return done


def _ticks(rate: float, seconds: float, coalesce: int) -> list[tuple[float, int]]:
    """(offset in s, messages in that write): every message on its tick, or `coalesce` of them
    on every `coalesce`-th tick (and the rest on the last)."""
    total = round(rate * seconds)
    out = []
    for k in range(total):
        if (k + 1) % coalesce == 0 or k == total - 1:
            out.append((k / rate, (k % coalesce) + 1))
    return out


def run_sender(cfg: dict[str, Any]) -> None:
    """Listen, accept the receivers' websockets, then run each window asked for on stdin (JSON
    lines), answering on stdout."""
    v = Variant(**cfg["variant"])
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4096)
    print(json.dumps({"port": lsock.getsockname()[1]}), flush=True)
    socks = accept_websockets(lsock, cfg["n"], cfg.get("accept_limit_s", 300))
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if v.nodelay else 0)
        if v.sndbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, v.sndbuf)
        if v.how == "dontwait":
            s.setblocking(True)
    loop = transports = room = None
    if v.how in ("asyncio", "native", "native-send"):
        import asyncio

        import uvloop

        from signaling.websocket import write_frame

        loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)

        async def wrap() -> list[Any]:
            out = []
            for s in socks:
                tr, _ = await loop.connect_accepted_socket(asyncio.Protocol, s)  # type: ignore[union-attr]
                out.append(tr)
            return out

        transports = loop.run_until_complete(wrap())
        if v.how != "asyncio":
            from signaling import sendmany

            os.environ["CLASSCAST_SEND"] = "send" if v.how == "native-send" else "io_uring"
            if sendmany.mode() == "python":
                raise RuntimeError("the native variants need signaling._sendmany (make install)")
            members = {str(i): str(i) for i in range(len(transports))}
            room = sendmany.Room(members, dict(zip(members, transports, strict=True)), 0)
    clib = fds = None
    if v.how in ("c-send", "io_uring"):
        import ctypes

        clib = c_library()
        fds = (ctypes.c_int * len(socks))(*(s.fileno() for s in socks))
        if v.how == "io_uring" and clib.uring_init(4096) < 0:
            raise RuntimeError("io_uring_setup failed (io_uring disabled?)")
    print(json.dumps({"ready": len(socks)}), flush=True)
    one = frame()
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            break
        ticks = _ticks(cmd["rate"], cmd["seconds"], v.coalesce)
        errors = writes = 0
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        if loop is not None:
            import asyncio

            async def window(ticks: list[tuple[float, int]] = ticks) -> int:
                t0 = loop.time()  # type: ignore[union-attr]
                written = 0
                for at, k in ticks:
                    if (wait := t0 + at - loop.time()) > 0:  # type: ignore[union-attr]
                        await asyncio.sleep(wait)
                    data = one * k
                    if room is not None:
                        written += room.send(data, write_frame)
                        continue
                    for tr in transports:  # type: ignore[union-attr]
                        written += write_frame(tr, data)
                return written

            writes = loop.run_until_complete(window())
            errors = len(ticks) * len(socks) - writes
        else:
            t0 = time.monotonic()
            for at, k in ticks:
                if (wait := t0 + at - time.monotonic()) > 0:
                    time.sleep(wait)
                data = one * k
                want = len(data)
                if clib is not None:
                    call = clib.uring_send_all if v.how == "io_uring" else clib.send_all
                    bad = call(fds, len(socks), data, want)
                    if bad < 0:
                        raise RuntimeError(f"{v.how} failed")
                    errors += bad
                elif v.how == "write":
                    write = os.write
                    for s in socks:
                        errors += write(s.fileno(), data) != want
                elif v.how == "sendmsg":
                    for s in socks:
                        errors += s.sendmsg([data]) != want
                elif v.how == "dontwait":
                    flag = socket.MSG_DONTWAIT
                    for s in socks:
                        errors += s.send(data, flag) != want
                else:
                    for s in socks:
                        errors += s.send(data) != want
                writes += len(socks)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps({"writes": writes, "errors": errors, "rusage_user_s": r1.ru_utime - r0.ru_utime,
                          "rusage_sys_s": r1.ru_stime - r0.ru_stime}), flush=True)  # fmt: skip
    for s in socks:
        s.close()


# -- the receivers (Node, the `ws` client of the harness's learners) ----------------------------

RECEIVER_JS = r"""
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
const cfg = JSON.parse(process.argv[1]);
const WebSocket = createRequire(cfg.node_dir + "/package.json")("ws");
const reply = (o) => process.stdout.write(JSON.stringify(o) + "\n");
let got = 0, expect = -1, id = null;
let open = 0, next = 0;
const socks = [];
function connect() {
  if (next >= cfg.count) return;
  next++;
  const ws = new WebSocket(`ws://127.0.0.1:${cfg.port}/`,
                           { perMessageDeflate: false, skipUTF8Validation: true });
  ws.on("open", () => { socks.push(ws); if (++open === cfg.count) reply({ ready: open }); connect(); });
  ws.on("message", (buf) => {
    // What a learner does with a frame it does not count: look at its first bytes.
    if (buf[0] === 52 && buf[1] === 50) got++;
    if (got === expect && id !== null) { reply({ drained: id }); id = null; }
  });
  ws.on("error", (e) => { reply({ error: `ws: ${e.message}` }); process.exit(1); });
}
for (let i = 0; i < 100; i++) connect();
if (cfg.busy) { const spin = () => setImmediate(spin); spin(); }
createInterface({ input: process.stdin }).on("line", (line) => {
  const m = JSON.parse(line);
  if (m.cmd === "expect") { got = 0; expect = m.frames; id = m.id; reply({ ready: m.id }); }
  else if (m.cmd === "quit") { for (const ws of socks) ws.terminate(); process.exit(0); }
});
"""


def pin(pid: int, cpu: int) -> None:
    """Every thread of `pid` onto one CPU (a process's affinity call moves only its main thread)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(int(tid), {cpu})


# Where the sender's samples go (`--perf`): each sample is put in the first bucket, in this order,
# that names any frame of its stack (the most specific activity: the receiver's input runs inside
# the sender's output on loopback, the wakeup and the ACK inside the receiver's input); user space
# is any sample whose innermost frame is not the kernel's.
PERF_BUCKETS: list[tuple[str, set[str]]] = [
    ("waking the receiver (its epoll wait, the scheduler, the IPI)",
     {"try_to_wake_up", "__wake_up_common", "__wake_up_sync_key", "__wake_up", "sock_def_readable",
      "ep_poll_callback", "default_wake_function", "ttwu_queue_wakelist", "__smp_call_single_queue"}),
    ("the receiver's ACK: sent", {"tcp_send_ack", "__tcp_send_ack", "tcp_delack_timer_handler"}),
    ("the receiver's ACK: taken in on the sender's socket (its backlog at release_sock)",
     {"__release_sock", "tcp_release_cb"}),
    ("the receiver's TCP/IP input (loopback softirq: queue the data, ...)",
     {"tcp_v4_rcv", "ip_rcv", "ip_local_deliver", "ip_local_deliver_finish", "__netif_receive_skb",
      "__netif_receive_skb_one_core", "process_backlog", "net_rx_action", "handle_softirqs", "__do_softirq",
      "do_softirq"}),
    ("the sender's TCP/IP output and loopback (build, queue, transmit the segment)",
     {"tcp_sendmsg_locked", "tcp_sendmsg", "tcp_push", "__tcp_push_pending_frames", "tcp_write_xmit",
      "__tcp_transmit_skb", "ip_queue_xmit", "__ip_queue_xmit", "ip_finish_output2", "__dev_queue_xmit",
      "dev_hard_start_xmit", "loopback_xmit", "io_send", "io_sendmsg"}),
    ("system call and socket layer (entry, exit, file and socket lookup, security hooks)",
     {"entry_SYSCALL_64", "entry_SYSCALL_64_after_hwframe", "do_syscall_64", "syscall_exit_to_user_mode",
      "__x64_sys_sendto", "__sys_sendto", "__x64_sys_sendmsg", "___sys_sendmsg", "__sys_sendmsg",
      "__x64_sys_write", "ksys_write", "vfs_write", "sock_write_iter", "sock_sendmsg", "__sock_sendmsg",
      "__x64_sys_io_uring_enter", "__do_sys_io_uring_enter", "io_submit_sqes", "io_issue_sqe"}),
]  # fmt: skip


def perf_breakdown(script: str) -> dict[str, int]:
    """Samples per bucket from `perf script -F ip,sym` output (one stack per blank-line block)."""
    out: dict[str, int] = {}
    for block in script.split("\n\n"):
        frames = [ln.split() for ln in block.strip().splitlines()]
        frames = [f for f in frames if len(f) >= 2]
        if not frames:
            continue
        name = "other kernel"
        if not frames[0][0].lower().startswith("ffff"):
            name = "user space (Python or the C loop, libc)"
        else:
            stack = {f[1].split("+")[0] for f in frames}
            name = next((b for b, syms in PERF_BUCKETS if stack & syms), name)
        out[name] = out.get(name, 0) + 1
    return out


def ksoftirqd() -> list[int]:
    """The kernel's softirq threads: loopback's receive path runs in the sender's `send` unless the
    CPU is busy enough for the kernel to defer it to these, where no process is charged for it."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{entry}/comm").read_text().startswith("ksoftirqd"):
                    out.append(int(entry))
    return out


def one_variant(name: str, plan: Plan) -> dict[str, Any]:
    """Fresh sender and receivers for one variant; every window's figures."""
    v = VARIANTS[name]
    out: dict[str, Any] = {"variant": name, "what": v.what, "config": asdict(v), "windows": []}
    cfg = {"n": plan.n, "variant": asdict(v)}
    with contextlib.ExitStack() as stack:
        sender = Child([sys.executable, str(Path(__file__).resolve()), "--sender", json.dumps(cfg)], ROOT)
        stack.callback(sender.close)
        port = sender.wait("port", 60)["port"]
        recv: list[Child] = []
        r = max(1, min(plan.receivers, plan.n))
        for i in range(r):
            count = plan.n // r + (1 if i < plan.n % r else 0)
            js = {"port": port, "count": count, "busy": v.busy, "node_dir": str(NODE_DIR)}
            child = Child(["node", "--input-type=module", "-e", RECEIVER_JS, json.dumps(js)], cwd=NODE_DIR)
            stack.callback(child.close)
            recv.append(child)
        sender.wait("ready", 300)
        for child in recv:
            child.wait("ready", 300)
        if v.pin is not None:
            if (os.cpu_count() or 1) < 2:
                raise RuntimeError("pinning variants need 2 CPUs")
            pin(sender.proc.pid, 0)
            for child in recv:
                pin(child.proc.pid, 0 if v.pin == "same" else 1)
        spid, rpids, kpids = sender.proc.pid, [c.proc.pid for c in recv], ksoftirqd()
        harness.wait_quiet([spid], limit_s=20)
        wid = 0
        for w in range(plan.windows):
            for rate in plan.rates:
                wid += 1
                messages = round(rate * plan.seconds)
                frames = messages * plan.n
                for child, count in zip(recv, _counts(plan.n, r), strict=True):
                    child.send(cmd="expect", id=wid, frames=messages * count)
                    child.wait("ready", 30)
                load = os.getloadavg()[0]
                (u0, s0), (ru0, rs0), k0 = (
                    harness.cpu_split([spid]),
                    harness.cpu_split(rpids),
                    harness.cpu_s(kpids),
                )
                t0 = time.monotonic()
                sender.send(cmd="window", rate=rate, seconds=plan.seconds)
                sent = sender.wait("writes", plan.seconds + 120)
                for child in recv:
                    child.wait("drained", 60)
                (u1, s1), (ru1, rs1), k1 = (
                    harness.cpu_split([spid]),
                    harness.cpu_split(rpids),
                    harness.cpu_s(kpids),
                )
                t1 = time.monotonic()
                out["windows"].append({
                    "window": w, "rate": rate, "messages": messages, "frames": frames,
                    "writes": sent["writes"], "errors": sent["errors"], "wall_s": t1 - t0,
                    "user_s": u1 - u0, "sys_s": s1 - s0,
                    "rusage_user_s": sent["rusage_user_s"], "rusage_sys_s": sent["rusage_sys_s"],
                    "receivers_cpu_s": ru1 - ru0 + rs1 - rs0, "ksoftirqd_s": k1 - k0, "load1": load,
                    "user_us": (u1 - u0) * 1e6 / frames, "sys_us": (s1 - s0) * 1e6 / frames,
                    "us": (u1 - u0 + s1 - s0) * 1e6 / frames,
                })  # fmt: skip
                x = out["windows"][-1]
                log(f"{name} #{w + 1} at {rate:g}/s: {x['us']:.1f} µs per delivery "
                    f"({x['user_us']:.1f} user + {x['sys_us']:.1f} kernel), load {load:.1f}")  # fmt: skip
        if name in plan.extra.get("perf", ()) and shutil.which("perf"):
            out["perf"] = perf_window(sender, recv, plan)
    return out


def perf_window(sender: Child, recv: list[Child], plan: Plan) -> dict[str, Any]:
    """One more window at the highest rate with `perf record` on the sender (not in the figures:
    sampling costs the sender too); samples per bucket of `PERF_BUCKETS`."""
    rate = max(plan.rates)
    messages = round(rate * plan.seconds)
    with tempfile.TemporaryDirectory(prefix="floor-perf-") as tmp:
        data = Path(tmp) / "perf.data"
        rec = subprocess.Popen(
            ["perf", "record", "-q", "-e", "cpu-clock", "-F", "4999", "-g", "-p", str(sender.proc.pid),
             "-o", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1)
        for child, count in zip(recv, _counts(plan.n, len(recv)), strict=True):
            child.send(cmd="expect", id=-1, frames=messages * count)
            child.wait("ready", 30)
        sender.send(cmd="window", rate=rate, seconds=plan.seconds)
        sender.wait("writes", plan.seconds + 120)
        for child in recv:
            child.wait("drained", 60)
        rec.send_signal(signal.SIGINT)
        rec.wait(60)
        script = subprocess.run(
            ["perf", "script", "-i", str(data), "-F", "ip,sym"], capture_output=True, text=True, timeout=300
        ).stdout
    buckets = perf_breakdown(script)
    log(f"perf: {sum(buckets.values())} samples: {buckets}")
    return {"rate": rate, "samples": buckets}


def _counts(n: int, r: int) -> list[int]:
    return [n // r + (1 if i < n % r else 0) for i in range(r)]


def peer_from_json(path: Path) -> dict[str, Any]:
    """The peer's CPU per delivery (and its split) from a saved scale-harness run."""
    res = json.loads(path.read_text())
    f = harness.figures(res).get("peer")
    if f is None:
        raise SystemExit(f"{path} has no `peer` row")
    rates = res["plan"]["rates"]
    return {
        "source": f"`{path.name}`: the scale harness's `peer` row at N = {res['plan']['n']:,}, "
        f"{f['rounds']} round(s), run at {res.get('when', '?')}",
        "us": f["us_per_delivery"],
        "by_rate": {str(r): {k: f[r][k] for k in ("us_per_delivery", "user_us", "sys_us")} for r in rates},
    }


def peer_now(plan: Plan) -> dict[str, Any]:
    """The scale harness's `peer` row at the same N, one round, in this invocation."""
    hplan = plan_from(harness.PLANS, "full", n=plan.n, rounds=1, rows=("peer",))
    if plan.n < 1000:
        hplan = replace(hplan, join_spread_s=5, seconds=plan.seconds, generators=plan.receivers)
    res = harness.run_plan(hplan)
    f = harness.figures(res)["peer"]
    return {
        "source": f"the scale harness's `peer` row run in this invocation (N = {plan.n:,}, 1 round, "
        f"`--peer-crowd {hplan.peer_crowd}`)",
        "us": f["us_per_delivery"],
        "by_rate": {
            str(r): {k: f[r][k] for k in ("us_per_delivery", "user_us", "sys_us")} for r in hplan.rates
        },
        "raw": res,
    }


def run_plan(plan: Plan, peer: str | None = None, save: Path | None = None) -> dict[str, Any]:
    """Every variant (fresh processes each); with `peer` ("run" or a harness JSON path), the
    peer's figure for the 0.5x line."""
    harness.ensure_node_deps()
    harness.raise_nofile(plan.n + 1024)
    results: dict[str, Any] = {
        "plan": asdict(plan) | {"rates": list(plan.rates), "variants": list(plan.variants)},
        "frame_bytes": len(frame()),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load": {"before": os.getloadavg()},
        "cpus": os.cpu_count(),
        "runs": [],
    }
    started = time.monotonic()
    for rep in range(plan.repeat):
        for name in plan.variants:
            results["runs"].append(one_variant(name, plan) | {"repeat": rep})
            results["elapsed_s"] = time.monotonic() - started
            results["load"]["after"] = os.getloadavg()
            if save is not None:
                save_json(save, results)
    if peer == "run":
        results["peer"] = peer_now(plan)
    elif peer:
        results["peer"] = peer_from_json(Path(peer))
    results["elapsed_s"] = time.monotonic() - started
    results["load"]["after"] = os.getloadavg()
    return results


# -- report --------------------------------------------------------------------------------------


def _med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def figures(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per variant: medians over windows, per rate and over both rates (per window pair)."""
    out: dict[str, dict[str, Any]] = {}
    rates = results["plan"]["rates"]
    grouped: dict[str, list[dict[str, Any]]] = {}
    for run in results["runs"]:  # a variant's passes (`repeat`) together
        grouped.setdefault(run["variant"], []).append(run)
    for name, runs in grouped.items():
        ws = [w | {"key": (run.get("repeat", 0), w["window"])} for run in runs for w in run["windows"]]
        keys = sorted({w["key"] for w in ws})
        f: dict[str, Any] = {"what": runs[0]["what"], "windows": len(keys), "passes": len(runs)}
        for rate in rates:
            rw = [w for w in ws if w["rate"] == rate]
            f[rate] = {k: _med([w[k] for w in rw]) for k in ("us", "user_us", "sys_us")}
            f[rate]["load1"] = _med([w["load1"] for w in rw])
        both = []
        for key in keys:
            pair = [w for w in ws if w["key"] == key]
            frames = sum(w["frames"] for w in pair)
            both.append(
                {
                    "us": sum(w["user_s"] + w["sys_s"] for w in pair) * 1e6 / frames,
                    "user_us": sum(w["user_s"] for w in pair) * 1e6 / frames,
                    "sys_us": sum(w["sys_s"] for w in pair) * 1e6 / frames,
                    "recv_us": sum(w["receivers_cpu_s"] for w in pair) * 1e6 / frames,
                    "ksoftirqd_us": sum(w.get("ksoftirqd_s", 0) for w in pair) * 1e6 / frames,
                }
            )
        f["both"] = {
            k: _med([b[k] for b in both]) for k in ("us", "user_us", "sys_us", "recv_us", "ksoftirqd_us")
        }
        f["errors"] = sum(w["errors"] for w in ws)
        f["load1"] = _med([w["load1"] for w in ws])
        out[name] = f
    return out


def _n(v: float | None, d: int = 1) -> str:
    return "–" if v is None else f"{v:,.{d}f}"


def markdown(results: dict[str, Any]) -> str:
    figs = figures(results)
    plan = results["plan"]
    rates = plan["rates"]
    peer = results.get("peer")
    line = peer["us"] / 2 if peer and peer.get("us") else None
    lines = [
        "### Measured (`bench/scale/floor.py`)",
        "",
        f"N = {plan['n']:,} loopback websockets over {plan['receivers']} receiver processes, a "
        f"{results['frame_bytes']}-byte frame (the chat event of the scale harness), "
        f"{' and '.join(f'{r:g}' for r in rates)} messages/s for {plan['seconds']:g} s each, "
        f"{plan['windows']} windows per rate"
        + (f", {plan['repeat']} passes over the variants (A B A B …)" if plan.get("repeat", 1) > 1 else "")
        + "; each variant a fresh sender and receivers; run at "
        f"{results['when']}, {results['elapsed_s'] / 60:.1f} min, load average "
        f"{results['load']['before'][0]:.1f} before and {results['load']['after'][0]:.1f} after on "
        f"{results['cpus']} CPUs. Figures are the sender's CPU per delivery (utime + stime from "
        "`/proc`), medians over the windows, per delivery; `both` is per window over both rates. The "
        "receivers' CPU and the softirq threads' (`ksoftirqd`: loopback's receive path when the kernel "
        "defers it from the sender, charged to no process) are per delivery over both rates too.",
        "",
        "| variant | how | user | kernel | total at "
        + " | total at ".join(f"{r:g} msg/s" for r in rates)
        + " | total, both rates | receivers' CPU | ksoftirqd | load (1 min) |",
        "| --- | --- |" + " ---: |" * (6 + len(rates)),
    ]
    for name, f in figs.items():
        cells = [_n(f["both"]["user_us"]) + " µs", _n(f["both"]["sys_us"]) + " µs"]
        cells += [_n(f[r]["us"]) + " µs" for r in rates]
        cells += [_n(f["both"][k]) + " µs" for k in ("us", "recv_us", "ksoftirqd_us")] + [_n(f["load1"])]
        errs = f" ({f['errors']} short writes)" if f["errors"] else ""
        lines.append(f"| `{name}` | {f['what']}{errs} | " + " | ".join(cells) + " |")
    lines.append("")
    for run in results["runs"]:
        if not (run.get("perf") or {}).get("samples") or run.get(
            "repeat", 0
        ):  # not asked for, or perf could not record
            continue
        samples = run["perf"]["samples"]
        total = sum(samples.values()) or 1
        us = figs[run["variant"]]["both"]["us"] or 0
        lines += [
            f"Where `{run['variant']}`'s time goes (`--perf {run['variant']}`: `perf record -e cpu-clock -g` "
            f"on the sender over one more window at {run['perf']['rate']:g} msg/s, {total:,} samples; each "
            "sample in the first bucket that names a frame of its stack, in the order wakeup, ACK sent, "
            "ACK taken in, receiver's input, sender's output, system call; µs are the share of the "
            "variant's total over both rates):",
            "",
            "| where | share | µs per delivery |",
            "| --- | ---: | ---: |",
        ]
        for name, k in sorted(samples.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {name} | {100 * k / total:.0f} % | {us * k / total:.1f} |")
        lines.append("")
    if peer:
        by = peer.get("by_rate", {})
        lines_by = {
            r: by[str(r)]["us_per_delivery"] / 2
            for r in rates
            if (by.get(str(r)) or {}).get("us_per_delivery")
        }
        parts = [
            f"{_n(by[str(r)]['us_per_delivery'])} µs at {r:g} msg/s"
            + (
                f" ({_n(by[str(r)]['user_us'])} user + {_n(by[str(r)]['sys_us'])} kernel)"
                if by[str(r)].get("sys_us") is not None
                else ""
            )
            for r in lines_by
        ]
        if line is not None:
            parts.append(f"{_n(peer['us'])} µs over both rates")
        head = ["variant"] + [f"at {r:g} msg/s: floor / 0.5x line ({_n(lines_by[r])} µs)" for r in lines_by]
        head += [f"kernel alone at {r:g} msg/s / line" for r in lines_by]
        if line is not None:
            head.append(f"both rates: floor / 0.5x line ({_n(line)} µs)")
        lines += [
            f"The Node peer's server CPU per delivery: {'; '.join(parts)}; source: {peer['source']}.",
            "",
            "| " + " | ".join(head) + " |",
            "| --- |" + " ---: |" * (len(head) - 1),
        ]
        for name, f in figs.items():
            cells = [f"{_n(f[r]['us'])} µs = {f[r]['us'] / lines_by[r]:.2f}x" for r in lines_by]
            cells += [f"{f[r]['sys_us'] / lines_by[r]:.2f}x" for r in lines_by]
            if line is not None:
                cells.append(f"{_n(f['both']['us'])} µs = {f['both']['us'] / line:.2f}x")
            lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
        lines.append("")
    else:
        lines += ["No peer figure in this run (`--peer`, `--peer-json` or `--peer-us`): no 0.5x line.", ""]
    return "\n".join(lines)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if len(sys.argv) == 3 and sys.argv[1] == "--sender":
        run_sender(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(PLANS), default="full")
    parser.add_argument("--n", type=int, help="connections")
    parser.add_argument("--receivers", type=int, help="receiver processes")
    parser.add_argument("--seconds", type=float, help="per rate per window")
    parser.add_argument("--windows", type=int)
    parser.add_argument("--repeat", type=int, help="passes over the variants, interleaved")
    parser.add_argument("--variants", help=f"comma-separated, of {', '.join(VARIANTS)}")
    peer = parser.add_mutually_exclusive_group()
    peer.add_argument("--peer", action="store_true", help="run the scale harness's peer row (1 round) too")
    peer.add_argument("--peer-json", type=Path, help="the peer's figure from a saved scale-harness run")
    peer.add_argument(
        "--peer-us", help="the peer's CPU per delivery (µs) per rate, comma-separated, measured elsewhere"
    )
    parser.add_argument(
        "--peer-source", default="given on the command line (`--peer-us`)", help="where --peer-us is from"
    )
    parser.add_argument("--perf", metavar="VARIANTS", help="profile these variants' senders (perf, root)")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--from-json", type=Path, help="only render the markdown from saved results")
    args = parser.parse_args()
    if args.from_json:
        results = json.loads(args.from_json.read_text())
    else:
        variants = tuple(v for v in args.variants.split(",") if v) if args.variants else None
        for v in variants or ():
            if v not in VARIANTS:
                parser.error(f"unknown variant {v!r}")
        plan = plan_from(PLANS, args.mode, n=args.n, receivers=args.receivers, seconds=args.seconds,
                         windows=args.windows, variants=variants, repeat=args.repeat)  # fmt: skip
        if args.perf:
            plan.extra = {"perf": args.perf.split(",")}
        results = run_plan(plan, "run" if args.peer else None, args.json)
    # A peer figure from elsewhere, also for saved results (`--from-json`).
    if args.peer_json:
        results["peer"] = peer_from_json(args.peer_json)
    elif args.peer_us is not None:
        rates = results["plan"]["rates"]
        values = [float(x) for x in args.peer_us.split(",")]
        if len(values) != len(rates):
            parser.error(f"--peer-us needs one figure per rate ({len(rates)})")
        by_rate = {str(r): {"us_per_delivery": v} for r, v in zip(rates, values, strict=True)}
        results["peer"] = {"source": args.peer_source, "us": None, "by_rate": by_rate}
    if args.json:
        save_json(args.json, results)
    print(markdown(results))


if __name__ == "__main__":
    main()
