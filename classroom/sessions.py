"""The sessions this process serves: created, loaded on first use, ended when idle."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from .auth import new_id
from .core import SessionState
from .live import CROWD_LEARNERS, LiveSession
from .ports import EventLog, Fanout, Recovered, StorageError
from .store import SessionInfo, SessionStore, storage_full

log = logging.getLogger(__name__)

EVICT_AFTER = 60.0  # seconds an ended, empty session stays in memory
SAVE_GRACE = 5.0  # seconds a stop keeps retrying to save what is not yet on disk


class Sessions:
    def __init__(
        self,
        store: SessionStore,
        fanout: Fanout,
        recorder: EventLog,
        idle_timeout: float,
        crowd: int = CROWD_LEARNERS,
    ) -> None:
        self.store = store
        self.crowd = crowd  # learners online above which a session is large (`live.py`)
        self.recorder = recorder
        self.fanout = fanout
        self.idle_timeout = idle_timeout
        self.live: dict[str, LiveSession] = {}
        self._loading: dict[str, asyncio.Future[LiveSession | None]] = {}
        self._reaper: asyncio.Task[None] | None = None
        # Called with a session's id when it ends (its `session.ended` is queued for the log).
        self.on_ended: list[Callable[[str], None]] = []

    async def create(self, title: str, recording: bool = True, anonymize: bool = False) -> SessionInfo:
        return await self.store.create(new_id(), title, recording, anonymize)

    async def get(self, session_id: str) -> LiveSession | None:
        """The served session, loading it from the store on first use."""
        session = self.live.get(session_id)
        if session is not None:
            return session
        pending = self._loading.get(session_id)
        if pending is not None:
            return await pending
        future: asyncio.Future[LiveSession | None] = asyncio.get_running_loop().create_future()
        self._loading[session_id] = future
        try:
            info = await self.store.get(session_id)
            session = None
            if info is not None and not info.recording and info.status == "ended":
                # Its log went with its end (it was never to be recorded): it stays ended.
                state = SessionState(info.id, info.title, status="ended", recording="off")
                session = LiveSession(
                    info, self.fanout, self.store.set_status, None, Recovered(state), self.crowd
                )
                self.live[session_id] = session
            elif info is not None:
                try:
                    recovered = await self.recorder.open(
                        info.id, info.title, "on" if info.recording else "off", info.anonymize
                    )
                except OSError as exc:  # full, read-only: a coded refusal, and it is tried again
                    log.error("session %s: cannot open its log (%s)", info.id, exc)
                    raise storage_full() from None
                if recovered.repaired:
                    log.warning("session %s: its log had a torn tail (%s)", info.id, recovered.repaired)
                session = LiveSession(
                    info, self.fanout, self.store.set_status, self.recorder, recovered, self.crowd
                )
                session.on_ended = self.on_ended
                self.live[session_id] = session
                session.rebuild()
                if session.state.status != info.status and session.state.status in ("live", "ended"):
                    # The log is the truth: a status write lost to a full disk or a crash is redone.
                    log.warning(
                        "session %s: stored as %s, its log says %s",
                        info.id,
                        info.status,
                        session.state.status,
                    )
                    info.status = session.state.status
                    await self.store.set_status(info.id, session.state.status)
            future.set_result(session)
            return session
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # those waiting get it raised; nobody waiting is no error
            raise
        finally:
            del self._loading[session_id]

    async def forget(self, session_id: str) -> None:
        """Drop a session for good: its live state, its open log, its metadata."""
        session = self.live.pop(session_id, None)
        if session is not None:
            await session.drain()
            await session.close()
        await self.recorder.close_session(session_id)
        await self.store.delete(session_id)

    def start(self) -> None:
        self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        """End live sessions left empty for longer than the idle timeout, and let go of ended
        sessions nobody is connected to (they load again from their log if asked for)."""
        while True:
            await asyncio.sleep(max(0.05, min(5.0, self.idle_timeout / 4)))
            now = time.monotonic()
            for session in list(self.live.values()):
                empty = session.empty_since
                if not empty:
                    continue
                if session.state.status == "live" and now - empty >= self.idle_timeout:
                    log.info("session %s ended after %.0fs without participants", session.id, now - empty)
                    session.end("idle")
                elif session.state.status == "ended" and now - empty >= EVICT_AFTER:
                    await self._evict(session)

    async def _evict(self, session: LiveSession) -> None:
        if self.live.get(session.id) is not session or session.connections:
            return
        del self.live[session.id]
        await session.drain()
        await session.close()
        if session.state.recording != "off":
            await self.recorder.close_session(session.id)

    async def close(self, grace: float = SAVE_GRACE) -> bool:
        """Stop: flush and close every log; True when everything reached the disk. When the disk
        refuses (full, read-only), keep retrying for `grace` seconds, then give up and say in one
        line which events of which sessions could not be saved."""
        if self._reaper is not None:
            self._reaper.cancel()
        for session in self.live.values():
            await session.drain()
            await session.close()
        logged = {sid: s.state.seq for sid, s in self.live.items() if self.recorder.is_open(sid)}

        async def flush_and_close() -> None:
            for sid, seq in logged.items():  # including batches already on their way to the disk
                await self.recorder.durable(sid, seq)
            await self.recorder.close()

        error: BaseException | None = None
        deadline = time.monotonic() + grace
        while True:
            try:
                await asyncio.wait_for(flush_and_close(), max(0.01, deadline - time.monotonic()))
                error = None  # saved after all (space came back during the grace)
                break
            except (StorageError, OSError, TimeoutError) as exc:  # the disk, not a bug
                error = exc.__cause__ or exc
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.5)  # the recorder retries its writes meanwhile
        # Judged from what the recorder reports durable, whatever close() said.
        durable = self.recorder.durable_seq
        unsaved = {
            sid: (durable.get(sid, 0) + 1, seq) for sid, seq in logged.items() if seq > durable.get(sid, 0)
        }
        if unsaved or error is not None:
            why = "the disk did not answer" if isinstance(error, TimeoutError) else str(error or "unknown")
            log.error(
                "stopping with events that could not be saved (%s): %s",
                why,
                ", ".join(f"session {sid} seq {a}-{b}" for sid, (a, b) in unsaved.items()) or "none known",
            )
            return False
        return True
