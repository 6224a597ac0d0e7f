"""Damaged logs (issue 8): whatever a crash, a bad disk or a full disk leaves in `events.log`,
`snapshots.log` or `index.cache`, the session opens again, keeps every good record before the
damage exactly once with gapless seqs, keeps a copy of what it cut, and the replay agrees."""

from __future__ import annotations

import struct
from pathlib import Path

import msgpack
import pytest

from classroom.core import Event
from recorder import codec
from recorder.logfile import frame, iter_records, scan
from recorder.paths import events_path, index_path, snapshots_path
from recorder.recorder import Recorder, read_latest, snapshot_metas
from recorder.replay import Recording

from .test_logfile import _events, _fold

SID = "s1"


async def _record(root: Path, events: list[Event], snapshot_events: int = 1000) -> None:
    rec = Recorder(root, snapshot_events=snapshot_events)
    try:
        await rec.open(SID, "Title", "on")
        for event in events:  # one flush per event, so snapshots land where they are due
            rec.append(SID, [event])
            await rec.durable(SID, event.seq)
    finally:
        await rec.close()


def _records(root: Path) -> list[tuple[int, int, dict]]:
    return [(off, end, codec.unpackb(p)) for off, end, p in iter_records(events_path(root, SID).read_bytes())]


def _seqs(root: Path) -> list[int]:
    return [r["e"][0] for _, _, r in _records(root) if "e" in r]


def _damaged_copies(root: Path, name: str = "events.log") -> list[Path]:
    return sorted(events_path(root, SID).parent.glob(f"{name}.damaged-*"))


async def _reopen_and_continue(root: Path, events: list[Event], kept: int) -> None:
    """Open the damaged log: it must hold the first `kept` events; then append the rest of
    `events` after them, close, and check the log, a rebuild and the replay agree."""
    rec = Recorder(root, snapshot_events=5)
    try:
        recovered = await rec.open(SID, "Title", "on")
        assert recovered.state is not None
        assert recovered.state.seq == kept
        assert recovered.state.view("trainer") == _fold(events[:kept]).view("trainer")
        # New events follow the kept ones, with the next seqs.
        renumbered = [Event(kept + i + 1, e.t, e.type, e.actor, e.data) for i, e in enumerate(events[kept:])]
        for event in renumbered:
            rec.append(SID, [event])
            await rec.durable(SID, event.seq)
    finally:
        await rec.close()
    total = kept + len(renumbered)
    assert _seqs(root) == list(range(1, total + 1))
    assert scan(events_path(root, SID).read_bytes()).error is None
    latest = read_latest(root, SID)
    assert latest.state is not None and latest.state.seq == total
    want = _fold(events[:kept] + renumbered).view("trainer")
    assert latest.state.view("trainer") == want
    replay = Recording(root, SID)
    manifest = replay.manifest()
    assert "damage" not in manifest
    assert manifest["counts"]["events"] == total
    assert [e["seq"] for e in replay.window(0, 2**62, "trainer")] == list(range(1, total + 1))
    state = replay.state_at(2**40, "trainer")
    assert state["seq"] == total
    assert state["chat"] == want["chat"]


# -- item 1: records that pass the checksum but are not events ------------------------------------


@pytest.mark.parametrize("zeros", [8, 9, 100, 4096, 70_000])
async def test_zero_filled_tail_is_cut_like_a_torn_tail(tmp_path: Path, zeros: int):
    events = _events(12)
    await _record(tmp_path, events[:8])
    path = events_path(tmp_path, SID)
    good = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"\0" * zeros)  # what a crash on some file systems leaves
    # The replay, before anyone reopens the session, serves what precedes the zeros.
    replay = Recording(tmp_path, SID)
    manifest = replay.manifest()
    assert manifest["counts"]["events"] == 8
    assert manifest["damage"]["recovered_events"] == 8
    assert replay.state_at(2**40, "trainer")["seq"] == 8
    # A rebuild (what the server does when someone connects) reads the good part too.
    assert read_latest(tmp_path, SID).state.seq == 8
    await _reopen_and_continue(tmp_path, events, kept=8)
    # The cut bytes are kept aside for a human to look at.
    [copy] = _damaged_copies(tmp_path)
    assert copy.stat().st_size == good + zeros


async def test_zero_filled_region_mid_log_cuts_there(tmp_path: Path):
    events = _events(12)
    await _record(tmp_path, events)
    records = _records(tmp_path)
    off, _end, rec = records[6]  # event 6
    assert rec["e"][0] == 6
    raw = bytearray(events_path(tmp_path, SID).read_bytes())
    raw[off : off + 64] = b"\0" * 64  # a block of zeros where events 6.. were
    events_path(tmp_path, SID).write_bytes(bytes(raw))
    assert Recording(tmp_path, SID).manifest()["damage"]["recovered_events"] == 5
    await _reopen_and_continue(tmp_path, events, kept=5)
    assert len(_damaged_copies(tmp_path)) == 1


@pytest.mark.parametrize(
    "payload",
    [
        b"\xc1",  # never valid msgpack
        msgpack.packb("a string, not a record"),
        msgpack.packb({"e": [7, 1, "chat.message"]}),  # too short
        msgpack.packb({"x": 1}),
        msgpack.packb({"h": {"id": SID, "title": "again", "recording": "on"}}),  # a second header
    ],
    ids=["invalid-msgpack", "not-a-map", "short-event", "no-kind", "second-header"],
)
async def test_a_record_that_passes_its_checksum_but_is_no_event_is_damage(tmp_path: Path, payload: bytes):
    events = _events(10)
    await _record(tmp_path, events[:6])
    with open(events_path(tmp_path, SID), "ab") as f:
        f.write(frame(payload))
    replay = Recording(tmp_path, SID)
    assert replay.manifest()["damage"]["recovered_events"] == 6
    await _reopen_and_continue(tmp_path, events, kept=6)


async def test_events_out_of_order_are_damage(tmp_path: Path):
    """A log that repeats or skips a seq is cut before it: seqs stay gapless and unique."""
    events = _events(10)
    await _record(tmp_path, events[:6])
    with open(events_path(tmp_path, SID), "ab") as f:
        f.write(frame(codec.packb(codec.event_record(events[3], 0))))  # seq 4 again
        f.write(frame(codec.packb(codec.event_record(events[6], 0))))
    await _reopen_and_continue(tmp_path, events, kept=6)


# -- item 1: damaged snapshots and index -----------------------------------------------------------


@pytest.mark.parametrize("where", ["zero-tail", "flip-last", "flip-first", "zero-length-field", "garbage"])
async def test_damaged_snapshots_fall_back_to_the_log(tmp_path: Path, where: str):
    events = _events(20)
    await _record(tmp_path, events[:12], snapshot_events=5)
    snap = snapshots_path(tmp_path, SID)
    raw = bytearray(snap.read_bytes())
    metas, _ = snapshot_metas(snap)
    assert [m["seq"] for m, _ in metas] == [5, 10]
    if where == "zero-tail":
        raw += b"\0" * 4096
    elif where == "flip-last":
        raw[metas[-1][1] + 200] ^= 0xFF
    elif where == "flip-first":
        raw[metas[0][1] + 200] ^= 0xFF
    elif where == "zero-length-field":
        raw[metas[-1][1] : metas[-1][1] + 4] = b"\0\0\0\0"
    else:
        raw[metas[0][1] + 8 :] = b"\xc1" * (len(raw) - metas[0][1] - 8)
    snap.write_bytes(bytes(raw))
    assert read_latest(tmp_path, SID).state.view("trainer") == _fold(events[:12]).view("trainer")
    replay = Recording(tmp_path, SID)
    assert replay.state_at(2**40, "trainer")["chat"] == _fold(events[:12]).view("trainer")["chat"]
    await _reopen_and_continue(tmp_path, events, kept=12)
    # Snapshots written after the repair (5 events after the reopen) are found again.
    metas, end = snapshot_metas(snap)
    assert metas and metas[-1][0]["seq"] == 17
    assert end == snap.stat().st_size


@pytest.mark.parametrize("damage", ["zeros", "garbage", "flip", "truncated", "not-a-map", "short-arrays"])
async def test_damaged_index_cache_is_rebuilt(tmp_path: Path, damage: str):
    events = _events(12)
    await _record(tmp_path, events[:10], snapshot_events=5)
    ix = index_path(tmp_path, SID)
    raw = bytearray(ix.read_bytes())
    if damage == "zeros":
        raw = bytearray(len(raw))
    elif damage == "garbage":
        raw = bytearray(b"\xc1" * len(raw))
    elif damage == "flip":
        raw[len(raw) // 3] ^= 0x10  # inside the arrays of offsets
    elif damage == "truncated":
        raw = raw[: len(raw) // 2]
    elif damage == "not-a-map":
        raw = bytearray(msgpack.packb([1, 2, 3]))
    else:
        d = msgpack.unpackb(bytes(raw[8:]) if raw[:1] != b"\x8d" else bytes(raw), raw=False)
        d["arrays"][2] = d["arrays"][2][:-8]
        raw = bytearray(msgpack.packb(d, use_bin_type=True))
    ix.write_bytes(bytes(raw))
    replay = Recording(tmp_path, SID)
    assert [e["seq"] for e in replay.window(0, 2**62, "trainer")] == list(range(1, 11))
    assert "damage" not in replay.manifest()
    await _reopen_and_continue(tmp_path, events, kept=10)


def test_empty_record_is_not_a_record():
    data = frame(msgpack.packb({"a": 1}))
    result = scan(data + struct.pack("<II", 0, 0))
    assert result.good_end == len(data)
    assert result.error == f"empty record at byte {len(data)}"


# -- item 2: damage mid-log with snapshots after it ------------------------------------------------


@pytest.mark.parametrize("victim", [3, 7, 11, 16])
async def test_snapshots_past_a_cut_are_never_used(tmp_path: Path, victim: int):
    """A flipped byte in event `victim`: the log is cut before it, and the snapshots taken after
    it (seq 5, 10, 15) that describe events now gone are dropped, not used; new events get the
    next seqs, and a second reopen still has them, once each."""
    events = _events(30)
    await _record(tmp_path, events[:18], snapshot_events=5)
    off, end, rec = _records(tmp_path)[victim]
    assert rec["e"][0] == victim
    raw = bytearray(events_path(tmp_path, SID).read_bytes())
    raw[(off + end) // 2] ^= 0x08
    events_path(tmp_path, SID).write_bytes(bytes(raw))
    kept = victim - 1
    await _reopen_and_continue(tmp_path, events[:24], kept=kept)
    # Only the snapshots before the cut survive, plus those taken after the reopen.
    metas, _ = snapshot_metas(snapshots_path(tmp_path, SID))
    assert all(m["seq"] <= kept or m["seq"] > kept + 4 for m, _ in metas)
    # Once more: a second reopen starts where the first one left off, with nothing lost.
    total = kept + 24 - kept
    rec2 = Recorder(tmp_path, snapshot_events=5)
    try:
        recovered = await rec2.open(SID, "Title", "on")
        assert recovered.repaired is None
        assert recovered.state.seq == total
    finally:
        await rec2.close()
    assert _seqs(tmp_path) == list(range(1, total + 1))


# -- item 2: a damaged header ------------------------------------------------------------------------


def _flip_header(root: Path, where: str) -> None:
    path = events_path(root, SID)
    raw = bytearray(path.read_bytes())
    length = struct.unpack_from("<I", raw, 0)[0]
    if where == "payload":
        raw[8 + length // 2] ^= 0x20
    elif where == "crc":
        raw[5] ^= 0x01
    else:  # the length field: the framing itself is lost
        raw[0] ^= 0x04
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("where", ["payload", "crc", "length"])
async def test_a_damaged_header_is_reported_then_rewritten_and_nothing_after_it_is_lost(
    tmp_path: Path, where: str
):
    from recorder.library import Library
    from recorder.replay import RecordingError

    events = _events(12)
    await _record(tmp_path, events[:9], snapshot_events=5)
    _flip_header(tmp_path, where)
    # The replay says the recording is damaged, not that there is none.
    library = Library(tmp_path)
    try:
        assert library.exists(SID)
        with pytest.raises(RecordingError) as caught:
            await library.read(SID, Recording.manifest)
        assert caught.value.message != "no recording"
    finally:
        library.close()
    # The writer knows what the header says (the session's metadata): it rewrites it in place
    # and keeps every event after it.
    await _reopen_and_continue(tmp_path, events, kept=9)
    assert len(_damaged_copies(tmp_path)) == 1
    header = _records(tmp_path)[0][2]["h"]
    assert (header["id"], header["title"], header["recording"]) == (SID, "Title", "on")


# -- item 4: a reader that saw damage before the writer repaired it ------------------------------------


@pytest.mark.parametrize("tail", ["torn", "zeros", "flip"])
async def test_a_replay_read_before_the_repair_sees_what_follows_it(tmp_path: Path, tail: str):
    """The replay (cached by the library) reads a log with a bad tail while no writer has it
    open; then the session is opened again (the writer cuts the tail) and 20 events are
    acknowledged: the same cached reader must serve them."""
    from recorder.library import Library

    events = _events(30)
    await _record(tmp_path, events[:10], snapshot_events=5)
    path = events_path(tmp_path, SID)
    if tail == "torn":
        with open(path, "ab") as f:
            f.write(frame(codec.packb(codec.event_record(events[10], 0)))[:-3])
    elif tail == "zeros":
        with open(path, "ab") as f:
            f.write(bytes(512))
    else:
        raw = bytearray(path.read_bytes())
        _off, end, _ = _records(tmp_path)[10]  # the last event
        raw[end - 2] ^= 0x01
        path.write_bytes(bytes(raw))
    kept = 9 if tail == "flip" else 10
    rec = Recorder(tmp_path, snapshot_events=5)
    library = Library(tmp_path, rec.is_open)
    try:
        before = await library.read(SID, Recording.manifest)
        assert before["damage"]["recovered_events"] == kept
        await rec.open(SID, "Title", "on")
        for i, e in enumerate(events[kept : kept + 20]):
            event = Event(kept + i + 1, e.t, e.type, e.actor, e.data)
            rec.append(SID, [event])
            await rec.durable(SID, event.seq)
        after = await library.read(SID, Recording.manifest)
        assert "damage" not in after
        assert after["counts"]["events"] == kept + 20
        window = await library.read(SID, lambda r: r.window(0, 2**62, "trainer"))
        assert [e["seq"] for e in window] == list(range(1, kept + 21))
        state = await library.read(SID, lambda r: r.state_at(2**40, "trainer"))
        assert state["seq"] == kept + 20
    finally:
        await rec.close()
        library.close()
    after_close = Library(tmp_path)
    try:
        assert (await after_close.read(SID, Recording.manifest))["counts"]["events"] == kept + 20
    finally:
        after_close.close()
