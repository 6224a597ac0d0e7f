"""The edge's guards on their own: the log throttle, per-address counting, the open files limit."""

from __future__ import annotations

import logging
import os
import resource
import time

import pytest

from classroom.throttle import LogThrottle
from signaling.guard import Guard, raise_nofile


def test_one_log_line_per_cause_and_then_how_many_were_held_back(caplog: pytest.LogCaptureFixture):
    logger = logging.getLogger("test.throttle")
    throttle = LogThrottle(logger, every=0.2)
    with caplog.at_level(logging.INFO, logger="test.throttle"):
        for _ in range(1000):
            throttle.log(logging.ERROR, "bad", "bad packet from %s", "x")
        throttle.log(logging.ERROR, "other", "another cause")
        assert [r.getMessage() for r in caplog.records] == ["bad packet from x", "another cause"]
        time.sleep(0.25)
        throttle.log(logging.ERROR, "bad", "bad packet from %s", "y")
    assert caplog.records[-1].getMessage().startswith("bad packet from y (999 more like it")


def test_connections_are_counted_per_address_and_loopback_may_be_exempt():
    guard = Guard(connections_per_address=2, unlimited=frozenset({"127.0.0.1"}))
    assert guard.admit("10.0.0.1") is None
    assert guard.admit("10.0.0.1") is None
    assert "too many connections" in (guard.admit("10.0.0.1") or "")
    assert guard.admit("10.0.0.2") is None
    for _ in range(5):
        assert guard.admit("127.0.0.1") is None
    guard.release("10.0.0.1")
    assert guard.admit("10.0.0.1") is None
    assert guard.total == 8


def test_new_connections_are_refused_before_the_files_run_out(monkeypatch: pytest.MonkeyPatch):
    guard = Guard(connections_per_address=0, unlimited=frozenset())
    guard.fd_limit, guard.fd_reserve = 100, 10
    monkeypatch.setattr(os, "listdir", lambda path: ["fd"] * (guard.total + 5))
    admitted = sum(guard.admit(f"10.0.0.{i}") is None for i in range(120))
    assert admitted == 85  # 5 descriptors in use besides the connections


def test_raises_the_soft_open_files_limit_to_the_hard_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 1000:
        pytest.skip(f"limits {soft}/{hard}: nothing to raise here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (900, hard))
    try:
        assert raise_nofile() == (hard, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
