"""A graceful stop of `python -m classroom serve`: SIGTERM with clients connected tells them why,
closes their sockets at once, flushes the log and exits 0 within a couple of seconds; on a full
disk it says in one line what could not be saved and exits 3, with no traceback."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from classroom.client import ClassroomClient
from recorder.replay import Recording

from .disks import small_tmpfs
from .served import Served


def _served(data_dir: Path) -> Served:
    return Served(data_dir, via_env=True, env={"CLASSCAST_ADMIN_KEY": "k"})


async def _until_refused(client: ClassroomClient, text: str) -> dict:
    """Send big chat messages until one is refused (the log's last page may still have room for a
    message or two); return the last ack."""
    for i in range(10):
        ack = await client.send("chat.send", {"text": f"{i} {text} " + "x" * 1900})
        if not ack["ok"]:
            break
    return ack


async def test_sigterm_with_a_client_closes_at_once_and_flushes(tmp_path):
    served = _served(tmp_path / "data")
    await served.start()
    client = ClassroomClient(served.link, "Tess", reconnect=False)
    closing: list = []
    try:
        await client.connect()
        client.sio.on("closing", closing.append)
        await client.request("session.start")
        sent = await client.request("chat.send", text="before the stop")
        code, took = await served.stop()
    finally:
        await served.kill()
        await client.close()
    err = served.stderr.decode()
    assert code == 0, err
    assert took < 3, took
    assert "Traceback" not in err, err
    # A SIGTERM drains (tests/test_drain.py): the client is told to reconnect elsewhere.
    assert closing and closing[0]["code"] == "draining" and closing[0]["message"], closing
    assert not client.sio.connected
    # The log was flushed and closed: the chat and the trainer's leaving are in it.
    rec = Recording(served.data_dir / "recordings", client.session_id)
    events = rec.window(0, 2**62, "trainer")
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert any(e["seq"] == sent["seq"] and e["type"] == "chat.message" for e in events)
    assert events[-1]["type"] == "participant.left"


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs, unmounted afterwards (skipped where mounting is not permitted)."""
    with small_tmpfs(tmp_path / "disk", "4m") as mnt:
        yield mnt


def fill(directory: Path) -> Path:
    """Fill the file system holding `directory`; return the filler file (delete it to free space)."""
    filler = directory / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    try:
        with open(filler, "ab") as f:
            while True:
                f.write(b"\0")
                f.flush()
    except OSError:
        pass
    return filler


async def test_sigterm_on_a_full_disk_says_what_was_not_saved(small_disk):
    served = _served(small_disk / "data")
    await served.start()
    client = ClassroomClient(served.link, "Tess", reconnect=False)
    try:
        await client.connect()
        await client.request("session.start")
        await client.request("chat.send", text="saved")
        fill(small_disk)
        ack = await _until_refused(client, "not saved: the disk is full")
        assert ack["ok"] is False and ack["error"]["code"] == "storage_failed", ack
        code, took = await served.stop()
    finally:
        await served.kill()
        await client.close()
    err = served.stderr.decode()
    assert "Traceback" not in err, err
    assert code == 3, (code, err)
    # One line for the events; the store may add one of its own for the session's status, when
    # the full disk refused that write too (it depends on timing, and the log has the status).
    lines = [line for line in err.splitlines() if "events that could not be saved" in line]
    assert len(lines) == 1 and client.session_id in lines[0], err
    assert took < 10, took


async def test_sigterm_saves_everything_if_space_returns_within_the_grace(small_disk):
    served = _served(small_disk / "data")
    await served.start()
    client = ClassroomClient(served.link, "Tess", reconnect=False)
    try:
        await client.connect()
        await client.request("session.start")
        filler = fill(small_disk)
        ack = await _until_refused(client, "kept in memory")
        assert ack["error"]["code"] == "storage_failed", ack
        unsaved_seq = client.view()["seq"]

        async def space_returns() -> None:
            await asyncio.sleep(1.0)
            filler.unlink()

        freeing = asyncio.create_task(space_returns())
        code, took = await served.stop()
        await freeing
    finally:
        await served.kill()
        await client.close()
    err = served.stderr.decode()
    assert code == 0 and "Traceback" not in err and "could not be saved" not in err, err
    assert took < 6, took
    rec = Recording(served.data_dir / "recordings", client.session_id)
    assert "damage" not in rec.manifest(), rec.manifest()
    events = rec.window(0, 2**62, "trainer")
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["seq"] > unsaved_seq and events[-1]["type"] == "participant.left"
