"""The floor benchmark at N = 100: a real sender, real Node receivers over loopback websockets, the
Python, uvloop (Classcast's `write_frame`), Classcast's native path and io_uring variants, one
short window per rate. Checks
that every frame written reaches a receiver and that CPU is read from the sender; the figures
themselves are never asserted."""

from __future__ import annotations

import shutil
from dataclasses import replace
from typing import Any

import pytest

from bench.scale import floor

N = 100
# io_uring is compiled with the machine's C compiler; without one that variant is left out.
VARIANTS = ("send", "asyncio", "native", *(("io_uring",) if shutil.which("cc") else ()), "coalesce-5")

pytestmark = [
    pytest.mark.skipif(shutil.which("node") is None, reason="node is needed"),
    pytest.mark.timeout(300),
]


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    plan = replace(floor.PLANS["tiny"], n=N, variants=VARIANTS)
    out = floor.run_plan(plan)
    by_rate = {"1": {"us_per_delivery": 40.0}, "5": {"us_per_delivery": 20.0}}
    out["peer"] = {"source": "a test", "us": 24.0, "by_rate": by_rate}
    return out


def test_every_frame_is_written_and_read(results: dict[str, Any]) -> None:
    assert [r["variant"] for r in results["runs"]] == list(VARIANTS)
    assert results["frame_bytes"] == len(floor.frame()) == len(floor.PAYLOAD) + 4
    for run in results["runs"]:
        assert [w["rate"] for w in run["windows"]] == [1, 5]
        for w in run["windows"]:
            # The receivers answered `drained`: every frame of the window arrived (else run_plan raised).
            assert w["frames"] == w["messages"] * N
            coalesce = floor.VARIANTS[run["variant"]].coalesce
            assert w["writes"] == -(-w["messages"] // coalesce) * N
            assert w["errors"] == 0
            assert w["user_s"] >= 0 and w["sys_s"] >= 0 and w["receivers_cpu_s"] >= 0
            assert w["us"] == pytest.approx(w["user_us"] + w["sys_us"])


def test_report(results: dict[str, Any]) -> None:
    md = floor.markdown(results)
    assert md.startswith("### Measured (`bench/scale/floor.py`)")
    for v in VARIANTS:
        assert f"| `{v}` |" in md
    assert "at 1 msg/s: floor / 0.5x line (20.0 µs)" in md
    assert "at 5 msg/s: floor / 0.5x line (10.0 µs)" in md
    assert "both rates: floor / 0.5x line (12.0 µs)" in md
    assert "short writes" not in md


def test_ticks_hold_back_only_when_asked() -> None:
    assert floor._ticks(5, 1, 1) == [(k / 5, 1) for k in range(5)]
    assert floor._ticks(1, 7, 5) == [(4.0, 5), (6.0, 2)]


def test_perf_buckets() -> None:
    script = (
        "\t ffffffff81000001 native_send_call_func_single_ipi\n\t ffffffff81000002 try_to_wake_up\n"
        "\t ffffffff81000003 tcp_v4_rcv\n\t ffffffff81000004 tcp_sendmsg_locked\n\n"
        "\t ffffffff81000005 memcpy\n\t ffffffff81000006 tcp_sendmsg_locked\n\n"
        "\t 7f0000000001 _PyEval_EvalFrameDefault\n\n"
    )
    got = floor.perf_breakdown(script)
    assert sum(got.values()) == 3
    assert got[floor.PERF_BUCKETS[0][0]] == 1  # the wakeup, not the TCP input and output around it
    assert got[floor.PERF_BUCKETS[4][0]] == 1
    assert got["user space (Python or the C loop, libc)"] == 1
