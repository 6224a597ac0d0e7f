"""The fan-out harness at tiny N: both servers, one short round of each scenario. Checks that it runs
and counts right (every message reaches every learner, nothing lost, the vote count becomes exact,
every storm join gets a full snapshot); the figures themselves are never asserted."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench.fanout import harness

N = 5

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None, reason="node and npm are needed"
)


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    plan = replace(harness.PLANS["tiny"], ns=[N], variants=("off",))
    return harness.run_plan(plan)


def runs(results: dict[str, Any], kind: str, phase: str) -> list[dict[str, Any]]:
    return [r for r in results["runs"] if r["kind"] == kind and r["phase"] == phase]


@pytest.mark.parametrize("kind", harness.KINDS)
def test_fanout_counts_every_delivery(results: dict[str, Any], kind: str) -> None:
    phases = ["main", "fanout"] if kind == "classcast" else ["main"]
    for phase in phases:
        (run,) = runs(results, kind, phase)
        assert run["setup"]["connected"] == N and run["setup"]["failed"] == 0
        for mode in ("rate", "max"):
            for rnd in run[mode]:
                assert rnd["messages"] > 0
                assert rnd["expected"] == rnd["messages"] * N
                assert rnd["deliveries"] == rnd["expected"]
                assert rnd["lost"] == 0 and rnd["dupes"] == 0 and not rnd["timed_out"]
                assert rnd["send_errors"] == {}
                assert rnd["latency_ms"]["p50"] is not None and rnd["latency_ms"]["p50"] >= 0
                assert rnd["server_cpu_s"] >= 0 and rnd["gen_cpu_s"] >= 0
        assert run["stale_deliveries"] == 0
        assert run["generator_cpu_s"] > 0
    (main,) = runs(results, kind, "main")
    assert main["rate"][0]["messages"] == 20  # 20 messages/s for 1 s
    assert main["memory"]["rss_after"] > 0


@pytest.mark.parametrize("kind", harness.KINDS)
def test_vote_count_becomes_exact(results: dict[str, Any], kind: str) -> None:
    (main,) = runs(results, kind, "main")
    for rnd in main["vote"]:
        assert rnd["exact"] and rnd["last_count"] == N and rnd["errors"] == {}
        assert rnd["ack_ms"]["count"] == N


@pytest.mark.parametrize("kind", harness.KINDS)
def test_join_storm_gets_full_snapshots(results: dict[str, Any], kind: str) -> None:
    (run,) = runs(results, kind, "join")
    assert run["prepare"]["errors"] == 0
    (storm,) = run["join"]
    assert storm["usable"] == N and storm["unusable"] == 0 and storm["errors"] == {}
    assert storm["snapshot_ms"]["count"] == N


def test_report_and_plot(results: dict[str, Any], tmp_path: Path) -> None:
    md = harness.markdown(results, "bench-fanout.png")
    assert md.startswith("## Live fan-out")
    for heading in ("### 1.", "### 1b.", "### 2.", "### 3.", "### 4.", "### 5."):
        assert heading in md
    assert f"| {N} | deliveries lost | 0 | 0 |" in md
    pytest.importorskip("matplotlib")
    png = tmp_path / "plot.png"
    harness.plot(results, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
