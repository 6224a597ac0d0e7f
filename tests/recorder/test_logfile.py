"""Unit tests of the record log (framing, torn tails, repair) and of the recorder (group commit,
durability, snapshots, rebuilding a session from its log)."""

from __future__ import annotations

import asyncio
import struct
import zlib
from pathlib import Path

import msgpack
import pytest

from classroom.core import Event, SessionState, apply
from recorder import codec
from recorder.logfile import Appender, frame, iter_records, pack, scan
from recorder.paths import events_path, snapshots_path
from recorder.recorder import Recorder, read_latest, snapshot_metas
from recorder.replay import Recording

OBJECTS = [
    {"a": 1},
    {"text": "héllo → ✓", "n": [1, 2, 3]},
    {"bin": b"\x00\x01\xff", "none": None, "neg": -7},
    {"big": "x" * 5000},
]


def _log(objects=OBJECTS) -> tuple[bytes, list[int]]:
    """The framed records of `objects`, and the offset just past each one."""
    data = b""
    ends = []
    for obj in objects:
        data += pack(obj)
        ends.append(len(data))
    return data, ends


def _decoded(data: bytes) -> list[object]:
    return [msgpack.unpackb(p, raw=False) for _, _, p in iter_records(data)]


# -- framing --------------------------------------------------------------------------------------


def test_records_round_trip_with_offsets():
    data, ends = _log()
    records = list(iter_records(data))
    assert [msgpack.unpackb(p, raw=False) for _, _, p in records] == OBJECTS
    assert [end for _, end, _ in records] == ends
    assert [off for off, _, _ in records] == [0, *ends[:-1]]
    # The header is <u32 length><u32 crc32> little-endian.
    length, crc = struct.unpack_from("<II", data, 0)
    payload = msgpack.packb(OBJECTS[0], use_bin_type=True)
    assert (length, crc) == (len(payload), zlib.crc32(payload))
    result = scan(data)
    assert (result.good_end, result.size, result.error, result.torn) == (len(data), len(data), None, False)


def test_iteration_can_start_at_a_record_boundary():
    data, ends = _log()
    assert _decoded(data[ends[1] :]) == OBJECTS[2:]
    assert [off for off, _, _ in iter_records(data, ends[1])] == [ends[1], ends[2]]
    assert scan(data, ends[1]).good_end == len(data)


def test_empty_log():
    assert list(iter_records(b"")) == []
    result = scan(b"")
    assert (result.good_end, result.size, result.error, result.torn) == (0, 0, None, False)


@pytest.mark.parametrize("cut", [1, 4, 7])
def test_partial_header_stops_at_the_last_good_record(cut):
    data, ends = _log()
    torn = data + frame(b"\x81\xa1z\x01")[:cut]
    assert _decoded(torn) == OBJECTS
    result = scan(torn)
    assert result.good_end == ends[-1] == len(data)
    assert result.size == len(torn)
    assert result.torn
    assert result.error == f"torn record header at byte {len(data)}"


@pytest.mark.parametrize("keep", [8, 9, 20])
def test_partial_payload_stops_at_the_last_good_record(keep):
    data, ends = _log()
    torn = data[: ends[2] + keep]  # the fourth record (5000+ bytes) cut short
    assert _decoded(torn) == OBJECTS[:3]
    result = scan(torn)
    assert result.good_end == ends[2]
    assert result.torn
    assert result.error == f"truncated record at byte {ends[2]}"


def test_flipped_payload_byte_fails_the_checksum():
    data, ends = _log()
    broken = bytearray(data)
    broken[ends[0] + 8 + 3] ^= 0x40  # a byte inside the second record's payload
    assert _decoded(bytes(broken)) == OBJECTS[:1]  # nothing after the bad record is trusted
    result = scan(bytes(broken))
    assert result.good_end == ends[0]
    assert result.size == len(data)
    assert result.error == f"checksum mismatch at byte {ends[0]}"


def test_flipped_crc_byte_fails_the_checksum():
    data, ends = _log()
    broken = bytearray(data)
    broken[ends[1] + 5] ^= 0x01  # inside the third record's crc field
    assert _decoded(bytes(broken)) == OBJECTS[:2]
    assert scan(bytes(broken)).error == f"checksum mismatch at byte {ends[1]}"


def test_length_beyond_the_file_is_a_truncated_record():
    data, ends = _log()
    broken = bytearray(data)
    broken[ends[0] : ends[0] + 4] = struct.pack("<I", 10**6)  # second record claims 1 MB
    assert _decoded(bytes(broken)) == OBJECTS[:1]
    result = scan(bytes(broken))
    assert result.good_end == ends[0]
    assert result.error == f"truncated record at byte {ends[0]}"


# -- appender ------------------------------------------------------------------------------------


def test_appender_creates_and_appends(tmp_path: Path):
    path = tmp_path / "deep" / "dir" / "events.log"
    a = Appender(path)
    assert a.repaired is None and a.size == 0
    assert a.write(pack({"n": 1})) == 0
    second = pack({"n": 2})
    off = a.write(second)
    a.sync()
    a.close()
    assert off == len(pack({"n": 1}))
    assert _decoded(path.read_bytes()) == [{"n": 1}, {"n": 2}]
    again = Appender(path)
    assert again.repaired is None
    assert again.size == path.stat().st_size == off + len(second)
    again.close()


@pytest.mark.parametrize(
    ("tail", "error"),
    [
        (b"\x05\x00\x00", "torn record header"),
        (frame(msgpack.packb({"lost": True}))[:-2], "truncated record"),
        (struct.pack("<II", 3, 12345) + b"abc", "checksum mismatch"),
    ],
)
def test_appender_cuts_a_torn_tail_before_appending(tmp_path: Path, tail: bytes, error: str):
    path = tmp_path / "events.log"
    data, _ = _log()
    path.write_bytes(data + tail)
    a = Appender(path)
    assert a.repaired == f"{error} at byte {len(data)}"
    assert a.size == len(data)
    assert path.stat().st_size == len(data)  # cut before anything new is written
    assert a.write(pack({"after": 1})) == len(data)
    a.write(pack({"after": 2}))
    a.sync()
    a.close()
    raw = path.read_bytes()
    assert scan(raw).error is None
    assert _decoded(raw) == [*OBJECTS, {"after": 1}, {"after": 2}]
    reopened = Appender(path)
    assert reopened.repaired is None
    reopened.close()


# -- recorder ------------------------------------------------------------------------------------


def _events(n: int, start: int = 1) -> list[Event]:
    """A plausible stream: a trainer joins, the session starts, then chat and chapter marks."""
    out = []
    for seq in range(start, start + n):
        t = seq * 7
        if seq == 1:
            out.append(
                Event(1, 0, "participant.joined", "tr", {"id": "tr", "name": "Tess", "role": "trainer"})
            )
        elif seq == 2:
            out.append(Event(2, 0, "session.started", "tr", {}))
        elif seq % 2:
            data = {"id": f"m{seq}", "text": f"message {seq}", "name": "Tess", "role": "trainer"}
            out.append(Event(seq, t, "chat.message", "tr", data))
        else:
            out.append(Event(seq, t, "chapter.marked", "tr", {"id": f"c{seq}", "title": f"mark {seq}"}))
    return out


def _fold(events: list[Event]) -> SessionState:
    state = SessionState("s1", "Title")
    for e in events:
        apply(state, e)
    return state


def _logged(root: Path, session_id: str = "s1") -> list[dict]:
    return [codec.unpackb(p) for _, _, p in iter_records(events_path(root, session_id).read_bytes())]


async def test_concurrent_appends_share_flushes(tmp_path: Path):
    rec = Recorder(tmp_path, snapshot_events=10**6)
    try:
        recovered = await rec.open("s1", "Title", "on")
        assert recovered.state is not None and recovered.state.seq == 0
        events = _events(60)

        async def command(event: Event) -> None:
            rec.append("s1", [event])
            await rec.durable("s1", event.seq)

        flushes_before = rec.flushes
        await asyncio.wait_for(asyncio.gather(*(command(e) for e in events)), 10)
        flushes = rec.flushes - flushes_before
        assert 1 <= flushes < len(events)
        assert rec.durable_seq["s1"] == 60
        records = _logged(tmp_path)
        assert records[0]["h"]["id"] == "s1" and records[0]["h"]["title"] == "Title"
        assert [r["e"][0] for r in records[1:]] == list(range(1, 61))
        assert [codec.event_from_record(r) for r in records[1:]] == events
    finally:
        await rec.close()


async def test_durable_returns_only_once_the_events_are_in_the_file(tmp_path: Path):
    rec = Recorder(tmp_path)
    try:
        await rec.open("s1", "Title", "on")
        path = events_path(tmp_path, "s1")
        header_only = path.stat().st_size
        events = _events(3)
        rec.append("s1", events)
        # Nothing has been written yet: the flush runs on the writer thread, later.
        assert path.stat().st_size == header_only
        assert rec.durable_seq["s1"] == 0
        await asyncio.wait_for(rec.durable("s1", 3), 5)
        assert rec.durable_seq["s1"] == 3
        assert [r["e"][0] for r in _logged(tmp_path)[1:]] == [1, 2, 3]
        # Already durable: returns at once without another flush.
        flushes = rec.flushes
        await asyncio.wait_for(rec.durable("s1", 2), 1)
        assert rec.flushes == flushes
    finally:
        await rec.close()


async def test_appended_events_are_encoded_at_once(tmp_path: Path):
    rec = Recorder(tmp_path)
    try:
        await rec.open("s1", "Title", "on")
        data = {"id": "c1", "title": "original"}
        rec.append("s1", [Event(1, 5, "chapter.marked", "tr", data)])
        data["title"] = "changed later"
        await rec.durable("s1", 1)
        assert _logged(tmp_path)[1]["e"][4] == {"id": "c1", "title": "original"}
    finally:
        await rec.close()


async def test_snapshot_after_n_events_and_read_latest_equals_the_full_fold(tmp_path: Path):
    rec = Recorder(tmp_path, snapshot_events=5)
    events = _events(13)
    try:
        await rec.open("s1", "Title", "on")
        for e in events:  # one flush per event: a snapshot after every fifth
            rec.append("s1", [e])
            await rec.durable("s1", e.seq)
    finally:
        await rec.close()
    metas, _ = snapshot_metas(snapshots_path(tmp_path, "s1"))
    assert [meta["seq"] for meta, _ in metas] == [5, 10]
    # A snapshot's offset is where the events after it start in the log.
    records = list(iter_records(events_path(tmp_path, "s1").read_bytes()))
    meta = metas[-1][0]
    first_after = next(codec.unpackb(p) for off, _, p in records if off == meta["off"])
    assert first_after["e"][0] == 11
    assert meta["t"] == events[9].t

    latest = read_latest(tmp_path, "s1")
    expected = _fold(events)
    assert latest.state is not None
    assert latest.state.view("trainer") == expected.view("trainer")
    assert latest.state.seq == 13
    assert latest.events == 3  # folded after the snapshot
    assert latest.last_t == events[-1].t
    # The replay reads the same snapshots and agrees at every event.
    recording = Recording(tmp_path, "s1")
    for i, e in enumerate(events):
        if i + 1 < len(events) and events[i + 1].t == e.t:
            continue
        view = recording.state_at(e.t, "trainer")
        want = _fold(events[: i + 1]).view("trainer")
        assert view.pop("paused") is False
        assert view == {**want, "t": e.t}


async def _record_then_close(tmp_path: Path, events: list[Event], snapshot_events: int = 1000) -> None:
    """Record these events in session s1 with a fresh recorder, wait until durable, close."""
    rec = Recorder(tmp_path, snapshot_events=snapshot_events)
    try:
        await rec.open("s1", "Title", "on")
        rec.append("s1", events)
        await rec.durable("s1", events[-1].seq)
    finally:
        await rec.close()


async def test_reopen_continues_from_the_log(tmp_path: Path):
    events = _events(8)
    await _record_then_close(tmp_path, events[:6], snapshot_events=5)
    rec = Recorder(tmp_path, snapshot_events=5)
    try:
        recovered = await rec.open("s1", "Title", "on")
        assert recovered.repaired is None
        assert recovered.state is not None
        assert recovered.state.view("trainer") == _fold(events[:6]).view("trainer")
        assert rec.durable_seq["s1"] == 6
        rec.append("s1", events[6:])
        await rec.durable("s1", 8)
    finally:
        await rec.close()
    records = _logged(tmp_path)
    assert sum(1 for r in records if "h" in r) == 1  # one header, not one per open
    assert [r["e"][0] for r in records if "e" in r] == list(range(1, 9))
    latest = read_latest(tmp_path, "s1")
    assert latest.state is not None
    assert latest.state.view("trainer") == _fold(events).view("trainer")


async def test_reopen_repairs_a_torn_event_tail(tmp_path: Path):
    events = _events(6)
    await _record_then_close(tmp_path, events[:4])
    path = events_path(tmp_path, "s1")
    good = path.stat().st_size
    torn = frame(codec.packb(codec.event_record(events[4], 0)))
    with open(path, "ab") as f:
        f.write(torn[: len(torn) // 2])  # a crash in the middle of a write
    rec = Recorder(tmp_path)
    try:
        recovered = await rec.open("s1", "Title", "on")
        assert recovered.repaired == f"truncated record at byte {good}"
        assert path.stat().st_size == good
        assert recovered.state is not None and recovered.state.seq == 4
        rec.append("s1", events[4:])
        await rec.durable("s1", 6)
    finally:
        await rec.close()
    assert [r["e"][0] for r in _logged(tmp_path) if "e" in r] == [1, 2, 3, 4, 5, 6]
    assert read_latest(tmp_path, "s1").state.view("trainer") == _fold(events).view("trainer")


async def test_torn_snapshot_does_not_break_later_snapshots(tmp_path: Path):
    events = _events(10)
    await _record_then_close(tmp_path, events[:5], snapshot_events=5)
    snap = snapshots_path(tmp_path, "s1")
    data = snap.read_bytes()
    [(_, end, _)] = iter_records(data)  # one record per snapshot: meta and state together
    assert end == len(data)
    snap.write_bytes(data[: end - 20])  # crash while writing the snapshot
    assert list(iter_records(snap.read_bytes())) == []
    rec = Recorder(tmp_path, snapshot_events=5)
    try:
        recovered = await rec.open("s1", "Title", "on")
        # The torn snapshot is cut; the state comes from the log alone.
        assert recovered.state is not None and recovered.state.seq == 5
        rec.append("s1", events[5:])
        await rec.durable("s1", 10)
    finally:
        await rec.close()
    latest = read_latest(tmp_path, "s1")
    assert latest.state is not None
    assert latest.state.view("trainer") == _fold(events).view("trainer")
