"""Idle cost of a server: N learners connected and doing nothing (pings and pongs only).

Starts a row's processes as the scale harness does (`harness.servers`), N learners from its
generator (`swarm.mjs`), waits for the join backlog to settle, then measures the CPU (utime + stime
from /proc) of every server process over several windows and prints the median per second.

    python bench/scale/idle.py [--row classcast|classcast-cluster] [--n 5000] [--windows 6]
                               [--seconds 5] [--settle 15] [--code DIR] [--hold S]

`--code DIR`: run the Classcast server from another checkout (a before/after comparison on the
same machine). `--hold S`: keep everything up S seconds after measuring (to attach a profiler to
the printed pids). Bounded: joins time out, every process is stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.scale import harness


def measure(
    row: str, n: int, windows: int, seconds: float, hold: float, generators: int, settle: float
) -> dict:
    harness.raise_nofile(2 * n + 1000)
    with harness.servers(row, n) as group, contextlib.ExitStack() as stack:
        session, token = harness._token(group.session["join_url"])
        swarms = []
        for g in range(generators):
            count = n // generators + (1 if g < n % generators else 0)
            offset = sum(n // generators + (1 if h < n % generators else 0) for h in range(g))
            swarm = harness.Swarm({"role": "learners", "urls": group.urls, "token": token,
                                   "session": session, "count": count, "offset": offset})  # fmt: skip
            stack.callback(swarm.close)
            swarms.append(swarm)
        joins = harness.ask_all(swarms, 240, cmd="join", spread_s=10, limit_s=180)
        joined = sum(j["joined"] for j in joins)
        pids = group.pids()
        harness.wait_quiet(pids, limit_s=60)
        time.sleep(settle)  # the join storm's tail (presence, first pings) out of the windows
        per_pid: dict[int, list[float]] = {pid: [] for pid in pids}
        totals = []
        for _ in range(windows):
            before = {pid: harness.cpu_s([pid]) for pid in pids}
            t0 = time.monotonic()
            time.sleep(seconds)
            wall = time.monotonic() - t0
            total = 0.0
            for pid in pids:
                ms = (harness.cpu_s([pid]) - before[pid]) * 1000 / wall
                per_pid[pid].append(ms)
                total += ms
            totals.append(total)
            each = " ".join(f"{v[-1]:.0f}" for v in per_pid.values())
            harness.log(f"{row}: window {total:.1f} ms/s ({each})")
        if hold:
            harness.log(f"holding {hold:g} s; server pids {pids}")
            time.sleep(hold)
        return {
            "row": row,
            "n": n,
            "joined": joined,
            "windows_ms_per_s": [round(t, 1) for t in totals],
            "median_ms_per_s": round(statistics.median(totals), 1),
            "median_ms_per_s_by_pid": {str(p): round(statistics.median(v), 1) for p, v in per_pid.items()},
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--row", default="classcast", choices=("classcast", "classcast-cluster"))
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--windows", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--generators", type=int, default=2)
    ap.add_argument("--hold", type=float, default=0)
    ap.add_argument("--settle", type=float, default=15, help="seconds between the joins and the windows")
    ap.add_argument("--code", type=Path, help="checkout to run the server from (default: this one)")
    args = ap.parse_args()
    if args.code:
        harness.CLASSCAST_DIR = args.code.resolve()
    out = measure(
        args.row, args.n, args.windows, args.seconds, min(args.hold, 300), args.generators, args.settle
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
