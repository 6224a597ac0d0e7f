"""Pushing a session's xAPI statements (`xapi.py`) to a Learning Record Store, in the background.

`LrsPusher.notify(session)` only notes the session (in memory and, off the loop, in a small
SQLite file) and wakes one background task; nothing a session or a request does ever waits for
the LRS. The task builds the session's statements (in the recording's reader thread), leaves out
those the LRS already accepted, and POSTs the rest to `{lrs_url}/statements` in batches, with
the `X-Experience-API-Version` header and HTTP basic auth. An LRS that cannot be reached, or
answers 5xx, 401, 403, 408 or 429, is tried again with exponential backoff (1 s doubling to 60 s);
the session stays noted until everything went.

No duplicates, two ways: the file records every statement id the LRS accepted and every session
still to push, so a restart resumes where it stopped and sends nothing twice; and statement ids
are deterministic (uuid5) with deterministic content, so a statement sent again anyway (accepted
by the LRS but not yet recorded here when the process died) is one the LRS already has, which it
answers without storing it again (xAPI 1.0.3: same id, equivalent statement). A statement the
LRS refuses (400, or 409 for an id it holds with other content) is logged and not retried.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import math
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from .xapi import VERSION

log = logging.getLogger(__name__)

BATCH = 100  # statements per POST
RETRY_FIRST = 1.0  # seconds before the first retry, doubled each time up to RETRY_MAX
RETRY_MAX = 60.0
PROGRESS_EVERY = 60.0  # seconds: replay progress is pushed at most this often per session
NOT_ENDED_TRIES = 80  # after a session ended, how often its end is looked for in the recording
RETRIED = frozenset({401, 403, 408, 425, 429})  # besides 5xx: the LRS or its config may recover

# Builds a session's statements and says whether it ended (`api.build_statements`).
Build = Callable[[str], Awaitable[tuple[list[dict[str, Any]], bool]]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (session TEXT PRIMARY KEY, final INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS sent (
    session TEXT NOT NULL, id TEXT NOT NULL, status INTEGER NOT NULL, PRIMARY KEY (session, id)
);
"""


class Retry(Exception):  # noqa: N818 (a signal, not an error)
    """The LRS could not take the statements now: try again later."""


class LrsPusher:
    def __init__(
        self,
        url: str,
        user: str | None,
        password: str | None,
        db_path: Path,
        build: Build,
        *,
        settle: float = 2.0,
        progress_every: float = PROGRESS_EVERY,
        timeout: float = 15.0,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
    ) -> None:
        url = url.rstrip("/")
        self.endpoint = url if url.endswith("/statements") else url + "/statements"
        self.headers = {"Content-Type": "application/json", "X-Experience-API-Version": VERSION}
        if user:  # HTTP basic auth (RFC 7617), written out: aiohttp's helpers differ across 3.x
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.build = build
        self.settle = settle  # seconds to wait after a notice, so a burst makes one push
        self.progress_every = progress_every
        self.timeout = timeout
        self.retry_first, self.retry_max = retry_first, retry_max
        db_path.parent.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lrs")
        self._db = sqlite3.connect(db_path, check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._due: dict[str, float] = {}  # session -> when to push it (loop time)
        self._final: set[str] = set()  # sessions whose end is to be waited for
        self._tries: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self.pushed = 0  # statements the LRS accepted since start (tests, logs)
        self.failures = 0  # pushes to be tried again since start
        self.failed = asyncio.Event()  # set at each of them (tests)
        self.idle = asyncio.Event()  # set while nothing is due (tests)
        self.idle.set()

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # -- what the server calls ------------------------------------------------------------------

    async def start(self) -> None:
        """Resume what a previous run left to push, then wait for notices."""
        rows = await self._run(lambda: self._db.execute("SELECT session, final FROM pending").fetchall())
        now = asyncio.get_running_loop().time()
        for session, final in rows:
            self._due[session] = now
            if final:
                self._final.add(session)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self._task = asyncio.create_task(self._loop())
        if self._due:
            self.idle.clear()

    def notify(self, session_id: str, final: bool = False, progress: bool = False) -> None:
        """The session's statements may have changed: `final`, it has just ended; `progress`, a
        replay viewer reported what they played (pushed within `progress_every` s, so a viewer's
        reports every few seconds make one statement a minute, not one each). Never waits."""
        loop = asyncio.get_running_loop()
        when = loop.time() + (self.progress_every if progress else self.settle)
        self._due[session_id] = min(self._due.get(session_id, when), when)
        if final:
            self._final.add(session_id)
        self.idle.clear()
        self._wake.set()
        task = loop.create_task(self._run(self._note, session_id, final))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        self._pool.shutdown(wait=True)
        self._db.close()

    # -- the background task --------------------------------------------------------------------

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        delay, resume_at = self.retry_first, 0.0
        while True:
            if not self._due:
                self.idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            session_id, when = min(self._due.items(), key=lambda item: item[1])
            when = max(when, resume_at)  # after a failure, nothing before the backoff is over
            if when > loop.time():  # until it is due, or a notice comes
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), when - loop.time())
                continue
            del self._due[session_id]
            final = session_id in self._final
            try:
                done = await self._push(session_id, final)
            except Retry as exc:
                resume_at = loop.time() + delay
                self._due.setdefault(session_id, resume_at)
                self.failures += 1
                self.failed.set()
                log.warning("LRS: %s; trying again in %.0f s", exc, delay)
                delay = min(delay * 2, self.retry_max)
                continue
            except Exception:
                log.exception("LRS: the statements of %s could not be built; left out", session_id)
                done = True
            delay, resume_at = self.retry_first, 0.0
            if done:
                self._final.discard(session_id)
                self._tries.pop(session_id, None)
                if session_id not in self._due:
                    await self._run(self._done, session_id)
                continue
            # Ended, but the end is not in the recording yet (the log is written in a thread):
            # look again soon, a bounded number of times.
            tries = self._tries[session_id] = self._tries.get(session_id, 0) + 1
            if tries >= NOT_ENDED_TRIES:
                log.warning("LRS: %s ended but its recording does not say so; pushed as it is", session_id)
                self._tries.pop(session_id, None)
                self._final.discard(session_id)
            self._due[session_id] = min(self._due.get(session_id, math.inf), loop.time() + 0.25)

    async def _push(self, session_id: str, final: bool) -> bool:
        """Send what the LRS does not have yet; False if the session's end is not recorded yet."""
        from .replay import RecordingError

        try:
            statements, ended = await self.build(session_id)
        except RecordingError as exc:
            log.warning("LRS: no statements for %s (%s)", session_id, exc)
            return True
        if final and not ended:
            return False
        sent = await self._run(self._sent, session_id)
        todo = [s for s in statements if s["id"] not in sent]
        for i in range(0, len(todo), BATCH):
            batch = todo[i : i + BATCH]
            status, body = await self._post(batch)
            if status in (200, 204):
                await self._accepted(session_id, batch, status)
                continue
            # One bad statement refuses the whole batch: find it, send the others.
            log.warning("LRS refused a batch of %s (%s: %s); sending one by one", session_id, status, body)
            for statement in batch:
                one, body = await self._post([statement])
                if one not in (200, 204):
                    log.warning("LRS refused statement %s (%s: %s)", statement["id"], one, body)
                await self._accepted(session_id, [statement], one)
        return True

    async def _post(self, statements: list[dict[str, Any]]) -> tuple[int, str]:
        """POST statements; the status if the LRS decided (2xx, 400, 409...), else `Retry`."""
        assert self._http is not None
        try:
            async with self._http.post(
                self.endpoint,
                data=orjson.dumps(statements),
                headers=self.headers,
            ) as resp:
                body = (await resp.text())[:300]
                if resp.status >= 500 or resp.status in RETRIED:
                    raise Retry(f"{self.endpoint} answered {resp.status}: {body}")
                return resp.status, body
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise Retry(f"{self.endpoint} unreachable ({type(exc).__name__}: {exc})") from None

    async def _accepted(self, session_id: str, batch: list[dict[str, Any]], status: int) -> None:
        if status in (200, 204):
            self.pushed += len(batch)
        await self._run(self._record, session_id, [s["id"] for s in batch], status)

    # -- the file (in the pool's thread) --------------------------------------------------------

    def _note(self, session_id: str, final: bool) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO pending VALUES (?, ?) ON CONFLICT (session) DO UPDATE"
                " SET final = MAX(final, excluded.final)",
                (session_id, int(final)),
            )

    def _done(self, session_id: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM pending WHERE session = ?", (session_id,))

    def _sent(self, session_id: str) -> set[str]:
        rows = self._db.execute("SELECT id FROM sent WHERE session = ?", (session_id,)).fetchall()
        return {r[0] for r in rows}

    def _record(self, session_id: str, ids: list[str], status: int) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO sent VALUES (?, ?, ?)", [(session_id, i, status) for i in ids]
            )

    def sent_ids(self, session_id: str) -> set[str]:
        """The ids the LRS took or refused for good (tests; read in the caller's thread)."""
        return self._sent(session_id)
