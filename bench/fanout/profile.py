"""Where Classcast's server time goes per delivery: py-spy samples the server (pinned to its core)
during a counted as-fast-as-possible fan-out round driven by the usual generator, and the samples
are grouped into a few buckets, each turned into µs per delivery with the round's measured server
CPU per delivery.

    python bench/fanout/profile.py [--n 1000] [--seconds 10] [--python-only] [--raw out.txt]

Needs py-spy (pip install py-spy) and permission to ptrace the server (root, or
kernel.yama.ptrace_scope=0). Prints a markdown summary.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.fanout import harness

# Buckets by the innermost frame that matches, first match wins (frames are "func (file:line)").
BUCKETS = [
    (
        "socket write (the native send: io_uring or send, loopback TCP; transport.write)",
        (
            "send_many",
            "io_uring_enter",
            "syscall (libc",
            "_write_websocket_frame",
            "send_frame",
            "uv__write",
            "__send",
            "write (libc",
        ),
    ),
    ("frame building (json.dumps, framing)", ("event_frame", "text_frame", "json/", "Packet.encode")),
    (
        "fan-out loop (members, transports, checks)",
        (
            "Room.send",
            "Room.__init__",
            "FrameFanout._send",
            "FrameFanout._write",
            "FrameFanout.deliver",
            "project (",
        ),
    ),
    ("recorder (log append, fsync thread)", ("recorder/", "concurrent/futures")),
    (
        "commands in (socket.io receive, hub, core)",
        ("hub.py", "classroom/core", "socketio/", "engineio/", "web_ws.py", "_websocket/reader"),
    ),
    ("event loop and the rest", ("",)),
]


def bucket_of(frames: list[str]) -> str:
    for name, keys in BUCKETS:
        for frame in reversed(frames):
            if any(k in frame for k in keys):
                return name
    return BUCKETS[-1][0]


def summarize(raw: Path, us_per_delivery: float) -> str:
    buckets: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        buckets[bucket_of(frames)] += n
        leaves[frames[-1]] += n
    if not total:
        return "no samples"
    lines = ["| where | share of server CPU | µs per delivery |", "| --- | ---: | ---: |"]
    for name, _ in BUCKETS:
        share = buckets[name] / total
        lines.append(f"| {name} | {share:.0%} | {share * us_per_delivery:.2f} |")
    lines += ["", "Hottest frames (self time):", ""]
    lines += [f"- {c / total:.0%} `{f}`" for f, c in leaves.most_common(8)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--python-only", action="store_true", help="Python frames only (no pause per sample; less exact)"
    )
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw (collapsed) stacks here")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    harness.ensure_node_deps()
    raw = args.raw or Path(tempfile.mkdtemp(prefix="fanout-prof-")) / "stacks.txt"
    with harness.server("classcast") as srv:
        session = srv.create_session("Profile")
        spies: list[subprocess.Popen] = []

        def start_spy(marker: str) -> None:
            if marker != "max":
                return
            # Start a moment into the round, stop before it ends.
            argv = [spy, "record", "--pid", str(srv.pid), "--duration", str(int(args.seconds)),
                    "--rate", "100", "--format", "raw", "--output", str(raw)]  # fmt: skip
            # Native frames need the target paused per sample; Python frames alone do not.
            argv.append("--nonblocking" if args.python_only else "--native")
            timer = threading.Timer(
                1.0, lambda: spies.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL))
            )
            timer.start()

        cfg = {"n": args.n, "deflate": True, "connect_concurrency": 50, "steps": ["max"],
               "rate": {"rate": 20, "warmup_s": 1},
               "max": {"window": 8, "seconds": args.seconds + 3, "rounds": 1, "max_rate": 190}}  # fmt: skip
        result = harness.run_generator(srv, session, cfg, 300, on_marker=start_spy)
        for p in spies:
            p.wait(60)
    m = result["max"][0]
    print(
        f"Classcast, N = {args.n}, as fast as possible: {m['deliveries_per_s']:,.0f} deliveries/s, "
        f"{m['server_us_per_delivery']:.1f} µs of server CPU per delivery, server core "
        f"{m['server_busy']:.0%} busy, generator {m['gen_busy']:.0%}, lost {m['lost']}.\n"
    )
    print(summarize(raw, m["server_us_per_delivery"]))


if __name__ == "__main__":
    main()
