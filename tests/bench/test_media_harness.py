"""The media forwarding benchmark at tiny size (forwarding to 2 viewers, the stock path to 1, one 2 s
window each): checks that it counts packets and frames, times a late joiner and reports every field;
the figures themselves are never asserted beyond "something arrived"."""

from __future__ import annotations

from typing import Any

import pytest

from bench.webrtc import harness

FIELDS = {
    "n",
    "connected",
    "per_viewer",
    "server_cores",
    "viewers_cores",
    "server_demand",
    "viewers_demand",
    "sent_fps_per_viewer",
    "loss_pct",
    "packets",
    "lost",
    "fps_per_viewer",
    "kbps_per_viewer",
    "late_key_ms",
    "late_key_ms_max",
    "late_connect_ms",
    "late_failed",
    "viewers_max_demand",
    "published_fps",
}


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return harness.run_plan(harness.PLANS["tiny"], log=lambda line: None)


@pytest.mark.parametrize("kind", ["forward", "relay"])
def test_counts_packets_and_reports_fields(results: dict[str, Any], kind: str) -> None:
    (summary,) = results[kind]["summary"]
    assert set(summary) == FIELDS
    n = harness.PLANS["tiny"].forward_ns[0] if kind == "forward" else harness.PLANS["tiny"].relay_ns[0]
    assert summary["n"] == n and summary["connected"] == n
    assert summary["packets"] > 0 and summary["lost"] >= 0
    assert summary["loss_pct"] is not None and 0 <= summary["loss_pct"] <= 100
    assert summary["fps_per_viewer"] > 0 and summary["kbps_per_viewer"] > 0
    assert summary["server_cores"] > 0 and summary["viewers_cores"] > 0
    assert summary["server_demand"] >= summary["server_cores"] * 0.9
    if kind == "forward":
        assert summary["sent_fps_per_viewer"] > 0
    assert summary["per_viewer"] is not None
    assert summary["late_failed"] == 0 and summary["late_key_ms"] is not None and summary["late_key_ms"] >= 0
    assert results[kind]["base_cores"] >= 0


def test_markdown_reports_both_paths(results: dict[str, Any]) -> None:
    text = harness.markdown(results, "tiny")
    assert text.startswith("## Media forwarding")
    assert "| forward (Classcast) | 2 |" in text and "| stock MediaRelay | 1 |" in text
    assert "**Machine state:**" in text
