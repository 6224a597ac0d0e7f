"""What replay viewers add after the session: quiz answers (per viewer), questions anchored to
a moment of the replay, which trainers answer for every later viewer, and the player's progress
reports (which media-time intervals were played; the engagement report merges them). SQLite, off
the loop."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from classroom.auth import new_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS viewers (
    id TEXT PRIMARY KEY, recording TEXT NOT NULL, name TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS quiz (
    recording TEXT NOT NULL, viewer TEXT NOT NULL, poll TEXT NOT NULL, choices TEXT NOT NULL,
    at REAL NOT NULL, PRIMARY KEY (recording, viewer, poll)
);
CREATE TABLE IF NOT EXISTS questions (
    id TEXT PRIMARY KEY, recording TEXT NOT NULL, viewer TEXT NOT NULL, name TEXT NOT NULL,
    t INTEGER NOT NULL, text TEXT NOT NULL, created REAL NOT NULL,
    answer TEXT, answered_by TEXT, answered_at REAL
);
CREATE INDEX IF NOT EXISTS questions_by_recording ON questions (recording, t);
CREATE TABLE IF NOT EXISTS progress (
    recording TEXT NOT NULL, viewer TEXT NOT NULL, from_ms INTEGER NOT NULL, to_ms INTEGER NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS progress_by_viewer ON progress (recording, viewer);
"""


class ReplayStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-store")
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _add_viewer(self, recording: str, name: str) -> str:
        viewer = new_id(6)
        with self._db:
            self._db.execute(
                "INSERT INTO viewers VALUES (?, ?, ?, ?)", (viewer, recording, name, time.time())
            )
        return viewer

    async def add_viewer(self, recording: str, name: str) -> str:
        return await self._run(self._add_viewer, recording, name)

    def _add_viewers(self, recording: str, names: list[str]) -> list[str]:
        ids = [new_id(6) for _ in names]
        now = time.time()
        with self._db:
            self._db.executemany(
                "INSERT INTO viewers VALUES (?, ?, ?, ?)",
                [(v, recording, name, now) for v, name in zip(ids, names, strict=True)],
            )
        return ids

    async def add_viewers(self, recording: str, names: list[str]) -> list[str]:
        """Register several viewers at once (a replay assignment's assignees), in one transaction."""
        return await self._run(self._add_viewers, recording, names)

    def _remove_viewers(self, recording: str, ids: list[str]) -> None:
        with self._db:
            self._db.executemany(
                "DELETE FROM viewers WHERE recording = ? AND id = ?", [(recording, v) for v in ids]
            )

    async def remove_viewers(self, recording: str, ids: list[str]) -> None:
        """Take back viewers registered for an assignment that could not be saved."""
        await self._run(self._remove_viewers, recording, ids)

    def _answer_quiz(self, recording: str, viewer: str, poll: str, choices: list[int]) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO quiz VALUES (?, ?, ?, ?, ?)",
                (recording, viewer, poll, json.dumps(choices), time.time()),
            )

    async def answer_quiz(self, recording: str, viewer: str, poll: str, choices: list[int]) -> None:
        await self._run(self._answer_quiz, recording, viewer, poll, choices)

    def _quiz_answers(self, recording: str, viewer: str) -> dict[str, list[int]]:
        rows = self._db.execute(
            "SELECT poll, choices FROM quiz WHERE recording = ? AND viewer = ?", (recording, viewer)
        ).fetchall()
        return {r["poll"]: json.loads(r["choices"]) for r in rows}

    async def quiz_answers(self, recording: str, viewer: str) -> dict[str, list[int]]:
        return await self._run(self._quiz_answers, recording, viewer)

    def _ask(self, recording: str, viewer: str, name: str, t: int, text: str) -> dict[str, Any]:
        qid = "r" + new_id(6)
        with self._db:
            self._db.execute(
                "INSERT INTO questions (id, recording, viewer, name, t, text, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (qid, recording, viewer, name, t, text, time.time()),
            )
        return self._question(qid)

    async def ask(self, recording: str, viewer: str, name: str, t: int, text: str) -> dict[str, Any]:
        return await self._run(self._ask, recording, viewer, name, t, text)

    def _question(self, qid: str) -> dict[str, Any]:
        row = self._db.execute("SELECT * FROM questions WHERE id = ?", (qid,)).fetchone()
        return {k: row[k] for k in row.keys() if k != "viewer"} if row else {}  # noqa: SIM118

    def _questions(self, recording: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT id FROM questions WHERE recording = ? ORDER BY t, created", (recording,)
        ).fetchall()
        return [self._question(r["id"]) for r in rows]

    async def questions(self, recording: str) -> list[dict[str, Any]]:
        return await self._run(self._questions, recording)

    def _answer(self, recording: str, qid: str, text: str, by: str) -> dict[str, Any] | None:
        with self._db:
            cur = self._db.execute(
                "UPDATE questions SET answer = ?, answered_by = ?, answered_at = ?"
                " WHERE id = ? AND recording = ?",
                (text, by, time.time(), qid, recording),
            )
        return self._question(qid) if cur.rowcount else None

    async def answer(self, recording: str, qid: str, text: str, by: str) -> dict[str, Any] | None:
        return await self._run(self._answer, recording, qid, text, by)

    def _progress(self, recording: str, viewer: str, start: int, end: int, limit: int) -> bool:
        with self._db:
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM progress WHERE recording = ? AND viewer = ?", (recording, viewer)
            ).fetchone()
            if n >= limit:
                return False
            self._db.execute(
                "INSERT INTO progress VALUES (?, ?, ?, ?, ?)", (recording, viewer, start, end, time.time())
            )
        return True

    async def progress(self, recording: str, viewer: str, start: int, end: int, limit: int) -> bool:
        """Store one progress report, unless the viewer has sent `limit` already (False)."""
        return await self._run(self._progress, recording, viewer, start, end, limit)

    def _report_data(self, recording: str, only: list[str] | None) -> dict[str, Any]:
        db = self._db
        # `only`: these viewers' rows alone (each query then goes by viewer, through the indexes).
        where = "recording = ?" if only is None else "recording = ? AND viewer = ?"
        keys = [(recording,)] if only is None else [(recording, v) for v in only]

        def rows(sql: str) -> list[sqlite3.Row]:
            return [r for k in keys for r in db.execute(sql.format(where=where), k)]

        viewers = [
            {"id": r["id"], "name": r["name"], "created": r["created"]}
            for r in sorted(
                rows(
                    "SELECT id, name, created FROM viewers WHERE "
                    + ("recording = ?" if only is None else "recording = ? AND id = ?")
                ),
                key=lambda r: (r["created"], r["id"]),
            )
        ]
        # Each report's and answer's wall-clock time beside it (`progress_at`, `quiz_at`): when an
        # assignment was completed is read from them (`recorder/assignments.py`).
        progress: dict[str, list[tuple[int, int]]] = {}
        progress_at: dict[str, list[float]] = {}
        for r in sorted(
            rows("SELECT viewer, from_ms, to_ms, at, rowid FROM progress WHERE {where}"),
            key=lambda r: (r["at"], r["rowid"]),
        ):
            progress.setdefault(r["viewer"], []).append((r["from_ms"], r["to_ms"]))
            progress_at.setdefault(r["viewer"], []).append(r["at"])
        quiz: dict[str, dict[str, list[int]]] = {}
        quiz_at: dict[str, dict[str, float]] = {}
        for r in rows("SELECT viewer, poll, choices, at FROM quiz WHERE {where}"):
            quiz.setdefault(r["viewer"], {})[r["poll"]] = json.loads(r["choices"])
            quiz_at.setdefault(r["viewer"], {})[r["poll"]] = r["at"]
        questions = [
            {"viewer": r["viewer"], "t": r["t"], "text": r["text"], "id": r["id"], "created": r["created"]}
            for r in sorted(
                rows("SELECT id, viewer, t, text, created FROM questions WHERE {where}"),
                key=lambda r: (r["t"], r["created"]),
            )
        ]
        return {
            "viewers": viewers,
            "progress": progress,
            "progress_at": progress_at,
            "quiz": quiz,
            "quiz_at": quiz_at,
            "questions": questions,
        }

    async def report_data(self, recording: str, viewers: list[str] | None = None) -> dict[str, Any]:
        """Everything replay viewers added to a recording, for the engagement report (with
        `viewers`: only what those viewers added)."""
        return await self._run(self._report_data, recording, viewers)

    def _forget(self, recording: str) -> None:
        with self._db:
            for table in ("viewers", "quiz", "questions", "progress"):
                self._db.execute(f"DELETE FROM {table} WHERE recording = ?", (recording,))

    async def forget(self, recording: str) -> None:
        await self._run(self._forget, recording)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._db.close()
