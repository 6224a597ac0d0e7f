"""The scale harness at N = 50: Classcast and the Node peer, alone and (the peer, and Classcast once
it has `--workers` and `--redis-url`) clustered on a private Redis, one short round. Checks that it
runs and counts right (every learner joins, every message reaches every learner, CPU and memory are
read from every server process); the figures themselves are never asserted."""

from __future__ import annotations

import shutil
from dataclasses import replace
from typing import Any

import pytest

from bench.scale import harness

N = 50

pytestmark = [
    pytest.mark.skipif(
        shutil.which("node") is None or shutil.which("npm") is None or shutil.which("redis-server") is None,
        reason="node, npm and redis-server are needed",
    ),
    # The module's first test runs the whole harness (3 rows, ~40 s alone, minutes at a load of 30).
    pytest.mark.timeout(900),
]


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return harness.run_plan(replace(harness.PLANS["tiny"], n=N))


def test_every_row_runs_or_says_why_not(results: dict[str, Any]) -> None:
    measured = {r["row"] for r in results["runs"]}
    assert {"classcast", "peer", "peer-cluster"} <= measured
    assert measured | set(results["skipped"]) == set(harness.ROWS)
    for row, why in results["skipped"].items():
        assert row == "classcast-cluster" and ("--workers" in why or "--redis-url" in why)


@pytest.mark.parametrize("row", harness.ROWS)
def test_counts_every_join_and_delivery(results: dict[str, Any], row: str) -> None:
    runs = [r for r in results["runs"] if r["row"] == row]
    if not runs:
        pytest.skip(results["skipped"][row])
    (run,) = runs
    join = run["join"]
    assert join["joined"] == N and join["failed"] == 0 and join["errors"] == {}
    assert 0 <= join["p50_ms"] <= join["p99_ms"] <= join["max_ms"]
    assert run["memory"]["rss_after"] > 0
    assert run["idle"]["per_s"] >= 0 and run["idle"]["wall_s"] > 0
    assert [r["rate"] for r in run["rates"]] == [1, 5]
    for rnd in run["rates"]:
        assert rnd["acked"] == rnd["messages"] == round(rnd["rate"] * results["plan"]["seconds"])
        assert rnd["send_errors"] == {}
        assert rnd["deliveries"] == rnd["expected"] == rnd["messages"] * N
        assert rnd["lost"] == 0 and rnd["dupes"] == 0 and rnd["complete"]
        assert 0 <= rnd["p50_ms"] <= rnd["p99_ms"] <= rnd["max_ms"]
        assert rnd["server_cpu_s"] >= 0
        assert rnd["server_user_s"] + rnd["server_sys_s"] == pytest.approx(rnd["server_cpu_s"])
        assert 0 <= rnd["net_us_per_delivery"] <= rnd["us_per_delivery"]


def test_report(results: dict[str, Any]) -> None:
    md = harness.markdown(results)
    assert md.startswith("## One session at scale")
    (lost,) = [line for line in md.splitlines() if line.startswith("| deliveries lost at 5 msg/s")]
    assert set(lost.split("|")[2:-1]) == {" 0 "}
    assert "Ratios, Classcast / peer" in md
    assert "| server CPU per delivery at 5 msg/s, idle cost subtracted |" in md
    if "classcast-cluster" in results["skipped"]:
        assert "Classcast, 2 workers + Redis: not measured" in md


def test_process_tree_and_proc_readings() -> None:
    import os

    me = os.getpid()
    assert me in harness.tree([me])
    assert harness.cpu_s([me]) > 0 and harness.rss([me]) > 0
    assert harness.hist_pct({0: 98, 10: 1, 50: 1}, 99) == 1.1
    assert harness.hist_pct({}, 99) is None
