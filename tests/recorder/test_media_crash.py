"""A media recorder killed with SIGKILL mid-recording (a real subprocess): what it wrote is
finalised afterwards, by the next media recorder of the session or when the media is listed, and
decodes, in order, missing at most the last ~2 s."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder.media import MediaRecorder, list_media

from .media_helpers import FPS, decode, dump_timeline

ROOT = Path(__file__).resolve().parents[2]
KILL_AT_MS = 3_500
LOSS_MS = 2_000


def run_until_killed(session_dir: Path, tmp_path: Path) -> float:
    """Start the recording child, kill it once it has handed over KILL_AT_MS of media; returns
    the media time of the last packet it handed over."""
    timeline = tmp_path / "timeline.pickle"
    dump_timeline(timeline, 5.0)  # the same media as the other tests
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.recorder.media_child", str(session_dir), str(timeline)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    last = -1.0
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 120
        for line in child.stdout:
            if line.startswith("sent "):
                last = float(line.split()[1])
            if last >= KILL_AT_MS or time.monotonic() > deadline:
                break
        assert last >= KILL_AT_MS, f"the child stopped at {last} ms"
        child.send_signal(signal.SIGKILL)
        assert child.wait(30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
        if child.stdout is not None:
            child.stdout.close()
    return last


@pytest.mark.parametrize("finaliser", ["next recorder", "listing"])
def test_sigkill_mid_recording_loses_at_most_two_seconds(tmp_path: Path, finaliser: str) -> None:
    session_dir = tmp_path / "session"
    last_sent = run_until_killed(session_dir, tmp_path)
    (sidecar,) = (session_dir / "media").glob("*.json")
    assert json.loads(sidecar.read_text())["status"] == "recording"  # as the killed writer left it
    if finaliser == "next recorder":
        rec = MediaRecorder(session_dir)  # the session's media recorder after a restart
        rec.close()
        rec.join(120)
        assert json.loads(sidecar.read_text())["status"] == "recovered"
    (m,) = list_media(session_dir)
    assert m["status"] == "recovered", m
    assert m["start_ms"] == 1_000
    got = decode(session_dir / "media" / m["file"])
    numbers = [n for _, n in got["video"]]
    assert numbers == list(range(len(numbers))), numbers  # every frame up to the loss, in order
    for kind, times in got["packets"].items():
        assert times == sorted(times), kind
    last_frame_ms = numbers[-1] * 1000 / FPS
    assert last_frame_ms >= last_sent - LOSS_MS, (last_frame_ms, last_sent)
    assert got["packets"]["audio"][-1] >= last_sent - LOSS_MS
    # Finalised: the file now says how long it is, and the manifest agrees.
    assert got["duration_ms"] is not None
    assert abs(m["duration_ms"] - got["duration_ms"]) <= 1
    assert last_sent - LOSS_MS <= m["duration_ms"] <= last_sent + 100
    assert not list((session_dir / "media").glob("*.remux.*"))


def test_an_unreadable_leftover_is_kept_as_it_is(tmp_path: Path) -> None:
    directory = tmp_path / "media"
    directory.mkdir()
    junk = os.urandom(5000)
    (directory / "0000000100-pubA-1.webm").write_bytes(junk)
    (directory / "0000000100-pubA-1.json").write_text(
        json.dumps(
            {
                "file": "0000000100-pubA-1.webm",
                "publisher": "pubA",
                "start_ms": 100,
                "container": "webm",
                "content_type": "video/webm",
                "status": "recording",
                "tracks": [],
                "dropped_packets": 0,
            }
        )
    )
    (m,) = list_media(tmp_path)
    assert m["status"] == "damaged" and m["duration_ms"] is None
    assert (directory / "0000000100-pubA-1.webm").read_bytes() == junk
    assert sorted(p.name for p in directory.iterdir()) == ["0000000100-pubA-1.json", "0000000100-pubA-1.webm"]
