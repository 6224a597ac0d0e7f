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


def main() -> None:
    sections = []
    replay = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "replay_bench.py"), *sys.argv[1:]],
        check=True,
        capture_output=True,
        text=True,
    )
    sections.append(replay.stdout)
    fanout = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "fanout" / "harness.py"),
            "--mode",
            os.environ.get("BENCH_MODE", "quick"),
            "--png",
            str(ROOT / "docs" / "bench-fanout.png"),
        ],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    sections.append(fanout.stdout)
    header = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {datetime.date.today().isoformat()}: {machine()}.",
        "Medians unless stated; every figure beside its peer, measured in the same run.",
        "",
    ]
    OUT.write_text("\n".join(header) + "\n" + "\n".join(sections))
    print(OUT.read_text())


if __name__ == "__main__":
    main()
