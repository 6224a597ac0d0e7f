"""The crash-and-damage loop (issue 8, "make it stay fixed"): a real server process under a scripted
load is killed with SIGKILL at a random point, then its data directory is damaged in each way a
crash or a bad disk can (torn tail, zero tail, a flipped byte mid-log, a flipped header byte, a
damaged snapshot) and on a small tmpfs the disk fills up under load. After each restart:

- every acknowledged chat message (and every `storage_failed` one, once space is back) is in the
  log exactly once, except those after a flipped byte mid-log, which the damage destroyed;
- seqs are gapless from 1 and unique;
- the session is joinable: a real socket.io client joins, sends a chat that is acknowledged, and
  the replay API answers (without damage once the session is open again).

CI runs one round (well under a minute); `CLASSCAST_CRASH_ROUNDS=N` runs N rounds with new kill
points for a longer soak.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import struct
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from classroom.client import ClassroomClient, ClassroomError
from recorder import codec
from recorder.logfile import frame, iter_records
from recorder.recorder import snapshot_metas

from ..conftest import ADMIN_KEY
from ..disks import small_tmpfs
from ..served import Served

ROUNDS = int(os.environ.get("CLASSCAST_CRASH_ROUNDS", "1"))
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
WRITERS = 4  # trainer connections sending chat as fast as their acks come back


@dataclass
class Load:
    acked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # storage_failed: took effect, saved later
    stop: asyncio.Event = field(default_factory=asyncio.Event)


class Server(Served):
    """`python -m classroom serve`; its log goes to `<data>-server.log` beside the data."""

    def __init__(self, data_dir: Path) -> None:
        log = data_dir.parent / f"{data_dir.name}-server.log"
        super().__init__(data_dir, "--admin-key", ADMIN_KEY, env={"LOG_LEVEL": "WARNING"}, stderr=log)

    async def http(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as http, http.request(method, self.base + path, **kw) as r:
            return r.status, await r.json()


async def _session(server: Server) -> dict[str, Any]:
    status, info = await server.http("POST", "/api/sessions", json={"title": "Crash"}, headers=ADMIN)
    assert status == 201
    return info


async def _writer(info: dict[str, Any], k: int, load: Load, clients: list[ClassroomClient]) -> None:
    c = ClassroomClient(info["trainer_url"], f"W{k}", reconnect=False)
    clients.append(c)
    await c.connect()
    n = 0
    while not load.stop.is_set():
        n += 1
        text = f"w{k}-{n}"
        try:
            await c.request("chat.send", text=text)
            load.acked.append(text)
        except ClassroomError as exc:
            if exc.code == "storage_failed":
                load.failed.append(text)
            else:
                await asyncio.sleep(0.02)  # storage_full, rate limited: nothing changed
        except Exception:
            return  # the server died under us: whether this one landed is unknown


async def _run_load(info: dict[str, Any], load: Load) -> tuple[list[asyncio.Task[None]], list]:
    clients: list[ClassroomClient] = []
    trainer = ClassroomClient(info["trainer_url"], "T", reconnect=False)
    clients.append(trainer)
    await trainer.connect()
    if trainer.view()["status"] == "created":
        await trainer.request("session.start")
    tasks = [asyncio.create_task(_writer(info, k, load, clients)) for k in range(WRITERS)]
    return tasks, clients


async def _stop(tasks: list[asyncio.Task[None]], clients: list[ClassroomClient]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in clients:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(c.close(), 2)


async def _until(condition: Any, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def _log(data_dir: Path, sid: str) -> list[tuple[int, int, dict[str, Any]]]:
    """The log's good records (read here, independently of the code under test)."""
    out = []
    for off, end, payload in iter_records((data_dir / "recordings" / sid / "events.log").read_bytes()):
        try:
            out.append((off, end, codec.unpackb(payload)))
        except Exception:
            break
    return out


def _chats(data_dir: Path, sid: str, whole: bool = True) -> Counter[str]:
    """The chat texts in the log, counted; asserts its seqs are gapless and (`whole`) that it
    holds no bad record."""
    records = _log(data_dir, sid)
    path = data_dir / "recordings" / sid / "events.log"
    assert not whole or records[-1][1] == path.stat().st_size, "the log holds a bad record"
    seqs = [r["e"][0] for _, _, r in records[1:]]
    assert seqs == list(range(1, len(seqs) + 1))
    return Counter(r["e"][4]["text"] for _, _, r in records[1:] if r["e"][2] == "chat.message")


def _exactly_once(chats: Counter[str], texts: list[str]) -> None:
    missing = [t for t in texts if chats[t] == 0]
    twice = [t for t, n in chats.items() if n > 1]
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:3]}"
    assert not twice, f"messages twice in the log: {twice[:3]}"


async def _joinable(server: Server, info: dict[str, Any], probe: str) -> None:
    """A fresh client joins, its chat is acknowledged; the replay answers, without damage."""
    link = server.base + info["trainer_url"].split("/", 3)[3].join(["/", ""])  # this server's port
    c = ClassroomClient(link, "Probe", reconnect=False)
    try:
        await c.connect()
        await c.request("chat.send", text=probe)
    finally:
        await c.close()
    sid = info["id"]
    status, manifest = await server.http("GET", f"/api/recordings/{sid}", headers=ADMIN)
    assert status == 200, manifest
    assert "damage" not in manifest
    t = manifest["duration_ms"]
    status, state = await server.http("GET", f"/api/recordings/{sid}/state?t={t}", headers=ADMIN)
    assert status == 200, state
    assert probe in {m["text"] for m in state["chat"]}


# -- the damages ------------------------------------------------------------------------------------


def _damage(data_dir: Path, sid: str, kind: str) -> list[str] | None:
    """Damage the killed server's files; returns the chat texts the damage destroyed for good
    (those from a flipped byte on), or None when nothing acknowledged may be lost."""
    rec_dir = data_dir / "recordings" / sid
    log = rec_dir / "events.log"
    records = _log(data_dir, sid)
    raw = bytearray(log.read_bytes())
    if kind == "torn-tail":
        _, _, last = records[-1]
        torn = frame(codec.packb(last))
        raw += torn[: random.randint(1, len(torn) - 1)]
    elif kind == "zero-tail":
        raw += bytes(random.choice([8, 100, 4096, 70_000]))
    elif kind == "flip-header":
        end = records[0][1]
        raw[random.randint(8, end - 1)] ^= 1 << random.randint(0, 7)
    elif kind == "flip-mid":
        i = random.randint(len(records) // 3, len(records) - 2)
        off, end, _ = records[i]
        raw[random.randint(off + 8, end - 1)] ^= 1 << random.randint(0, 7)
        log.write_bytes(bytes(raw))
        return [r["e"][4]["text"] for _, _, r in records[i:] if r["e"][2] == "chat.message"]
    elif kind == "snapshot":
        snap = rec_dir / "snapshots.log"
        metas, _ = snapshot_metas(snap) if snap.exists() else ([], 0)
        if metas:
            data = bytearray(snap.read_bytes())
            length = struct.unpack_from("<I", data, metas[-1][1])[0]
            data[metas[-1][1] + 8 + random.randint(0, length - 1)] ^= 0x10
            snap.write_bytes(bytes(data))
        else:
            with open(snap, "ab") as f:
                f.write(bytes(4096))
    log.write_bytes(bytes(raw))
    return None


KINDS = ["kill-only", "torn-tail", "zero-tail", "flip-mid", "flip-header", "snapshot"]


@contextlib.asynccontextmanager
async def _under_load(server: Server) -> AsyncIterator[tuple[dict[str, Any], Load]]:
    """A new session on the started `server`, under the writers' load; once the body is done the
    server is killed at a random point soon after (at once if the body failed)."""
    load = Load()
    tasks: list = []
    clients: list = []
    try:
        info = await _session(server)
        tasks, clients = await _run_load(info, load)
        yield info, load
        await asyncio.sleep(random.uniform(0, 0.3))
        await server.kill()
    finally:
        await server.kill()
        await _stop(tasks, clients)


async def _killed_under_load(data_dir: Path, min_chats: int) -> tuple[dict[str, Any], Load]:
    server = Server(data_dir)
    await server.start()
    async with _under_load(server) as (info, load):
        await _until(lambda: len(load.acked) >= min_chats, 30)
    return info, load


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_kill_then_each_damage_loses_nothing_acknowledged(tmp_path: Path, round_: int):
    random.seed(os.environ.get("CLASSCAST_CRASH_SEED", f"{round_}-{os.getpid()}"))
    killed = tmp_path / "killed"
    # Past 1000 events, so there is a snapshot to damage, and the flipped byte mid-log is often
    # before it (a snapshot past the cut must not be used).
    info, load = await _killed_under_load(killed, min_chats=random.randint(1100, 1300))
    sid = info["id"]
    _exactly_once(_chats(killed, sid, whole=False), load.acked)
    for kind in KINDS:
        data_dir = tmp_path / kind
        shutil.copytree(killed, data_dir)
        destroyed = _damage(data_dir, sid, kind) if kind != "kill-only" else None
        server = Server(data_dir)
        await server.start()
        try:
            if kind == "flip-header":
                # Before the session is opened again, the replay says what is wrong.
                status, body = await server.http("GET", f"/api/recordings/{sid}", headers=ADMIN)
                assert (status, body["error"]["code"]) == (500, "recording_damaged"), body
            await _joinable(server, info, f"probe-{kind}")
            if kind in ("flip-mid", "snapshot"):
                # Once more after the repair: the new events stay, seqs do not repeat.
                await server.kill()
                await server.start()
                await _joinable(server, info, f"probe-{kind}-2")
        finally:
            await server.kill()
        chats = _chats(data_dir, sid)
        expected = [t for t in load.acked if destroyed is None or t not in set(destroyed)]
        _exactly_once(chats, [*expected, f"probe-{kind}"])
        if destroyed is not None:
            assert not set(destroyed) & set(chats), "events after the damage came back"
            _exactly_once(chats, [f"probe-{kind}-2"])
        if kind == "snapshot":
            _exactly_once(chats, [f"probe-{kind}-2"])


@pytest.fixture
def small_disk(tmp_path: Path):
    with small_tmpfs(tmp_path / "disk", "8m") as path:
        yield path


@pytest.mark.parametrize("round_", range(ROUNDS))
async def test_disk_full_under_load_then_kill(small_disk: Path, round_: int):
    """The disk fills under load: acks turn into storage_failed (or storage_full), nothing is
    acknowledged that is not saved; space returns and every storage_failed message reaches the
    log; then a kill at a random point loses nothing acknowledged."""
    random.seed(os.environ.get("CLASSCAST_CRASH_SEED", f"disk-{round_}-{os.getpid()}"))
    data_dir = small_disk / "data"
    filler = small_disk / "filler"
    server = Server(data_dir)
    await server.start()
    async with _under_load(server) as (info, load):
        await _until(lambda: len(load.acked) >= 100, 20)
        with contextlib.suppress(OSError), open(filler, "wb") as f:
            while True:
                f.write(bytes(64 * 1024))
                f.flush()
        await _until(lambda: len(load.failed) >= 20, 20)
        acked_while_full = len(load.acked)
        await asyncio.sleep(random.uniform(0.1, 0.8))
        filler.unlink()
        await _until(lambda: len(load.acked) >= acked_while_full + 100, 20)
    sid = info["id"]
    # Acknowledged and storage_failed messages alike: space came back before the later acks.
    _exactly_once(_chats(data_dir, sid), [*load.acked, *load.failed])
    await server.start()
    try:
        await _joinable(server, info, "probe-disk")
    finally:
        await server.kill()
    _exactly_once(_chats(data_dir, sid), [*load.acked, *load.failed, "probe-disk"])
