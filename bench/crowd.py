"""Large sessions (issue 11): a join storm of 10,000 learners into one session, with presence
coalesced (`--crowd-size 200`, the default), and at a smaller N with and without it.

Reuses the fan-out harness: the server on one core, the Node socket.io-client generator on the
other (its "join" step: N joins spread over a few seconds on a session prepared with chat and
shapes). Each join is timed from opening the socket to the `join` ack with its snapshot; the
server's own counters (`/metrics`: deliveries, commands) are read before and after.

    .venv/bin/python bench/crowd.py                   # N = 10,000 coalesced; N = 2,000 both ways
    .venv/bin/python bench/crowd.py --n 3000 --baseline-n 1000 --json out.json

Markdown to stdout, progress to stderr. Needs node and the generator's npm packages.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "fanout"))

from harness import ADMIN_KEY, ensure_node_deps, log, run_generator, server

PREPARE = {"chat": 100, "shapes": 100, "trainers": 1, "rate": 150}


def deliveries(base: str) -> float:
    """The server's delivery counter (`classcast_deliveries_total`)."""
    req = urllib.request.Request(f"{base}/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
    found = re.search(r"^classcast_deliveries_total ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else float("nan")


def storm(n: int, crowd: int, spread_s: float, timeout_s: float) -> dict[str, Any]:
    log(f"join storm: n={n}, --crowd-size {crowd}")
    with server("classcast", extra=("--crowd-size", str(crowd))) as srv:
        session = srv.create_session(f"Storm {n} crowd {crowd}", recording=True)
        before = deliveries(srv.base)
        cfg = {
            "n": n,
            "deflate": False,
            "steps": ["join"],
            "join": {**PREPARE, "spread_s": spread_s, "limit_s": timeout_s / 2},
        }
        t0 = time.monotonic()
        result = run_generator(srv, session, cfg, timeout_s)
        # Wait for the leaves of the generator's disconnects to be delivered before reading.
        time.sleep(2)
        after = deliveries(srv.base)
        rss = srv.rss()
    join = result["join"][0]
    return {
        "n": n,
        "crowd": crowd,
        "usable": join["usable"],
        "errors": join["errors"],
        "join_p50_ms": join["snapshot_ms"]["p50"],
        "join_p99_ms": join["snapshot_ms"]["p99"],
        "join_max_ms": join["snapshot_ms"]["max"],
        "storm_s": join["storm_s"],
        "server_cpu_s": join["server_cpu_s"],
        "deliveries": after - before,
        "deliveries_per_learner": (after - before) / n,
        "snapshot_bytes": join["snapshot_bytes"],
        "rss_mib": rss / 2**20,
        "elapsed_s": time.monotonic() - t0,
    }


def load_note() -> str:
    """The machine's load average: a shared machine's other work shows in every figure."""
    try:
        one, five, _ = Path("/proc/loadavg").read_text().split()[:3]
    except (OSError, ValueError):
        return ""
    return f" Load average when the run ended: {one} (1 min), {five} (5 min) on {os.cpu_count()} cores."


def markdown(runs: list[dict[str, Any]], spread_s: float) -> str:
    lines = [
        "## Large sessions: join storm (`bench/crowd.py`)",
        "",
        f"N learners join one session within {spread_s:g} s (the Node generator, one websocket each), on a "
        f"session prepared with {PREPARE['chat']} chat messages and {PREPARE['shapes']} shapes. Join time: "
        "socket opened to `join` ack with its snapshot. Deliveries: the server's "
        "`classcast_deliveries_total` over the run (the storm, then every learner leaving). "
        "`--crowd-size 0` is the old behaviour: every join and leave to everyone." + load_note(),
        "",
        "| N | `--crowd-size` | joined | join p50 | join p99 | join max | storm | server CPU "
        "| deliveries | per learner | snapshot |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        cells = [
            f"{r['n']:,}",
            str(r["crowd"]),
            f"{r['usable']:,}",
            *(
                "–" if r[k] is None else f"{r[k]:.0f} ms"
                for k in ("join_p50_ms", "join_p99_ms", "join_max_ms")
            ),
            f"{r['storm_s']:.1f} s",
            f"{r['server_cpu_s']:.1f} s",
            f"{r['deliveries']:,.0f}",
            f"{r['deliveries_per_learner']:,.1f}",
            f"{r['snapshot_bytes'] / 1024:.1f} KiB",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    errors = {f"N={r['n']} crowd={r['crowd']}": r["errors"] for r in runs if r["errors"]}
    if errors:
        lines += ["", f"Join errors: `{json.dumps(errors)}`."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument(
        "--baseline-n", type=int, default=2_000, help="N for the with/without comparison (0: skip)"
    )
    parser.add_argument("--spread", type=float, default=5.0, help="seconds the joins are spread over")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    ensure_node_deps()
    runs = [storm(args.n, 200, args.spread, args.timeout)]
    if args.baseline_n:
        runs.append(storm(args.baseline_n, 200, args.spread, args.timeout))
        runs.append(storm(args.baseline_n, 0, args.spread, args.timeout))
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))
    print(markdown(runs, args.spread))


if __name__ == "__main__":
    main()
