"""The media writer (recorder/media.py) on real files: what it writes decodes with PyAV, in order,
for as long as was published, anchored to the session clock; the queue drops instead of blocking;
H.264 goes to Matroska; pauses leave a gap."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from recorder import media
from recorder.media import MediaRecorder, list_media

from .media_helpers import FPS, decode, h264_packets, opus_packets, timeline, vp8_packets

SECONDS = 5.0


def record(session_dir: Path, items, first_ms: dict[str, int], publisher: str = "pubA") -> list[dict]:
    rec = MediaRecorder(session_dir)
    codecs = {p.track_kind: p.codec_name for _, p in items}
    writers = {
        kind: rec.track(publisher, f"{kind}-1", kind, codecs[kind], ms) for kind, ms in first_ms.items()
    }
    for _, p in items:
        writers[p.track_kind].write(p)
    for w in writers.values():
        w.close()
    rec.close()
    rec.join(60)
    return list_media(session_dir)


def test_recording_decodes_in_order_for_the_published_time(tmp_path: Path) -> None:
    entries = record(tmp_path, timeline(SECONDS), {"video": 12_345, "audio": 12_345})
    assert len(entries) == 1, entries
    m = entries[0]
    assert m["file"] == "0000012345-pubA-1.webm"
    assert (m["status"], m["container"], m["content_type"]) == ("complete", "webm", "video/webm")
    assert m["start_ms"] == 12_345 and m["dropped_packets"] == 0
    assert [(t["kind"], t["codec"], t["offset_ms"]) for t in m["tracks"]] == [
        ("video", "vp8", 0),
        ("audio", "opus", 0),
    ]
    got = decode(tmp_path / "media" / m["file"])
    assert got["streams"] == [("video", "vp8"), ("audio", "opus")]
    assert got["metadata"]["CLASSCAST_START_MS"] == "12345"
    # Every frame, in order, at its time: frame i at i/FPS s (the RTP clock wrapped 1 s in).
    frames = got["video"]
    assert [n for _, n in frames] == list(range(round(SECONDS * FPS)))
    assert all(abs(ms - n * 1000 / FPS) <= 1 for ms, n in frames), frames[:5]
    for kind, times in got["packets"].items():
        assert times == sorted(times) and len(set(times)) == len(times), kind
    assert len(got["audio"]) >= SECONDS * 50
    assert abs(got["duration_ms"] - SECONDS * 1000) <= 0.05 * SECONDS * 1000, got["duration_ms"]
    assert abs(m["duration_ms"] - SECONDS * 1000) <= 0.05 * SECONDS * 1000
    assert m["end_ms"] == m["start_ms"] + m["duration_ms"]


def test_tracks_starting_apart_share_a_file_at_their_offsets(tmp_path: Path) -> None:
    """Audio starts 400 ms after video: one file, audio 400 ms in; its first sound is there."""
    video = [(i * 1000 / FPS, p) for i, p in enumerate(vp8_packets(SECONDS))]
    audio = [(400 + i * 20.0, p) for i, p in enumerate(opus_packets(SECONDS))]
    items = sorted(video + audio, key=lambda x: x[0])
    entries = record(tmp_path, items, {"video": 2_000, "audio": 2_400})
    assert len(entries) == 1
    m = entries[0]
    assert m["start_ms"] == 2_000
    assert {t["kind"]: t["offset_ms"] for t in m["tracks"]} == {"video": 0, "audio": 400}
    got = decode(tmp_path / "media" / m["file"])
    assert 400 <= got["packets"]["audio"][0] <= 410, got["packets"]["audio"][:3]
    assert got["packets"]["video"][0] == 0


def test_a_track_started_later_gets_its_own_file(tmp_path: Path) -> None:
    """A screen share starting 3 s after the camera and microphone: a second file, anchored at 3 s."""
    rec = MediaRecorder(tmp_path)
    cam = rec.track("pubA", "cam", "video", "vp8", 1_000)
    mic = rec.track("pubA", "mic", "audio", "opus", 1_000)
    for _, p in timeline(2.0):
        (cam if p.track_kind == "video" else mic).write(p)
    screen = rec.track("pubA", "screen", "video", "vp8", 4_000)
    for p in vp8_packets(2.0):
        screen.write(p)
    rec.close()
    rec.join(60)
    entries = list_media(tmp_path)
    assert [(m["start_ms"], [t["id"] for t in m["tracks"]]) for m in entries] == [
        (1_000, ["cam", "mic"]),
        (4_000, ["screen"]),
    ]
    assert all(m["status"] == "complete" for m in entries)
    second = decode(tmp_path / "media" / entries[1]["file"])
    assert [n for _, n in second["video"]] == list(range(60))
    assert second["video"][0][0] == 0


def test_h264_goes_to_matroska(tmp_path: Path) -> None:
    packets = h264_packets(3.0)
    items = [(i * 1000 / FPS, p) for i, p in enumerate(packets)]
    items += [(i * 20.0, p) for i, p in enumerate(opus_packets(3.0))]
    items.sort(key=lambda x: x[0])
    entries = record(tmp_path, items, {"video": 500, "audio": 500})
    m = entries[0]
    assert (m["container"], m["content_type"], m["file"][-4:]) == ("mkv", "video/x-matroska", ".mkv")
    got = decode(tmp_path / "media" / m["file"])
    assert got["streams"] == [("video", "h264"), ("audio", "opus")]
    assert [n for _, n in got["video"]] == list(range(90))
    assert abs(got["duration_ms"] - 3000) <= 150


def test_video_before_the_first_key_frame_is_skipped(tmp_path: Path) -> None:
    """A track whose first packets are not key frames (joined mid-stream): the file starts at the
    first key frame, still anchored on the first packet's session time."""
    packets = vp8_packets(SECONDS)
    rec = MediaRecorder(tmp_path)
    cam = rec.track("pubA", "cam", "video", "vp8", 10_000)
    for p in packets[10:]:  # frames 10.. : the first key frame is frame 30
        cam.write(p)
    cam.close()
    rec.close()
    rec.join(60)
    (m,) = list_media(tmp_path)
    got = decode(tmp_path / "media" / m["file"])
    first_ms, first_n = got["video"][0]
    assert first_n == 30
    # Frame 30 came 20 frames after the track's first packet (frame 10), at 10 000 ms.
    assert abs((m["start_ms"] + first_ms) - (10_000 + 20 * 1000 / FPS)) <= 1
    assert m["dropped_packets"] == 20


def test_pause_leaves_a_gap_and_video_resumes_at_a_key_frame(tmp_path: Path) -> None:
    rec = MediaRecorder(tmp_path)
    cam = rec.track("pubA", "cam", "video", "vp8", 0)
    for i, p in enumerate(vp8_packets(SECONDS)):
        rec.set_paused(40 <= i < 70)  # paused from frame 40; the next key frame after 70 is 90
        cam.write(p)
    cam.close()
    rec.close()
    rec.join(60)
    (m,) = list_media(tmp_path)
    got = decode(tmp_path / "media" / m["file"])
    numbers = [n for _, n in got["video"]]
    assert numbers == [*range(40), *range(90, 150)]
    assert m["dropped_packets"] == 50


def test_a_full_queue_drops_without_blocking_and_video_waits_for_a_key_frame(
    tmp_path: Path, monkeypatch
) -> None:
    """The disk stalls (the worker is held): writes return at once, False past the queue's bytes;
    once one video packet is dropped, the rest of that picture group is too, even with room again."""
    gate = threading.Event()
    real = media._Muxer.packet

    def stalled(self, track, p):
        gate.wait(30)
        real(self, track, p)

    monkeypatch.setattr(media._Muxer, "packet", stalled)
    packets = vp8_packets(SECONDS)
    budget = sum(len(p.data) for p in packets[:5])  # the first five frames fit, queued
    rec = MediaRecorder(tmp_path, queue_bytes=budget)
    cam = rec.track("pubA", "cam", "video", "vp8", 0)
    accepted = []
    slowest = 0.0
    for i, p in enumerate(packets[:60]):
        t0 = time.perf_counter()
        if cam.write(p):
            accepted.append(i)
        slowest = max(slowest, time.perf_counter() - t0)
        if i >= 20:  # the disk catches up, and keeps up from now on
            gate.set()
            deadline = time.monotonic() + 30
            while rec._queued_bytes and time.monotonic() < deadline:
                time.sleep(0.005)
    # Never waiting for the stalled disk (held up to 30 s): a loaded machine may still preempt a
    # call for tens of ms, so the bound is far from both.
    assert slowest < 1.0, slowest
    # Frames 0-4 or 0-5 were queued (frame 0 may already be out of the queue, waiting at the
    # gate); then nothing until the key frame at 30, even though the queue drained at 20.
    assert accepted[: accepted.index(30)] in (list(range(5)), list(range(6))), accepted
    assert accepted[accepted.index(30) :] == list(range(30, 60))
    cam.close()
    rec.close()
    rec.join(60)
    (m,) = list_media(tmp_path)
    assert m["dropped_packets"] == 60 - len(accepted)
    got = decode(tmp_path / "media" / m["file"])
    assert [n for _, n in got["video"]] == accepted


@pytest.mark.parametrize("bad", [("video", "opus"), ("audio", "vp8"), ("data", "vp8"), ("video", "av1")])
def test_unknown_kinds_and_codecs_are_refused(tmp_path: Path, bad) -> None:
    rec = MediaRecorder(tmp_path)
    with pytest.raises(ValueError):
        rec.track("pubA", "t", bad[0], bad[1], 0)
    rec.close()
    rec.join(10)
    assert list_media(tmp_path) == []


def test_sidecar_says_where_the_file_is_on_the_session_clock(tmp_path: Path) -> None:
    record(tmp_path, timeline(1.0), {"video": 777, "audio": 777}, publisher="T9xk2Lq0")
    sidecar = json.loads((tmp_path / "media" / "0000000777-T9xk2Lq0-1.json").read_text())
    assert sidecar["start_ms"] == 777 and sidecar["file"] == "0000000777-T9xk2Lq0-1.webm"
    assert sidecar["status"] == "complete"


def test_a_publisher_id_unfit_for_a_file_name_is_digested(tmp_path: Path) -> None:
    entries = record(tmp_path, timeline(1.0), {"video": 5, "audio": 5}, publisher="../../etc/x y")
    (m,) = entries
    assert m["publisher"] == "../../etc/x y"
    assert m["file"].startswith("0000000005-p") and m["file"].endswith("-1.webm")
    assert sorted(p.parent for p in tmp_path.rglob("*.webm")) == [tmp_path / "media"]


def test_another_process_leaves_a_file_being_written_alone(tmp_path: Path) -> None:
    """Cluster mode shares the data directory: a node serving the replay lists the media another
    node is still writing. It must not take the file for one a crash left (and remux it away): the
    writer's `flock` says it is alive. Once the writer is gone, the same listing finalises it."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    lister = (
        "import sys, json; from pathlib import Path; from recorder.media import list_media; "
        "print(json.dumps([m['status'] for m in list_media(Path(sys.argv[1]))]))"
    )

    def statuses_elsewhere() -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", lister, str(tmp_path)],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    rec = MediaRecorder(tmp_path)
    items = timeline(3.0)
    codecs = {p.track_kind: p.codec_name for _, p in items}
    writers = {kind: rec.track("pubA", f"{kind}-1", kind, codecs[kind], 0) for kind in codecs}
    for _, p in items:
        writers[p.track_kind].write(p)
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob("media/*.webm")) or (tmp_path / "media").stat().st_size == 0:
        assert time.monotonic() < deadline, "no file opened"
        time.sleep(0.05)
    time.sleep(0.5)  # the worker has written packets
    assert statuses_elsewhere() == ["recording"]
    (m,) = list_media(tmp_path)  # this process too: it is the writer
    assert m["status"] == "recording"
    for w in writers.values():
        w.close()
    rec.close()
    rec.join(60)
    assert statuses_elsewhere() == ["complete"]
    (m,) = list_media(tmp_path)
    got = decode(tmp_path / "media" / m["file"])
    assert [n for _, n in got["video"]] == list(range(round(3.0 * FPS)))  # every frame, not a remux's cut
