"""Fan-out benchmark: Classcast against a plain Node socket.io 4.8 server (the peer), driven by the
same load generator (Node, socket.io-client 4.8) through the same protocol subset.

Scenarios at N learners in one session: trainer chat fan-out at 20 messages/s and as fast as the
server keeps up (windowed on complete delivery), a join storm on a prepared session (500 chat
messages, 2,000 whiteboard shapes), a vote storm, memory per idle learner, and Classcast's
recording cost (recording on / off / data dir on tmpfs). The server runs pinned to one core, the
generator to the other; the server's CPU time per delivery comes from /proc/PID/stat over each
counted window, and the generator reports its own.

    python bench/fanout/harness.py --mode quick|full [--png docs/bench-fanout.png] [--json out.json]

prints a markdown section for docs/benchmarks.md on stdout (progress on stderr) and draws the
plot. `section()` does the same from Python.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# Run as a script too: `bench` importable from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.plans import plan_from, save_json

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "bench" / "node-peer"
GENERATOR = NODE_DIR / "generator.mjs"
PEER = NODE_DIR / "peer.mjs"
ADMIN_KEY = "bench-admin-key"
SERVER_CPU, GENERATOR_CPU = "0", "1"
KINDS = ("classcast", "peer")


@dataclass
class Plan:
    ns: list[int]
    mode: str = "custom"
    rate_rounds: int = 3
    rate_seconds: float = 3
    max_rounds: int = 3
    max_seconds: float = 3
    in_flight: int = 8000  # as fast as possible: deliveries in flight (window = this / N, 8 to 64 messages)
    vote_rounds: int = 3
    vote_spread_s: float = 1
    settle_s: float = 1  # idle time before the memory reading
    join_rounds: int = 1
    join_chat: int = 500
    join_shapes: int = 2000
    join_spread_s: float = 5
    join_limit_s: float = 120  # a join not answered by then counts as failed
    warmup_s: float = 1
    # Classcast fan-out runs besides the main one: recording "off", "tmpfs" (data dir on tmpfs).
    variants: tuple[str, ...] = ("off",)
    deflate: bool = True  # the generator offers permessage-deflate, as browsers do
    kinds: tuple[str, ...] = KINDS
    timeout_s: float = 900  # one generator run
    extra: dict[str, Any] = field(default_factory=dict)


PLANS = {
    "quick": Plan(ns=[200, 1000], mode="quick", rate_rounds=3, max_rounds=3, vote_rounds=3, join_rounds=1),
    "full": Plan(
        ns=[200, 1000, 2000],
        mode="full",
        rate_rounds=5,
        rate_seconds=5,
        max_rounds=5,
        max_seconds=5,
        vote_rounds=5,
        join_rounds=3,
        join_limit_s=300,
        variants=("off", "tmpfs"),
    ),
    # For the tests: both servers, tiny N, one short round of everything.
    "tiny": Plan(
        ns=[5],
        mode="tiny",
        rate_rounds=1,
        rate_seconds=1,
        max_rounds=1,
        max_seconds=1,
        vote_rounds=1,
        join_rounds=1,
        join_chat=20,
        join_shapes=40,
        join_spread_s=0.5,
        vote_spread_s=0.5,
        settle_s=0.3,
        warmup_s=0.5,
        variants=("off",),
        timeout_s=60,
    ),
}


def log(msg: str) -> None:
    print(f"[fanout] {msg}", file=sys.stderr, flush=True)


# -- prerequisites -------------------------------------------------------------------------------


def node_available() -> bool:
    return shutil.which("node") is not None and shutil.which("npm") is not None


def ensure_node_deps() -> None:
    """Install the peer's and generator's npm packages from the lockfile when they are missing."""
    if (NODE_DIR / "node_modules" / "socket.io" / "package.json").exists() and (
        NODE_DIR / "node_modules" / "socket.io-client" / "package.json"
    ).exists():
        return
    log("npm ci in bench/node-peer")
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, check=True, timeout=300
    )


def pinned(cpu: str, argv: list[str]) -> list[str]:
    """Pin to one core with taskset where there are at least two and taskset exists."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", cpu, *argv]
    return argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- servers -------------------------------------------------------------------------------------


@dataclass
class ServerProc:
    kind: str
    proc: subprocess.Popen
    base: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid  # taskset execs the server: same pid

    def create_session(self, title: str, recording: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"title": title}
        if self.kind == "classcast":
            body["recording"] = recording
        req = urllib.request.Request(
            f"{self.base}/api/sessions",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def rss(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0


@contextlib.contextmanager
def server(
    kind: str, data_dir: Path | None = None, timeout: float = 30, extra: tuple[str, ...] = ()
) -> Iterator[ServerProc]:
    """Start a server as a subprocess on the server core (`extra`: more flags for Classcast);
    stop it (SIGKILL after 5 s) on exit."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
        log_path = Path(tmp) / "server.log"
        if kind == "classcast":
            data = data_dir or Path(tmp) / "data"
            argv = [
                sys.executable, "-m", "classroom", "serve", "--port", str(port),
                "--data-dir", str(data), "--admin-key", ADMIN_KEY, *extra,
            ]  # fmt: skip
            ready = "Trainer link"
        else:
            argv = ["node", "--expose-gc", str(PEER), "--port", str(port)]
            ready = "Peer listening"
        with log_path.open("w") as out:
            proc = subprocess.Popen(
                pinned(SERVER_CPU, argv), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True
            )
        srv = ServerProc(kind, proc, f"http://127.0.0.1:{port}", log_path)
        try:
            deadline = time.monotonic() + timeout
            while ready not in log_path.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} did not start:\n{log_path.read_text()[-2000:]}")
                time.sleep(0.05)
            yield srv
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def run_generator(
    srv: ServerProc,
    session: dict[str, Any],
    cfg: dict[str, Any],
    timeout: float,
    on_marker: Callable[[str], None] | None = None,
) -> dict:
    """Run the Node generator on its own core; return its JSON result. Marker lines it prints
    (`{"marker": ...}`, with cfg markers=true) go to `on_marker` as they come."""
    cfg = {
        "server": srv.kind,
        "server_pid": srv.pid,
        "clk_tck": os.sysconf("SC_CLK_TCK"),
        "trainer_url": session["trainer_url"],
        "join_url": session["join_url"],
        "gc_url": f"{srv.base}/gc" if srv.kind == "peer" else None,
        "timeout_s": timeout,
        "markers": on_marker is not None,
        **cfg,
    }
    argv = pinned(GENERATOR_CPU, ["node", str(GENERATOR), json.dumps(cfg)])
    proc = subprocess.Popen(argv, cwd=NODE_DIR, stdout=subprocess.PIPE, text=True)
    killer = threading.Timer(timeout + 30, proc.kill)
    killer.start()
    result = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if not line.startswith("{"):
                continue
            msg = json.loads(line)
            if "marker" in msg:
                if on_marker is not None:
                    on_marker(msg["marker"])
            else:
                result = msg
        proc.wait()
    finally:
        killer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if result is None:
        raise RuntimeError(f"generator printed no result (exit {proc.returncode})")
    if "error" in result:
        raise RuntimeError(f"generator failed on {srv.kind}: {result['error']}")
    return result


# -- the matrix ----------------------------------------------------------------------------------


def window(in_flight: int, n: int) -> int:
    """Messages in flight in the as-fast-as-possible rounds: enough to keep a server busy."""
    return max(8, min(64, -(-in_flight // n)))


def commit() -> str:
    """The commit under test, marked dirty when the server's code has local changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()  # fmt: skip
        code = ["classroom", "signaling", "recorder"]
        dirty = subprocess.run(["git", "status", "--porcelain", *code], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()  # fmt: skip
        return f"{head}{' (with local changes)' if dirty else ''}" if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_plan(plan: Plan) -> dict[str, Any]:
    """Every scenario for every server and N; raw generator results, grouped."""
    ensure_node_deps()
    results: dict[str, Any] = {
        "plan": plan.__dict__ | {"variants": list(plan.variants), "kinds": list(plan.kinds)}
    }
    runs: list[dict[str, Any]] = []
    started = time.monotonic()
    chat_cfg = {
        "rate": {
            "rate": 20,
            "seconds": plan.rate_seconds,
            "rounds": plan.rate_rounds,
            "warmup_s": plan.warmup_s,
        },
        "max": {"seconds": plan.max_seconds, "rounds": plan.max_rounds},
    }
    for n in plan.ns:
        for kind in plan.kinds:
            # The flood guard allows a Classcast connection 200 commands/s: the trainer stays under.
            max_rate = 190 if kind == "classcast" else 0
            base = {"n": n, "deflate": plan.deflate, "connect_concurrency": 50}
            mx = {**chat_cfg["max"], "max_rate": max_rate, "window": window(plan.in_flight, n)}

            log(f"{kind} n={n}: memory, fan-out, votes")
            with server(kind) as srv:
                session = srv.create_session(f"Fan-out {n}")
                cfg = {**base, "steps": ["memory", "rate", "max", "vote"], "rate": chat_cfg["rate"],
                       "max": mx, "vote": {"rounds": plan.vote_rounds, "spread_s": plan.vote_spread_s},
                       "settle_s": plan.settle_s}  # fmt: skip
                t0 = time.monotonic()
                runs.append({"kind": kind, "variant": "on", "phase": "main", "n": n,
                             **run_generator(srv, session, cfg, plan.timeout_s),
                             "elapsed_s": time.monotonic() - t0})  # fmt: skip

            if kind == "classcast":
                for variant in plan.variants:
                    log(f"{kind} n={n}: variant {variant}")
                    with contextlib.ExitStack() as stack:
                        data_dir = None
                        if variant == "tmpfs":
                            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(dir="/dev/shm")))
                        srv = stack.enter_context(server(kind, data_dir))
                        session = srv.create_session(f"Fan-out {n} {variant}", recording=variant != "off")
                        cfg = {**base, "steps": ["rate", "max"], "rate": chat_cfg["rate"], "max": mx}
                        t0 = time.monotonic()
                        runs.append({"kind": kind, "variant": variant, "phase": "fanout", "n": n,
                                     **run_generator(srv, session, cfg, plan.timeout_s),
                                     "elapsed_s": time.monotonic() - t0})  # fmt: skip

            for r in range(plan.join_rounds):
                log(f"{kind} n={n}: join storm {r + 1}/{plan.join_rounds}")
                with server(kind) as srv:
                    session = srv.create_session(f"Join storm {n}")
                    join = {"chat": plan.join_chat, "shapes": plan.join_shapes,
                            "spread_s": plan.join_spread_s, "limit_s": plan.join_limit_s,
                            "trainers": 4, "rate": max_rate}  # fmt: skip
                    cfg = {**base, "steps": ["join"], "join": join}
                    t0 = time.monotonic()
                    runs.append({"kind": kind, "variant": "on", "phase": "join", "n": n,
                                 **run_generator(srv, session, cfg, plan.timeout_s),
                                 "elapsed_s": time.monotonic() - t0})  # fmt: skip
    results["runs"] = runs
    results["elapsed_s"] = time.monotonic() - started
    results["commit"] = commit()
    return results


# -- figures -------------------------------------------------------------------------------------


def med(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def figures(results: dict[str, Any]) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Per (kind, variant, N): medians over rounds of every figure the report shows."""
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    for run in results["runs"]:
        f = out.setdefault((run["kind"], run["variant"], run["n"]), {})
        for mode in ("rate", "max"):
            rounds = run.get(mode)
            if not rounds:
                continue
            f[mode] = {
                "rounds": len(rounds),
                "deliveries_per_s": med([r["deliveries_per_s"] for r in rounds]),
                "messages_per_s": med([r["messages_per_s"] for r in rounds]),
                "p50_ms": med([r["latency_ms"]["p50"] for r in rounds]),
                "p99_ms": med([r["latency_ms"]["p99"] for r in rounds]),
                "max_ms": max((r["latency_ms"]["max"] or 0) for r in rounds),
                "lost": sum(r["lost"] for r in rounds),
                "deliveries": sum(r["deliveries"] for r in rounds),
                "expected": sum(r["expected"] for r in rounds),
                "dupes": sum(r["dupes"] for r in rounds),
                "us_per_delivery": med([r["server_us_per_delivery"] for r in rounds]),
                "sys_us_per_delivery": med([r.get("server_sys_us_per_delivery") for r in rounds]),
                "server_busy": med([r["server_busy"] for r in rounds]),
                "gen_busy": max(r["gen_busy"] for r in rounds),
                "other_cores": max(r.get("other_cores", 0) for r in rounds),
                "send_errors": sum(sum(r["send_errors"].values()) for r in rounds),
            }
        if run.get("memory"):
            f["memory_per_learner"] = run["memory"]["bytes_per_learner"]
            f["connect_s"] = run["setup"]["connect_s"]
        if run.get("extensions") is not None and run["phase"] == "main":
            f["extensions"] = run["extensions"] or "none"
        if run.get("vote"):
            v = run["vote"]
            f["vote"] = {
                "rounds": len(v),
                "exact": all(r["exact"] for r in v),
                "final_ms": med([r["final_ms"] for r in v]),
                "after_last_ms": med([r["after_last_vote_ms"] for r in v]),
                "ack_p99_ms": med([r["ack_ms"]["p99"] for r in v]),
                "server_cpu_s": med([r["server_cpu_s"] for r in v]),
            }
        if run.get("join"):
            j = f.setdefault("join_runs", [])
            j.extend(run["join"])
            f["prepare_s"] = run["prepare"]["prepare_s"]
    for f in out.values():
        runs = f.pop("join_runs", None)
        if runs:
            f["join"] = {
                "rounds": len(runs),
                "usable": sum(r["usable"] for r in runs),
                "learners": sum(r["learners"] for r in runs),
                "p50_ms": med([r["snapshot_ms"]["p50"] for r in runs]),
                "p99_ms": med([r["snapshot_ms"]["p99"] for r in runs]),
                "max_ms": max((r["snapshot_ms"]["max"] or 0) for r in runs),
                "storm_s": med([r["storm_s"] for r in runs]),
                "snapshot_bytes": med([r["snapshot_bytes"] for r in runs]),
                "server_cpu_s": med([r["server_cpu_s"] for r in runs]),
                "gen_busy": max(r["gen_cpu_s"] / r["wall_s"] for r in runs),
            }
    return out


# -- markdown ------------------------------------------------------------------------------------


def _num(v: float | None, digits: int = 0, unit: str = "") -> str:
    if v is None:
        return "–"
    return f"{v:,.{digits}f}{unit}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    r = a / b
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def _table(rows: list[tuple[int, str, float | None, float | None, int, str]], note: str = "") -> list[str]:
    lines = [
        "| N | figure | Classcast | Node peer | Classcast / peer |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for n, name, c, p, digits, unit in rows:
        lines.append(
            f"| {n:,} | {name} | {_num(c, digits, unit)} | {_num(p, digits, unit)} | {_ratio(c, p)} |"
        )
    if note:
        lines += ["", note]
    return [*lines, ""]


def _get(f: dict, *path: str) -> Any:
    for p in path:
        if not isinstance(f, dict) or p not in f:
            return None
        f = f[p]
    return f


def markdown(results: dict[str, Any], png: str | None = None) -> str:
    figs = figures(results)
    plan = results["plan"]
    ns = plan["ns"]

    def pct(values: tuple[Any, Any]) -> tuple[Any, Any]:
        a, b = values
        return (None if a is None else a * 100, None if b is None else b * 100)

    def kib(values: tuple[Any, Any]) -> tuple[Any, Any]:
        a, b = values
        return (None if a is None else a / 1024, None if b is None else b / 1024)

    def pair(n: int, *path: str) -> tuple[Any, Any]:
        return _get(figs.get(("classcast", "on", n), {}), *path), _get(figs.get(("peer", "on", n), {}), *path)

    ext = {k: _get(figs.get((k, "on", ns[0]), {}), "extensions") for k in KINDS}
    gen_busy = max((f[m]["gen_busy"] for f in figs.values() for m in ("rate", "max") if m in f), default=0.0)
    other = max((f[m]["other_cores"] for f in figs.values() for m in ("rate", "max") if m in f), default=0.0)
    lines = [
        "## Live fan-out (`bench/fanout/harness.py`)",
        "",
        f"Classcast at commit {results.get('commit', 'unknown')}, `{plan.get('mode', '')}` mode.",
        "",
        f"One session, N learners and one trainer, each its own socket.io connection (websocket). Server "
        f"and load generator run as separate processes pinned to different cores with `taskset` (server on "
        f"core {SERVER_CPU}, generator on core {GENERATOR_CPU}); loopback only. The generator is one Node "
        "process with socket.io-client 4.8 and drives both servers through the same protocol subset "
        "(`join`, `chat.send`, `poll.open`/`poll.vote`, `wb.shape`). The peer is `bench/node-peer/peer.mjs`: "
        "socket.io 4.8 written the plain way (one room, `io.to(room).emit`, acks, state in memory, no disk). "
        "The generator offers permessage-deflate as browsers do; negotiated: Classcast "
        f"`{ext['classcast']}`, peer `{ext['peer']}`.",
        "",
        "Server CPU per delivery is the server process's utime+stime (`/proc/PID/stat`) over the counted "
        "window divided by the learner deliveries in it. Each figure is the median over rounds "
        f"({plan['rate_rounds']} rounds of {plan['rate_seconds']:g} s at 20 messages/s, {plan['max_rounds']} "
        f"of {plan['max_seconds']:g} s as fast as possible, {plan['vote_rounds']} vote storms, "
        f"{plan['join_rounds']} join storm(s) per N; max is over all rounds), after a warm-up round. "
        "Latency is from the trainer's send to a learner's receipt, both stamped by the generator's clock. "
        f"Generator CPU peaked at {gen_busy:.0%} of its core"
        + (
            " (it was not the bottleneck)."
            if gen_busy < 0.85
            else ": where it is near 100 % the generator, not the server, bounds deliveries/s (a floor for "
            "that server), and server CPU per delivery is the fair comparison."
        )
        + f" Other processes used at most {other:.2f} of a core during any counted round."
        + f" Whole run: {results['elapsed_s'] / 60:.1f} min.",
        "",
    ]

    lines += ["### 1. Fan-out: trainer chat at 20 messages/s", ""]
    rows = []
    for n in ns:
        rows += [
            (n, "deliveries/s", *pair(n, "rate", "deliveries_per_s"), 0, ""),
            (n, "latency p50", *pair(n, "rate", "p50_ms"), 1, " ms"),
            (n, "latency p99", *pair(n, "rate", "p99_ms"), 1, " ms"),
            (n, "latency max", *pair(n, "rate", "max_ms"), 1, " ms"),
            (n, "deliveries lost", *pair(n, "rate", "lost"), 0, ""),
            (n, "server CPU per delivery", *pair(n, "rate", "us_per_delivery"), 1, " µs"),
            (n, "server core busy", *pct(pair(n, "rate", "server_busy")), 0, " %"),
            (n, "generator core busy (max of rounds)", *pct(pair(n, "rate", "gen_busy")), 0, " %"),
        ]  # fmt: skip
    lines += _table(rows, "Offered load: 20 × N deliveries/s. A server that keeps up delivers all of it.")

    lines += ["### 1b. Fan-out: trainer chat as fast as the server keeps up", ""]
    rows = []
    for n in ns:
        rows += [
            (n, "deliveries/s", *pair(n, "max", "deliveries_per_s"), 0, ""),
            (n, "messages/s", *pair(n, "max", "messages_per_s"), 0, ""),
            (n, "latency p99", *pair(n, "max", "p99_ms"), 1, " ms"),
            (n, "deliveries lost", *pair(n, "max", "lost"), 0, ""),
            (n, "server CPU per delivery", *pair(n, "max", "us_per_delivery"), 1, " µs"),
            (n, "… of which in the kernel (sys)", *pair(n, "max", "sys_us_per_delivery"), 1, " µs"),
            (n, "server core busy", *pct(pair(n, "max", "server_busy")), 0, " %"),
            (n, "generator core busy (max of rounds)", *pct(pair(n, "max", "gen_busy")), 0, " %"),
        ]  # fmt: skip
    capped = [
        n for n in ns if (_get(figs.get(("classcast", "on", n), {}), "max", "messages_per_s") or 0) >= 160
    ]
    in_flight = plan.get("in_flight", 8000)
    note = (
        f"The trainer keeps {in_flight:,} / N messages in flight (8 to 64: "
        + ", ".join(f"{window(in_flight, n)} at N = {n:,}" for n in ns)
        + "); a message leaves the window when every learner has it. Classcast's per-connection "
        "flood guard (200 commands/s) caps its trainer at 190 "
        "messages/s"
        + (
            f", which bound (or nearly bound) it at N = {', '.join(map(str, capped))}: there the server "
            "CPU per delivery is the figure to compare."
            if capped
            else "; it did not bind."
        )
    )
    lines += _table(rows, note)

    lines += ["### 2. Join storm", ""]
    rows = []
    for n in ns:
        rows += [
            (n, "time to usable snapshot p50", *pair(n, "join", "p50_ms"), 0, " ms"),
            (n, "time to usable snapshot p99", *pair(n, "join", "p99_ms"), 0, " ms"),
            (n, "usable snapshots", *pair(n, "join", "usable"), 0, ""),
            (n, "snapshot size", *kib(pair(n, "join", "snapshot_bytes")), 0, " KiB"),
            (n, "server CPU during the storm", *pair(n, "join", "server_cpu_s"), 1, " s"),
            (n, "generator core busy", *pct(pair(n, "join", "gen_busy")), 0, " %"),
        ]  # fmt: skip
    lines += _table(
        rows,
        f"N learners connect and `join` at random moments within {plan['join_spread_s']:g} s a session "
        f"holding {plan['join_chat']} chat messages and {plan['join_shapes']:,} whiteboard shapes; time from "
        "opening the connection to a join ack whose snapshot accounts for all of them: the peer sends them "
        "all; Classcast sends the last 100 messages and the current page whole, and counts the older "
        "messages in `more` (paged on demand). Both servers announce each join to the room "
        "(`participant.joined`), so a storm is also N²/2 deliveries.",
    )

    lines += ["### 3. Vote storm", ""]
    rows = []
    for n in ns:
        rows += [
            (n, "trainer's count final and exact, from first vote", *pair(n, "vote", "final_ms"), 0, " ms"),
            (n, "… from the last vote sent", *pair(n, "vote", "after_last_ms"), 0, " ms"),
            (n, "vote ack p99", *pair(n, "vote", "ack_p99_ms"), 0, " ms"),
        ]
    exact = all(_get(f, "vote", "exact") in (None, True) for f in figs.values())
    lines += _table(
        rows,
        f"N learners vote at random moments within {plan.get('vote_spread_s', 1):g} s on an open poll; "
        "the trainer's live count "
        "(`poll.voted` counts) is final when it shows all N votes with the exact per-option counts"
        + ("; it always became exact." if exact else "; **in some round it never became exact.**"),
    )

    lines += ["### 4. Memory per idle learner", ""]
    rows = [(n, "RSS delta / N", *kib(pair(n, "memory_per_learner")), 1, " KiB") for n in ns]
    lines += _table(
        rows,
        "Server RSS after N learners joined and the server went idle, minus before "
        "(the peer after a forced GC).",
    )

    variants = ["on", *plan["variants"]]
    lines += ["### 5. Classcast's recording cost", ""]
    head = "| N | figure | " + " | ".join(f"recording {v}" for v in variants) + " | on / off |"
    lines += [head, "| ---: | --- |" + " ---: |" * (len(variants) + 1)]
    for n in ns:
        for name, path, digits, unit in (
            ("deliveries/s, as fast as possible", ("max", "deliveries_per_s"), 0, ""),
            ("server CPU per delivery, as fast as possible", ("max", "us_per_delivery"), 1, " µs"),
            ("latency p99 at 20 messages/s", ("rate", "p99_ms"), 1, " ms"),
            ("server CPU per delivery at 20 messages/s", ("rate", "us_per_delivery"), 1, " µs"),
        ):
            vals = [_get(figs.get(("classcast", v, n), {}), *path) for v in variants]
            off = vals[variants.index("off")] if "off" in variants else None
            cells = " | ".join(_num(v, digits, unit) for v in vals)
            lines.append(f"| {n:,} | {name} | {cells} | {_ratio(vals[0], off)} |")
    lines += [
        "",
        "`on`: the session is recorded (its log fsynced, group commit). `off`: created with "
        '`"recording": false`, which still journals for crash safety. '
        + ("`tmpfs`: recording on, data directory on tmpfs (no disk flush). " if "tmpfs" in variants else "")
        + "Each on a fresh server.",
        "",
    ]
    if png:
        lines += [f"![p99 latency and deliveries per second against N]({png})", ""]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = figures(results)
    ns = results["plan"]["ns"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    ax1, ax2, ax3 = axes
    for kind, label, style, color in (
        ("classcast", "Classcast", "o-", "tab:blue"),
        ("peer", "Node socket.io peer", "s--", "tab:orange"),
    ):

        def series(*path: str, kind: str = kind) -> list[float]:
            values = [_get(figs.get((kind, "on", n), {}), *path) for n in ns]
            return [v if v is not None else float("nan") for v in values]

        ax1.plot(ns, series("rate", "p99_ms"), style, color=color, label=label)
        ax2.plot(ns, series("max", "deliveries_per_s"), style, color=color, label=label)
        ax3.plot(ns, series("max", "us_per_delivery"), style, color=color, label=label)
        # Hollow markers where something other than the server bounded the rate.
        bounded = [
            (n, v)
            for n, v, g, m in zip(
                ns,
                series("max", "deliveries_per_s"),
                series("max", "gen_busy"),
                series("max", "messages_per_s"),
                strict=True,
            )
            if g >= 0.9 or (kind == "classcast" and m >= 160)
        ]
        if bounded:
            ax2.plot(
                *zip(*bounded, strict=True), style[0], color="white", markeredgecolor=color, markersize=9
            )
    ax1.set(title="Delivery latency p99, chat at 20 messages/s", xlabel="learners (N)", ylabel="ms")
    ax2.set(title="Deliveries/s, as fast as possible", xlabel="learners (N)", ylabel="deliveries/s")
    ax2.text(
        0.02, 0.02, "hollow: bound by the generator's core or\n"
        "Classcast's trainer flood guard, not the server",
        transform=ax2.transAxes, fontsize=8, va="bottom",
    )  # fmt: skip
    ax3.set(title="Server CPU per delivery, as fast as possible", xlabel="learners (N)", ylabel="µs")
    for ax in axes:
        ax.set_xticks(ns)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def section(
    mode: str = "full", png: Path | None = ROOT / "docs" / "bench-fanout.png", **overrides: Any
) -> str:
    """Run the matrix and return the markdown section (run.py can call this)."""
    plan = replace(PLANS[mode], **overrides)
    results = run_plan(plan)
    rel = None
    if png is not None:
        plot(results, png)
        rel = os.path.relpath(png, ROOT / "docs")
    return markdown(results, rel)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(PLANS), default="full")
    parser.add_argument("--n", type=int, action="append", help="learner counts (repeatable)")
    parser.add_argument("--only", choices=KINDS, help="one server only")
    parser.add_argument(
        "--no-deflate", action="store_true", help="the generator does not offer permessage-deflate"
    )
    parser.add_argument("--png", type=Path, default=ROOT / "docs" / "bench-fanout.png")
    parser.add_argument("--no-png", action="store_true", help="draw no plot")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    parser.add_argument("--from-json", type=Path, help="only render markdown and plot from saved results")
    args = parser.parse_args()
    if args.from_json:
        results = json.loads(args.from_json.read_text())
    else:
        only = (args.only,) if args.only else None
        plan = plan_from(PLANS, args.mode, ns=args.n, kinds=only, deflate=False if args.no_deflate else None)
        results = run_plan(plan)
    if args.json:
        save_json(args.json, results)
    rel = None
    if not args.no_png:
        plot(results, args.png)
        rel = os.path.relpath(args.png, ROOT / "docs")
    print(markdown(results, rel))


if __name__ == "__main__":
    main()
