"""Session metadata on local disk (SQLite in WAL mode), used from a single worker thread so the
event loop never waits on the disk."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'created',
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    recording INTEGER NOT NULL DEFAULT 1,
    anonymize INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass
class SessionInfo:
    id: str
    title: str
    status: str
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    recording: bool = True  # record a replay (off: the log only guards against crashes)
    anonymize: bool = False  # learner names anonymised in the replay

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> SessionInfo:
        d = dict(row)
        d["recording"], d["anonymize"] = bool(d["recording"]), bool(d["anonymize"])
        return cls(**d)


class SessionStore:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._db = sqlite3.connect(data_dir / "classcast.db", check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # -- synchronous API (the CLI uses these; the server goes through the async ones) -----------

    def create_sync(
        self, session_id: str, title: str, recording: bool = True, anonymize: bool = False
    ) -> SessionInfo:
        info = SessionInfo(
            session_id, title, "created", time.time(), recording=recording, anonymize=anonymize
        )
        with self._db:
            self._db.execute(
                "INSERT INTO sessions (id, title, status, created_at, recording, anonymize)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (info.id, info.title, info.status, info.created_at, recording, anonymize),
            )
        return info

    def get_sync(self, session_id: str) -> SessionInfo | None:
        row = self._db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return SessionInfo.from_row(row) if row else None

    def list_sync(self) -> list[SessionInfo]:
        rows = self._db.execute("SELECT * FROM sessions ORDER BY created_at DESC").fetchall()
        return [SessionInfo.from_row(r) for r in rows]

    def set_status_sync(self, session_id: str, status: str) -> None:
        column = {"live": "started_at", "ended": "ended_at"}[status]
        with self._db:
            self._db.execute(
                f"UPDATE sessions SET status = ?, {column} = COALESCE({column}, ?) WHERE id = ?",
                (status, time.time(), session_id),
            )

    def delete_sync(self, session_id: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    # -- async API ------------------------------------------------------------------------------

    async def create(
        self, session_id: str, title: str, recording: bool = True, anonymize: bool = False
    ) -> SessionInfo:
        return await self._run(self.create_sync, session_id, title, recording, anonymize)

    async def delete(self, session_id: str) -> None:
        await self._run(self.delete_sync, session_id)

    async def get(self, session_id: str) -> SessionInfo | None:
        return await self._run(self.get_sync, session_id)

    async def list(self) -> list[SessionInfo]:
        return await self._run(self.list_sync)

    async def set_status(self, session_id: str, status: str) -> None:
        await self._run(self.set_status_sync, session_id, status)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._db.close()
