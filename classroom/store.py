"""Session metadata on local disk (SQLite in WAL mode), used from a single worker thread so the
event loop never waits on the disk."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from .core import CommandError

T = TypeVar("T")
log = logging.getLogger(__name__)

STATUS_RETRY = 1.0  # seconds between attempts to save a status the disk refused

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


def storage_full() -> CommandError:
    return CommandError("storage_full", "cannot save right now: the server's disk is full; try again later")


def _refused_by_disk(exc: BaseException) -> bool:
    """A write the disk refused (full, read-only, I/O error) rather than a bug in the query."""
    if isinstance(exc, OSError):
        return True
    name = getattr(exc, "sqlite_errorname", "") or ""
    return isinstance(exc, sqlite3.OperationalError) and (
        name.startswith(("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN"))
        or "disk" in str(exc)
    )


class SessionStore:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._db = sqlite3.connect(data_dir / "classcast.db", check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        # Statuses still to save, per session and status, with the time they took effect: a write
        # the disk refused is retried until it succeeds, in order, with its original time.
        self._statuses: dict[str, dict[str, float]] = {}
        self._retry: asyncio.TimerHandle | None = None
        self._retrying: asyncio.Task[None] | None = None
        self._failing = False

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

    def set_status_sync(self, session_id: str, status: str, at: float | None = None) -> None:
        column = {"live": "started_at", "ended": "ended_at"}[status]
        # Never back from "ended" to "live" (a late retry of "live" after "ended" was saved).
        keep = " AND status != 'ended'" if status == "live" else ""
        with self._db:
            self._db.execute(
                f"UPDATE sessions SET status = ?, {column} = COALESCE({column}, ?) WHERE id = ?{keep}",
                (status, at if at is not None else time.time(), session_id),
            )

    def delete_sync(self, session_id: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    # -- async API ------------------------------------------------------------------------------

    async def create(
        self, session_id: str, title: str, recording: bool = True, anonymize: bool = False
    ) -> SessionInfo:
        """Create a session's row (in one transaction: on failure nothing is left). A full disk is
        `storage_full`."""
        try:
            return await self._run(self.create_sync, session_id, title, recording, anonymize)
        except (sqlite3.Error, OSError) as exc:
            if not _refused_by_disk(exc):
                raise
            log.error("cannot create a session: %s", exc)
            raise storage_full() from None

    async def delete(self, session_id: str) -> None:
        await self._run(self.delete_sync, session_id)

    async def get(self, session_id: str) -> SessionInfo | None:
        return await self._run(self.get_sync, session_id)

    async def list(self) -> list[SessionInfo]:
        return await self._run(self.list_sync)

    async def set_status(self, session_id: str, status: str) -> None:
        """Save a session's status ("live", "ended") with the time it took effect. Never raises: a
        write the disk refuses is logged once and retried every STATUS_RETRY seconds until it
        succeeds (the log holds the truth meanwhile, and a session loaded from it corrects this)."""
        self._statuses.setdefault(session_id, {})[status] = time.time()
        await self._save_statuses()

    @property
    def unsaved_statuses(self) -> dict[str, dict[str, float]]:
        return {sid: dict(v) for sid, v in self._statuses.items() if v}

    async def _save_statuses(self) -> None:
        for session_id, pending in list(self._statuses.items()):
            for status in ("live", "ended"):
                at = pending.get(status)
                if at is None:
                    continue
                try:
                    await self._run(self.set_status_sync, session_id, status, at)
                except Exception as exc:
                    self._failed(exc)
                    return
                if pending.get(status) == at:
                    del pending[status]
            if not pending and self._statuses.get(session_id) is pending:
                del self._statuses[session_id]
        if self._failing and not self._statuses:
            self._failing = False
            log.warning("session statuses are saved again")

    def _failed(self, exc: Exception) -> None:
        if not self._failing:
            self._failing = True
            log.error("cannot save a session's status (%s); retrying every %.0f s", exc, STATUS_RETRY)
        if self._retry is None or self._retry.cancelled():
            loop = asyncio.get_running_loop()

            def again() -> None:
                self._retry = None
                self._retrying = loop.create_task(self._save_statuses())

            self._retry = loop.call_later(STATUS_RETRY, again)

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
        self._pool.submit(self._last_statuses).result()
        self._pool.shutdown(wait=True)
        self._db.close()

    def _last_statuses(self) -> None:
        """A last attempt at the statuses still unsaved (on the store's thread), in order."""
        for session_id, pending in self._statuses.items():
            for status in ("live", "ended"):
                if status not in pending:
                    continue
                try:
                    self.set_status_sync(session_id, status, pending[status])
                except Exception as exc:
                    log.error(
                        "session %s: its status %r could not be saved (%s); it is read again from its "
                        "log when the session is next loaded",
                        session_id,
                        status,
                        exc,
                    )
                    break
