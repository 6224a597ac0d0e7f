"""A full disk (issue 8, item 3), on a real small tmpfs: nothing is acknowledged that is not wholly
written and fsynced, a failed write never leaves torn bytes or zeros behind, `storage_failed`
events reach the log once space returns, the backlog kept meanwhile is bounded (then commands are
refused with `storage_full`, changing nothing), and closing reports what it could not save."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from classroom.client import ClassroomError
from classroom.keys import SESSIONS
from classroom.ports import StorageError
from recorder import codec
from recorder.logfile import iter_records, scan
from recorder.paths import events_path
from recorder.recorder import Recorder

from ..conftest import running_server
from ..disks import small_tmpfs
from .test_logfile import _events, _fold


class SmallDisk:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self, leave: int = 0) -> None:
        """Fill the disk, leaving about `leave` bytes free."""
        st = os.statvfs(self.path)
        free = st.f_bavail * st.f_frsize
        # The server may write meanwhile: whatever it took, the disk ends up (about) full.
        with contextlib.suppress(OSError), open(self.filler, "ab") as f:
            f.write(bytes(max(0, free - leave)))
        if leave == 0:  # whatever rounding left over
            with contextlib.suppress(OSError), open(self.path / "filler2", "ab") as f:
                while True:
                    f.write(bytes(512))
                    f.flush()

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)
        (self.path / "filler2").unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_tmpfs(tmp_path / "disk", "2m") as path:
        yield SmallDisk(path)


def _big(events: list) -> list:
    """The same events with 1 KB more each, so a batch spans several pages of the disk."""
    from classroom.core import Event

    return [Event(e.seq, e.t, e.type, e.actor, {**e.data, "pad": "p" * 1000}) for e in events]


async def _saved(rec: Recorder, sid: str, seq: int, timeout: float = 5) -> None:
    """Wait until the recorder's retries have made `seq` durable."""
    for _ in range(int(timeout / 0.05)):
        if rec.durable_seq.get(sid, 0) >= seq:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{sid}: seq {seq} not saved in {timeout} s")


def _seqs(root: Path, sid: str = "s1") -> list[int]:
    data = events_path(root, sid).read_bytes()
    records = [codec.unpackb(p) for _, _, p in iter_records(data)]
    assert "h" in records[0]
    return [r["e"][0] for r in records[1:]]


async def test_a_short_write_is_not_acknowledged_and_is_retried(small_disk: SmallDisk, caplog):
    caplog.set_level(logging.WARNING, "recorder.recorder")
    root = small_disk.path / "recordings"
    rec = Recorder(root)
    try:
        await rec.open("s1", "Title", "on")
        events = _big(_events(40))
        rec.append("s1", events[:5])
        await rec.durable("s1", 5)
        good = events_path(root, "s1").stat().st_size
        small_disk.fill(leave=1500)  # room for part of the next batch only
        big = [e for e in events[5:]]
        rec.append("s1", big)
        with pytest.raises(StorageError):
            await asyncio.wait_for(rec.durable("s1", 40), 5)
        # Nothing torn, no zeros: the log ends where the last acknowledged batch ended.
        data = events_path(root, "s1").read_bytes()
        assert len(data) == good and scan(data).error is None
        await asyncio.sleep(1.2)  # a couple of retries while the disk stays full
        data = events_path(root, "s1").read_bytes()
        assert len(data) == good and scan(data).error is None
        # The retries reuse the bytes joined for the first try (no megabytes joined per retry).
        assert len(rec._pending["s1"].blobs) == 1
        # One line says the writes fail, not one per retry.
        assert sum("cannot write its log" in r.getMessage() for r in caplog.records) == 1
        small_disk.free()
        await _saved(rec, "s1", 40)
        assert any("written again" in r.getMessage() for r in caplog.records)
    finally:
        await rec.close()
    assert _seqs(root) == list(range(1, 41))
    reopened = Recorder(root)
    try:
        recovered = await reopened.open("s1", "Title", "on")
        assert recovered.repaired is None and recovered.state.seq == 40
    finally:
        await reopened.close()


async def test_close_tries_once_more_and_reports_what_it_could_not_save(small_disk: SmallDisk, caplog):
    root = small_disk.path / "recordings"
    rec = Recorder(root)
    await rec.open("s1", "Title", "on")
    await rec.open("s2", "Other", "on")
    events = _big(_events(30))
    rec.append("s1", events[:3])
    rec.append("s2", events[:3])
    await rec.durable("s1", 3)
    await rec.durable("s2", 3)
    small_disk.fill()
    rec.append("s1", events[3:20])
    with pytest.raises(StorageError):
        await asyncio.wait_for(rec.durable("s1", 20), 5)
    small_disk.free()
    rec.append("s2", events[3:10])
    # Space came back before the next retry: closing saves everything queued.
    assert await asyncio.wait_for(rec.close(), 10) == {}
    assert _seqs(root, "s1") == list(range(1, 21))
    assert _seqs(root, "s2") == list(range(1, 11))

    rec = Recorder(root)
    await rec.open("s1", "Title", "on")
    small_disk.fill()
    rec.append("s1", events[20:30])
    with pytest.raises(StorageError):
        await asyncio.wait_for(rec.durable("s1", 30), 5)
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        unsaved = await asyncio.wait_for(rec.close(), 10)
    # Reported honestly, once, without a traceback.
    assert unsaved == {"s1": 10}
    lines = [r for r in caplog.records if "never saved" in r.getMessage()]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert "21" in lines[0].getMessage() and "30" in lines[0].getMessage()
    small_disk.free()
    assert _seqs(root, "s1") == list(range(1, 21))
    # After close nobody waits for ever.
    with pytest.raises(StorageError):
        await asyncio.wait_for(rec.durable("s1", 30), 2)


async def test_backlog_is_bounded_and_then_commands_are_refused(small_disk: SmallDisk):
    data_dir = small_disk.path / "data"
    async with running_server(data_dir) as server:
        recorder = server.app[SESSIONS].recorder
        recorder.backlog_limit = 40_000
        info, trainer = await server.live_session("Full")
        learner = await server.client(info["join_url"], "Ada")
        ok = await trainer.request("chat.send", text="saved")
        small_disk.fill()
        failed, full = [], []
        text = "x" * 1900
        acked = 0  # the last page of the log may still hold a message or two
        for i in range(60):
            try:
                await trainer.request("chat.send", text=f"{i} {text}")
                assert not failed, "acknowledged after a failure while the disk is full"
                acked += 1
                assert acked <= 3, "acknowledged while the disk is full"
                continue
            except ClassroomError as exc:
                (failed if exc.code == "storage_failed" else full).append((i, exc.code, exc.message))
        assert failed and full, (failed, full)
        assert {code for _, code, _ in full} == {"storage_full"}
        assert "nothing changed" in full[0][2]
        # Everything refused came after everything that took effect.
        assert max(i for i, *_ in failed) < min(i for i, *_ in full)
        assert recorder.backlog[info["id"]] < 40_000 + 4_000
        # Refused commands changed nothing: the chat holds "saved" and the storage_failed ones.
        await trainer.wait_until(lambda: len(trainer.view()["chat"]) == 1 + acked + len(failed), timeout=5)
        # Leaving and joining still work (presence is not refused).
        await learner.close()
        other = await server.client(info["join_url"], "Bob")
        assert other.view()["chat"][-1]["text"].startswith(f"{failed[-1][0]} ")
        small_disk.free()
        # Space is back: the storage_failed events reach the log, and commands work again.
        for _ in range(200):
            if recorder.backlog[info["id"]] == 0:
                break
            await asyncio.sleep(0.05)
        assert recorder.backlog[info["id"]] == 0
        ack = await trainer.request("chat.send", text="after")
        assert ack["seq"] > ok["seq"]
    texts = []
    for _, _, p in iter_records(events_path(data_dir / "recordings", info["id"]).read_bytes()):
        e = codec.unpackb(p).get("e")
        if e and e[2] == "chat.message":
            texts.append(e[4]["text"])
    assert texts[0] == "saved" and texts[-1] == "after"
    assert [t.split(" ")[0] for t in texts[1 + acked : 1 + acked + len(failed)]] == [
        str(i) for i, *_ in failed
    ]
    assert len(texts) == 2 + acked + len(failed)
    seqs = _seqs(data_dir / "recordings", info["id"])
    assert seqs == list(range(1, len(seqs) + 1))


async def test_a_failing_session_does_not_slow_the_others(small_disk: SmallDisk, tmp_path: Path):
    """s1's recording lives on the small disk (a symlink), s2's on the big one: while s1's
    writes fail and are retried, s2's events are acknowledged as fast as ever."""
    root = tmp_path / "recordings"
    root.mkdir()
    (small_disk.path / "s1").mkdir()
    (root / "s1").symlink_to(small_disk.path / "s1")
    rec = Recorder(root)
    try:
        await rec.open("s1", "Full", "on")
        await rec.open("s2", "Fine", "on")
        events = _big(_events(40))
        small_disk.fill()
        rec.append("s1", events[:10])
        with pytest.raises(StorageError):
            await asyncio.wait_for(rec.durable("s1", 10), 5)
        loop = asyncio.get_running_loop()
        slowest = 0.0
        for e in events[:20]:
            start = loop.time()
            rec.append("s2", [e])
            await asyncio.wait_for(rec.durable("s2", e.seq), 5)
            slowest = max(slowest, loop.time() - start)
            await asyncio.sleep(0.03)
        assert slowest < 0.25, f"an ack of s2 waited {slowest:.2f} s behind s1's retries"
        assert rec.durable_seq["s1"] == 0
        small_disk.free()
        await _saved(rec, "s1", 10)
    finally:
        await rec.close()
    assert _seqs(root, "s1") == list(range(1, 11))
    assert _seqs(root, "s2") == list(range(1, 21))


async def test_a_session_closed_while_unsaved_opens_again_with_everything(small_disk: SmallDisk):
    """An ended session leaves memory while the disk is full (its last events unsaved): when it
    is asked for again it comes back with them (not locked out, not rebuilt without them), and
    once space returns they are saved, followed by the new ones, with gapless seqs."""
    root = small_disk.path / "recordings"
    rec = Recorder(root)
    try:
        await rec.open("s1", "Title", "on")
        events = _big(_events(30))
        rec.append("s1", events[:5])
        await rec.durable("s1", 5)
        small_disk.fill()
        rec.append("s1", events[5:20])
        with pytest.raises(StorageError):
            await asyncio.wait_for(rec.durable("s1", 20), 5)
        await asyncio.wait_for(rec.close_session("s1"), 5)  # returns; the log stays open
        assert rec.is_open("s1")
        recovered = await asyncio.wait_for(rec.open("s1", "Title", "on"), 5)
        assert recovered.state is not None and recovered.state.seq == 20
        assert recovered.state.view("trainer") == _fold(events[:20]).view("trainer")
        assert recovered.last_t == events[19].t
        rec.append("s1", events[20:])
        small_disk.free()
        await _saved(rec, "s1", 30)
    finally:
        await rec.close()
    assert _seqs(root) == list(range(1, 31))
