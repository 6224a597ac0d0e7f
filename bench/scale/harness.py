"""Scale benchmark: one session of N learners (10,000 in full mode) on a configurable set of server
processes, Classcast against the Node socket.io 4.8 peer, one run, the same generator.

Rows (each a fresh set of processes, repeated `rounds` times):

- `classcast`:          `python -m classroom serve`, 1 process, no Redis;
- `classcast-cluster`:  `serve --workers 2 --redis-url ...` on one port (skipped, with a note, while
                        this Classcast has no such flags);
- `peer`:               `bench/node-peer/peer.mjs`, 1 process;
- `peer-cluster`:       2 peer processes on two ports with `@socket.io/redis-streams-adapter`, learners
                        spread round-robin over the ports.

Clustered rows get a private `redis-server` on a free port (never the system one). Per row: a join
storm (N learners join at random moments within a spread; time from opening the websocket to the
join ack), memory per learner (RSS of every server process and Redis after the storm, minus before),
then trainer chat at 1 and 5 messages/s with the delivery latency (trainer's send to a learner's
receipt, one clock) and the server CPU per delivery (utime + stime from /proc of every server
process, Redis included, over the round / deliveries).

    python bench/scale/harness.py --mode quick|full [--rows classcast,peer] [--json out.json]

prints a markdown section for docs/benchmarks.md on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Run as a script too: `bench` importable from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.plans import plan_from, save_json
from bench.scale.child import Child

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "bench" / "node-peer"
SWARM = NODE_DIR / "swarm.mjs"
PEER = NODE_DIR / "peer.mjs"
ADMIN_KEY = "bench-admin-key"
ROWS = ("classcast", "classcast-cluster", "peer", "peer-cluster")
LABELS = {
    "classcast": "Classcast, 1 process",
    "classcast-cluster": "Classcast, 2 workers + Redis",
    "peer": "Node peer, 1 process",
    "peer-cluster": "Node peer, 2 processes + Redis (redis-streams-adapter)",
}
# The checkout whose `python -m classroom` is measured (`--classcast-dir`: another worktree).
CLASSCAST_DIR = ROOT
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Plan:
    n: int
    mode: str = "custom"
    rows: tuple[str, ...] = ROWS
    rounds: int = 3  # fresh processes per row, each a join storm, memory, and every rate
    rates: tuple[float, ...] = (1, 5)  # trainer chat messages/s
    seconds: float = 10  # per rate per round
    join_spread_s: float = 20
    join_limit_s: float = 180
    generators: int = 2  # learner processes
    quiet_limit_s: float = 600  # bound on waiting for the presence backlog to drain
    drain_s: float = 30
    # The peer's `--crowd`: from this many participants on, it announces joins to trainers only
    # (Classcast's `--crowd-size` rule); None is the plain peer, whose storm is O(N²).
    peer_crowd: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


PLANS = {
    "quick": Plan(n=500, mode="quick", rounds=3, seconds=5, join_spread_s=5),
    "full": Plan(
        n=10_000,
        mode="full",
        rounds=3,
        seconds=10,
        join_spread_s=30,
        join_limit_s=1200,
        generators=4,
        quiet_limit_s=900,
        peer_crowd=200,  # the plain peer's 10,000 storm: ~50 M presence deliveries, hours here
    ),
    "tiny": Plan(n=50, mode="tiny", rounds=1, seconds=2, join_spread_s=1, generators=2, drain_s=30),
}


def log(msg: str) -> None:
    print(f"[scale] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_nofile(need: int) -> None:
    """Raise this process's soft RLIMIT_NOFILE (inherited by every child) up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < need:
        log(f"RLIMIT_NOFILE hard limit {hard} is below the {need} descriptors this run needs")


def ensure_node_deps() -> None:
    """`npm ci` in bench/node-peer when its packages (the adapter included) are missing."""
    mods = NODE_DIR / "node_modules"
    needed = ("socket.io", "socket.io-client", "ws", "redis", "@socket.io/redis-streams-adapter")
    if all((mods / m / "package.json").exists() for m in needed):
        return
    log("npm ci in bench/node-peer")
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR, check=True, timeout=300
    )


def classcast_cluster_flags() -> str | None:
    """None when `serve` has --workers and --redis-url; otherwise why the clustered row is skipped."""
    out = subprocess.run(
        [sys.executable, "-m", "classroom", "serve", "--help"],
        cwd=CLASSCAST_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    missing = [f for f in ("--workers", "--redis-url") if f not in out]
    return f"this Classcast's `serve` has no {' or '.join(missing)}" if missing else None


# -- /proc ---------------------------------------------------------------------------------------


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # [0] is field 3 (state)


def tree(pids: list[int]) -> list[int]:
    """The given processes and all their descendants (workers a server forked)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (f := _stat(int(entry))) is not None:
            children.setdefault(int(f[1]), []).append(int(entry))
    out, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def cpu_s(pids: list[int]) -> float:
    """utime + stime of these processes, in seconds."""
    return sum(cpu_split(pids))


def cpu_split(pids: list[int]) -> tuple[float, float]:
    """(utime, stime) of these processes, in seconds: user space, and the kernel (on loopback the
    sender's `send` also runs the receiving side of TCP, so a server's delivery shows up there)."""
    user = system = 0
    for pid in pids:
        if (f := _stat(pid)) is not None:
            user += int(f[11])
            system += int(f[12])
    return user / CLK, system / CLK


def rss(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        if (f := _stat(pid)) is not None:
            total += int(f[21]) * PAGE
    return total


# -- server processes ----------------------------------------------------------------------------


@dataclass
class Group:
    """One row's server side: its processes, the URLs learners are spread over, its session."""

    row: str
    procs: list[subprocess.Popen]
    urls: list[str]
    redis_pid: int | None = None
    session: dict[str, Any] = field(default_factory=dict)

    def pids(self) -> list[int]:
        """Every process whose CPU and memory count as the server's (Redis included)."""
        roots = [p.pid for p in self.procs] + ([self.redis_pid] if self.redis_pid else [])
        return tree(roots)

    def gc(self) -> None:
        if self.row.startswith("peer"):
            for url in self.urls:
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(f"{url}/gc", timeout=10).read()


def _wait_ready(proc: subprocess.Popen, log_path: Path, ready: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while ready not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{proc.args} did not start:\n{log_path.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _token(link: str) -> tuple[str, str]:
    """(session id, token) of a /s/<id>/... link."""
    from urllib.parse import parse_qs, urlparse

    u = urlparse(link)
    return u.path.split("/")[2], parse_qs(u.query)["token"][0]


@contextlib.contextmanager
def servers(row: str, n: int, peer_crowd: int | None = None) -> Iterator[Group]:
    """Start a row's processes (and its private Redis), create the session; stop all on exit."""
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp, contextlib.ExitStack() as stack:

        def spawn(argv: list[str], name: str, ready: str, cwd: Path = ROOT) -> subprocess.Popen:
            path = Path(tmp) / f"{name}.log"
            with path.open("w") as out:
                proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
            procs.append(proc)
            _wait_ready(proc, path, ready)
            return proc

        def stop() -> None:
            for p in reversed(procs):
                if p.poll() is None:
                    p.terminate()
            for p in reversed(procs):
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)

        stack.callback(stop)
        redis_url, redis_pid = None, None
        if row.endswith("cluster"):
            rport = free_port()
            # Append-only file fsynced every second (Redis's default durable setting), no RDB dumps.
            argv = ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--dir", tmp,
                    "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]  # fmt: skip
            redis_pid = spawn(argv, "redis", "Ready to accept connections").pid
            redis_url = f"redis://127.0.0.1:{rport}"
        urls: list[str] = []
        if row.startswith("classcast"):
            port = free_port()
            argv = [sys.executable, "-m", "classroom", "serve", "--port", str(port), "--data-dir",
                    str(Path(tmp) / "data"), "--admin-key", ADMIN_KEY, "--log-level", "WARNING"]  # fmt: skip
            if redis_url:
                argv += ["--workers", "2", "--redis-url", redis_url]
            spawn(argv, "classcast", "Trainer link", CLASSCAST_DIR)
            urls = [f"http://127.0.0.1:{port}"]
        else:
            for i in range(2 if redis_url else 1):
                port = free_port()
                argv = ["node", "--expose-gc", str(PEER), "--port", str(port)]
                if redis_url:
                    argv += ["--redis-url", redis_url]
                if peer_crowd is not None:
                    argv += ["--crowd", str(peer_crowd)]
                spawn(argv, f"peer{i}", "Peer listening")
                urls.append(f"http://127.0.0.1:{port}")
        group = Group(row, [p for p in procs if p.pid != redis_pid], urls, redis_pid)
        title = f"Scale {n}"
        if row.startswith("classcast"):
            group.session = _post(f"{urls[0]}/api/sessions", {"title": title, "recording": True})
        else:
            group.session = _post(f"{urls[0]}/api/sessions", {"title": title})
            for url in urls[1:]:  # the other peer processes learn the same links
                _post(f"{url}/api/sessions", {"title": title, **{k: group.session[k] for k in
                      ("id", "learner_token", "trainer_token")}})  # fmt: skip
        yield group


# -- generator processes -------------------------------------------------------------------------


class Swarm(Child):
    """One swarm.mjs process: commands on stdin, answers (and `drained` notices) on stdout."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.drained: set[int] = set()
        super().__init__(["node", str(SWARM), json.dumps(cfg)], NODE_DIR)

    def _take(self, msg: dict[str, Any]) -> None:
        if "drained" in msg:
            self.drained.add(msg["drained"])
        else:
            self.msgs.append(msg)

    def answer(self, timeout: float) -> dict[str, Any]:
        return self.wait(None, timeout)

    def wait_drained(self, rid: int, deadline: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: rid in self.drained, max(0.0, deadline - time.monotonic()))


def ask_all(swarms: list[Swarm], timeout: float, **cmd: Any) -> list[dict[str, Any]]:
    for s in swarms:
        s.send(**cmd)
    return [s.answer(timeout) for s in swarms]


def wait_quiet(pids: list[int], frac: float = 0.05, limit_s: float = 600) -> float:
    """Wait until these processes are done with the presence backlog: under `frac` of a core
    over 1 s, or settled at a steady idle rate (under a third of a core, each of the last 5 s
    within 25 % of their mean: the peer's keep-alive at 10,000 learners is ~13 % of a core, and
    is never under `frac`); returns the seconds waited."""
    t0 = time.monotonic()
    prev = cpu_s(pids)
    rates: list[float] = []
    while time.monotonic() - t0 < limit_s:
        time.sleep(1)
        cur = cpu_s(pids)
        rates.append(cur - prev)
        prev = cur
        if rates[-1] < frac:
            break
        last = rates[-5:]
        mean = sum(last) / len(last)
        if len(last) == 5 and mean < 0.33 and all(abs(r - mean) <= 0.25 * mean for r in last):
            break
    return time.monotonic() - t0


class CpuSampler:
    """CPU time of some processes sampled every 0.1 s on CLOCK_MONOTONIC while in use, so a window
    can be closed afterwards at a moment learned later (the last delivery)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.samples: list[tuple[float, tuple[float, float]]] = []
        self.stop = threading.Event()

    def __enter__(self) -> CpuSampler:
        self.samples.append((time.monotonic(), cpu_split(self.pids)))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.wait(0.1):
            self.samples.append((time.monotonic(), cpu_split(self.pids)))

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
        self.samples.append((time.monotonic(), cpu_split(self.pids)))

    def until(self, t: float) -> tuple[float, float]:
        """(CPU seconds, wall seconds) from the start to the first sample at or after `t`."""
        user, system, wall = self.split_until(t)
        return user + system, wall

    def split_until(self, t: float) -> tuple[float, float, float]:
        """(user CPU seconds, kernel CPU seconds, wall seconds) from the start to the first sample
        at or after `t`."""
        t0, (u0, s0) = self.samples[0]
        t1, (u1, s1) = next(((ts, c) for ts, c in self.samples if ts >= t), self.samples[-1])
        return u1 - u0, s1 - s0, t1 - t0


def idle_cpu(pids: list[int], seconds: float) -> dict[str, float]:
    """CPU of these processes over `seconds` of nothing sent: what a row costs with its learners
    connected and idle (pings, timers, presence), which every delivery window also pays."""
    (u0, s0), t0 = cpu_split(pids), time.monotonic()
    time.sleep(seconds)
    (u1, s1), t1 = cpu_split(pids), time.monotonic()
    wall = t1 - t0
    return {"user_s": u1 - u0, "sys_s": s1 - s0, "wall_s": wall, "per_s": (u1 - u0 + s1 - s0) / wall}


def pct(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, round(p / 100 * (len(sorted_values) - 1)))]


def hist_pct(hist: dict[int, int], p: float) -> float | None:
    """Percentile (ms) of merged 0.1 ms buckets: the bucket's upper edge."""
    total = sum(hist.values())
    if not total:
        return None
    want, seen = p / 100 * total, 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= want:
            return (bucket + 1) / 10
    return (max(hist) + 1) / 10


def one_round(row: str, plan: Plan, index: int) -> dict[str, Any]:
    """Fresh processes for `row`: join storm, memory, then each chat rate; raw figures."""
    n = plan.n
    out: dict[str, Any] = {"row": row, "round": index, "n": n}
    with servers(row, n, plan.peer_crowd) as group, contextlib.ExitStack() as stack:
        link_session, learner_token = _token(group.session["join_url"])
        _, trainer_token = _token(group.session["trainer_url"])
        gens = max(1, min(plan.generators, n))
        swarms = []
        for g in range(gens):
            count = n // gens + (1 if g < n % gens else 0)
            offset = sum(n // gens + (1 if h < n % gens else 0) for h in range(g))
            swarms.append(Swarm({"role": "learners", "urls": group.urls, "token": learner_token,
                                 "session": link_session, "count": count, "offset": offset}))  # fmt: skip
        trainer = Swarm(
            {"role": "trainer", "urls": group.urls, "token": trainer_token, "session": link_session}
        )
        for s in [*swarms, trainer]:
            stack.callback(s.close)
        ask_all([trainer], 60, cmd="join")
        server_pids = group.pids()
        gen_pids = [s.proc.pid for s in [*swarms, trainer]]
        wait_quiet(server_pids + gen_pids, limit_s=30)
        group.gc()
        rss0, cpu0 = rss(server_pids), cpu_s(server_pids)
        t0 = time.monotonic()
        log(f"{row} #{index + 1}: {n} learners join within {plan.join_spread_s:g} s")
        joins = ask_all(swarms, plan.join_spread_s + plan.join_limit_s + 60, cmd="join",
                        spread_s=plan.join_spread_s, limit_s=plan.join_limit_s)  # fmt: skip
        join_ms = sorted(ms for j in joins for ms in j["join_ms"])
        storm_s = time.monotonic() - t0
        quiet_s = wait_quiet(server_pids + gen_pids, limit_s=plan.quiet_limit_s)
        server_pids = group.pids()
        group.gc()
        time.sleep(0.5)
        errors: dict[str, int] = {}
        retry_errors: dict[str, int] = {}  # why connections were tried again (refused, reset, timed out)
        for j in joins:
            for k, v in j["errors"].items():
                errors[k] = errors.get(k, 0) + v
            for k, v in j.get("retry_errors", {}).items():
                retry_errors[k] = retry_errors.get(k, 0) + v
        joined = sum(j["joined"] for j in joins)
        out["join"] = {
            "joined": joined, "failed": sum(j["failed"] for j in joins), "errors": errors,
            "retries": sum(j["retries"] for j in joins), "retry_errors": retry_errors,
            "p50_ms": pct(join_ms, 50), "p99_ms": pct(join_ms, 99),
            "max_ms": join_ms[-1] if join_ms else None,
            "storm_s": storm_s, "backlog_s": quiet_s, "server_cpu_s": cpu_s(server_pids) - cpu0,
        }  # fmt: skip
        out["memory"] = {"rss_before": rss0, "rss_after": rss(server_pids),
                         "bytes_per_learner": (rss(server_pids) - rss0) / max(1, joined)}  # fmt: skip
        p99 = out["join"]["p99_ms"]
        log(f"{row} #{index + 1}: joined {joined}/{n}, p99 {p99} ms, backlog {quiet_s:.0f} s")
        out["idle"] = idle = idle_cpu(server_pids, plan.seconds)
        log(f"{row} #{index + 1}: idle, {idle['per_s'] * 1000:.1f} ms of server CPU per second")
        out["rates"] = []
        for rid, rate in enumerate(plan.rates, 1):
            messages = round(rate * plan.seconds)
            ask_all(swarms, 30, cmd="round", id=rid, messages=messages)
            with CpuSampler(server_pids) as cpu:
                sent = ask_all([trainer], plan.seconds + plan.drain_s + 30, cmd="send", id=rid, rate=rate,
                               seconds=plan.seconds, drain_s=plan.drain_s)[0]  # fmt: skip
                deadline = time.monotonic() + plan.drain_s
                complete = all(s.wait_drained(rid, deadline) for s in swarms)
            stats = ask_all(swarms, 30, cmd="stats", id=rid)
            # The window ends at the round's last delivery (both on CLOCK_MONOTONIC), not when the
            # harness stopped waiting for learners a server dropped.
            last = max((st["last_us"] for st in stats), default=0) / 1e6
            user, system, wall = cpu.split_until(last if last else time.monotonic())
            cpu_used = user + system
            hist: dict[int, int] = {}
            for st in stats:
                for k, v in st["hist"].items():
                    hist[int(k)] = hist.get(int(k), 0) + v
            got = sum(st["got"] for st in stats)
            acked = sent["acked"]
            out["rates"].append({
                "rate": rate, "messages": messages, "acked": acked, "send_errors": sent["errors"],
                "trainer_rejoined": sent.get("rejoined", False),
                "expected": acked * joined, "deliveries": got, "lost": max(0, acked * joined - got),
                "dropped": sum(st["dropped"] for st in stats), "dupes": sum(st["dupes"] for st in stats),
                "complete": complete,
                "p50_ms": hist_pct(hist, 50), "p99_ms": hist_pct(hist, 99), "max_ms": hist_pct(hist, 100),
                "server_cpu_s": cpu_used, "server_user_s": user, "server_sys_s": system, "wall_s": wall,
                "us_per_delivery": cpu_used * 1e6 / got if got else None,
                "user_us_per_delivery": user * 1e6 / got if got else None,
                "sys_us_per_delivery": system * 1e6 / got if got else None,
                # What the deliveries added to the row's idle cost over the same window.
                "net_us_per_delivery": max(0.0, cpu_used - idle["per_s"] * wall) * 1e6 / got if got else None,
            })  # fmt: skip
            r = out["rates"][-1]
            log(f"{row} #{index + 1}: {rate:g}/s: {got}/{acked * joined} deliveries ({r['dropped']} learners "
                f"dropped), p99 {r['p99_ms']} ms, {r['us_per_delivery']} µs/delivery")  # fmt: skip
            wait_quiet(server_pids + gen_pids, limit_s=60)
    return out


def run_plan(plan: Plan, save: Path | None = None) -> dict[str, Any]:
    """Every row, `plan.rounds` times; with `save`, the raw results are rewritten there after each
    row's round, so a long run that is cut short keeps what it measured."""
    ensure_node_deps()
    raise_nofile(plan.n + 4096)
    results: dict[str, Any] = {"plan": plan.__dict__ | {"rows": list(plan.rows), "rates": list(plan.rates)}}
    results["skipped"] = {}
    if "classcast-cluster" in plan.rows and (why := classcast_cluster_flags()):
        log(f"skipping classcast-cluster: {why}")
        results["skipped"]["classcast-cluster"] = why
    if any(r.endswith("cluster") for r in plan.rows) and shutil.which("redis-server") is None:
        for r in plan.rows:
            if r.endswith("cluster"):
                results["skipped"].setdefault(r, "redis-server is not installed")
    rows = [r for r in plan.rows if r not in results["skipped"]]
    started = time.monotonic()
    load0 = os.getloadavg()
    results["runs"] = runs = []
    results["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    head = ["git", "rev-parse", "--short", "HEAD"]
    results["commit"] = subprocess.run(head, cwd=CLASSCAST_DIR, capture_output=True, text=True).stdout.strip()
    # Rows interleaved per round, so load from elsewhere on the machine falls on all of them alike.
    for i in range(plan.rounds):
        for row in rows:
            runs.append(one_round(row, plan, i))
            results["elapsed_s"] = time.monotonic() - started
            results["load"] = {"before": load0, "after": os.getloadavg()}
            if save is not None:
                save.parent.mkdir(parents=True, exist_ok=True)
                save.write_text(json.dumps(results, indent=1))
    return results


# -- report --------------------------------------------------------------------------------------


def _med(values: list[Any]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def figures(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per row: medians over rounds of every reported figure."""
    out: dict[str, dict[str, Any]] = {}
    for row in ROWS:
        runs = [r for r in results["runs"] if r["row"] == row]
        if not runs:
            continue
        f: dict[str, Any] = {
            "rounds": len(runs),
            "join_p99_ms": _med([r["join"]["p99_ms"] for r in runs]),
            "join_p50_ms": _med([r["join"]["p50_ms"] for r in runs]),
            "joined": min(r["join"]["joined"] for r in runs),
            "join_failed": sum(r["join"]["failed"] for r in runs),
            "backlog_s": _med([r["join"]["backlog_s"] for r in runs]),
            "join_cpu_s": _med([r["join"]["server_cpu_s"] for r in runs]),
            "idle_ms_per_s": _med([r["idle"]["per_s"] * 1000 for r in runs if "idle" in r]),
            "kib_per_learner": _med([r["memory"]["bytes_per_learner"] / 1024 for r in runs]),
            # Learners a server closed after their join (ping timeouts of a server running behind).
            "dropped": max((r["rates"][-1].get("dropped", 0) if r["rates"] else 0) for r in runs),
        }
        for rate in results["plan"]["rates"]:
            rr = [x for r in runs for x in r["rates"] if x["rate"] == rate]
            f[rate] = {
                "p50_ms": _med([x["p50_ms"] for x in rr]),
                "p99_ms": _med([x["p99_ms"] for x in rr]),
                "max_ms": max((x["max_ms"] or 0) for x in rr),
                "us_per_delivery": _med([x["us_per_delivery"] for x in rr]),
                "user_us": _med([x.get("user_us_per_delivery") for x in rr]),
                "sys_us": _med([x.get("sys_us_per_delivery") for x in rr]),
                "net_us": _med([x.get("net_us_per_delivery") for x in rr]),
                "lost": sum(x["lost"] for x in rr),
                "acked": sum(x["acked"] for x in rr),
                "messages": sum(x["messages"] for x in rr),
                "deliveries": sum(x["deliveries"] for x in rr),
            }
        # CPU per delivery over both rates of each round, then the median over rounds.
        f["us_per_delivery"] = _med(
            [
                sum(x["server_cpu_s"] for x in r["rates"]) * 1e6 / sum(x["deliveries"] for x in r["rates"])
                for r in runs
                if sum(x["deliveries"] for x in r["rates"])
            ]
        )
        out[row] = f
    return out


def _num(v: float | None, digits: int = 0, unit: str = "") -> str:
    return "–" if v is None else f"{v:,.{digits}f}{unit}"


def _ratio(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def markdown(results: dict[str, Any]) -> str:
    figs = figures(results)
    plan = results["plan"]
    rates = plan["rates"]
    rows = [r for r in ROWS if r in figs]
    n = plan["n"]
    done = ", ".join(f"{LABELS[r]}: {figs[r]['rounds']}" for r in rows)
    lines = [
        "## One session at scale (`bench/scale/harness.py`)",
        "",
        f"N = {n:,} learners and one trainer in one session, `{plan['mode']}` mode, Classcast at commit "
        f"{results.get('commit', 'unknown')}, run at {results.get('when', '?')}; whole run "
        f"{results['elapsed_s'] / 60:.1f} min, load average {results['load']['before'][0]:.1f} before and "
        f"{results['load']['after'][0]:.1f} after on {os.cpu_count()} cores. Every process shares the same "
        "cores (no pinning): the servers, Redis, "
        f"{plan['generators']} learner processes and the trainer's. Each figure is the median over the "
        f"rounds completed ({done}; "
        f"{plan['rounds']} planned); a round is a fresh set of server processes: a join storm, memory, then "
        f"trainer chat at {' and '.join(f'{r:g}' for r in rates)} messages/s for {plan['seconds']:g} s each.",
        "",
    ]
    if plan.get("peer_crowd") is not None:
        lines += [
            f"The peer ran with `--crowd {plan['peer_crowd']}`: from {plan['peer_crowd']:,} participants on "
            "it "
            "announces joins and leaves to trainers only and gives learners no participant list, the rule "
            "Classcast applies from its `--crowd-size`; without it the peer's storm is O(N²). Its join "
            "figures are therefore those of a peer taught Classcast's presence rule, not the plain one.",
            "",
        ]
    header = "| figure | " + " | ".join(LABELS[r] for r in rows) + " |"
    lines += [header, "| --- |" + " ---: |" * len(rows)]

    def row(name: str, key: Any, digits: int, unit: str) -> None:
        vals = []
        for r in rows:
            v = figs[r]
            for k in key if isinstance(key, tuple) else (key,):
                v = v.get(k) if isinstance(v, dict) else None
            vals.append(_num(v, digits, unit))
        lines.append(f"| {name} | " + " | ".join(vals) + " |")

    row("learners joined (fewest of rounds)", "joined", 0, "")
    row("join storm: connect to joined, p50", "join_p50_ms", 0, " ms")
    row("join storm: connect to joined, p99", "join_p99_ms", 0, " ms")
    row("presence backlog after the storm", "backlog_s", 0, " s")
    row("server CPU for the storm", "join_cpu_s", 1, " s")
    row("memory per learner", "kib_per_learner", 1, " KiB")
    row("learners the server dropped after joining (most of rounds)", "dropped", 0, "")
    for rate in rates:
        lines.append(
            f"| trainer messages acked at {rate:g} msg/s (all rounds) | "
            + " | ".join(f"{figs[r][rate]['acked']} of {figs[r][rate]['messages']}" for r in rows)
            + " |"
        )
        row(f"delivery latency p50 at {rate:g} msg/s", (rate, "p50_ms"), 1, " ms")
        row(f"delivery latency p99 at {rate:g} msg/s", (rate, "p99_ms"), 1, " ms")
        row(f"deliveries lost at {rate:g} msg/s (all rounds)", (rate, "lost"), 0, "")
        row(f"server CPU per delivery at {rate:g} msg/s", (rate, "us_per_delivery"), 1, " µs")
    row("server CPU per delivery, both rates", "us_per_delivery", 1, " µs")
    row("server CPU with learners idle (no messages), per second", "idle_ms_per_s", 1, " ms")
    for rate in rates:
        row(f"server CPU per delivery at {rate:g} msg/s: user space", (rate, "user_us"), 1, " µs")
        row(f"server CPU per delivery at {rate:g} msg/s: kernel", (rate, "sys_us"), 1, " µs")
        row(f"server CPU per delivery at {rate:g} msg/s, idle cost subtracted", (rate, "net_us"), 1, " µs")
    lines.append("")

    pairs = [(c, p) for c, p in (("classcast", "peer"), ("classcast-cluster", "peer-cluster"),
                                 ("classcast", "peer-cluster")) if c in figs and p in figs]  # fmt: skip
    if pairs:
        lines += [
            "Ratios, Classcast / peer (the issue's goals: CPU per delivery ≤ 0.5x, p99 ≤ 1x):",
            "",
            "| Classcast | peer | CPU per delivery | "
            + " | ".join(f"idle subtracted, {r:g} msg/s" for r in rates)
            + " | "
            + " | ".join(f"p99 at {r:g} msg/s" for r in rates)
            + " | join p99 | memory per learner |",
            "| --- | --- | ---: |" + " ---: |" * (2 * len(rates) + 2),
        ]
        for c, p in pairs:
            fc, fp = figs[c], figs[p]
            cells = [_ratio(fc["us_per_delivery"], fp["us_per_delivery"])]
            cells += [_ratio(fc[r].get("net_us"), fp[r].get("net_us")) for r in rates]
            cells += [_ratio(fc[r]["p99_ms"], fp[r]["p99_ms"]) for r in rates]
            cells += [
                _ratio(fc["join_p99_ms"], fp["join_p99_ms"]),
                _ratio(fc["kib_per_learner"], fp["kib_per_learner"]),
            ]
            lines.append(f"| {LABELS[c]} | {LABELS[p]} | " + " | ".join(cells) + " |")
        lines.append("")
    for r, why in results.get("skipped", {}).items():
        lines += [f"**{LABELS[r]}: not measured** ({why}).", ""]
    lines += [
        "How: learners are raw engine.io/socket.io websocket clients (`bench/node-peer/swarm.mjs`) spread "
        "round-robin over the row's ports (Classcast's workers share one port; the two peer processes "
        "listen on two). Join time runs from opening the websocket to the `join` ack; the peer "
        "announces every join to the whole room (N²/2 presence deliveries; with `--crowd`, to trainers "
        "only from that size on), Classcast only until the session is large (`--crowd-size`, 200 "
        "learners; then a summary a second), and the backlog line is how long the servers and "
        "learners stayed busy after the last ack. Memory is the "
        "RSS of every server process (Redis included) after the storm minus before (the peer after a "
        "forced GC). Latency runs from the trainer's send to a learner's receipt, both on "
        "CLOCK_MONOTONIC; CPU is utime + stime from `/proc/PID/stat` of every server process (Redis "
        "included) from the first send until every learner has every message, over the deliveries; "
        "user space is utime, kernel is stime (on loopback a sender's `send` also runs the receiving "
        "side of TCP). The idle cost is the same processes' CPU over a window of the same length with "
        "every learner connected and nothing sent (pings, timers); subtracted, it leaves what the "
        "deliveries themselves cost. "
        "The clustered peer shares rooms through Redis, but each process keeps its own copy of the "
        "session's state (a real app would keep it in Redis too, at a cost to the peer).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    # SIGTERM unwinds like Ctrl-C, so every server, Redis and generator process is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(PLANS), default="quick")
    parser.add_argument("--n", type=int, help="learners")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--peer-crowd", type=int, help="the peer's --crowd (N)")
    parser.add_argument("--rows", help=f"comma-separated, of {', '.join(ROWS)}")
    parser.add_argument("--json", type=Path, help="write the raw results here (after every row)")
    parser.add_argument("--classcast-dir", type=Path, help="measure the Classcast of this checkout")
    parser.add_argument("--from-json", type=Path, help="only render the markdown from saved results")
    args = parser.parse_args()
    if args.classcast_dir:
        global CLASSCAST_DIR
        CLASSCAST_DIR = args.classcast_dir.resolve()
    if args.from_json:
        results = json.loads(args.from_json.read_text())
    else:
        rows = tuple(r for r in args.rows.split(",") if r) if args.rows else None
        plan = plan_from(PLANS, args.mode, n=args.n or None, rounds=args.rounds or None, rows=rows)
        if args.peer_crowd is not None:
            plan.peer_crowd = args.peer_crowd
        results = run_plan(plan, args.json)
    if args.json:
        save_json(args.json, results)
    print(markdown(results))


if __name__ == "__main__":
    main()
