"""The socket.io edge: authenticates connections, joins participants, dispatches commands to the
session core and acknowledges them. Protocol in docs/protocol.md."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import socketio

from recorder.recorder import StorageError

from .auth import Claims, Signer, new_id
from .core import CommandError, clean_name
from .core.limits import PAYLOAD_BYTES, Rate
from .core.ratelimit import TokenBucket
from .fanout import audience_room, personal_room
from .live import LiveSession
from .sessions import Sessions

log = logging.getLogger(__name__)

# A flood guard per connection, on top of the core's per-feature rates.
CONNECTION_RATE = Rate(200, 1_000)


@dataclass
class Connection:
    session: LiveSession
    claims: Claims
    pid: str | None = None
    name: str | None = None
    role: str | None = None
    bucket: TokenBucket = field(default_factory=lambda: TokenBucket(CONNECTION_RATE, _ms()))


def _ms() -> int:
    return int(time.monotonic() * 1000)


def _too_large(data: Any) -> bool:
    try:
        size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
        return size > PAYLOAD_BYTES
    except (TypeError, ValueError):
        return False  # not JSON-shaped: validation will refuse it


class Hub:
    def __init__(self, sio: socketio.AsyncServer, sessions: Sessions, signer: Signer) -> None:
        self.sio = sio
        self.sessions = sessions
        self.signer = signer
        self.connections: dict[str, Connection] = {}
        sio.on("connect", self.on_connect)
        sio.on("disconnect", self.on_disconnect)
        sio.on("join", self.on_join)
        sio.on("*", self.on_command)

    async def on_connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        auth = auth if isinstance(auth, dict) else {}
        try:
            # `session` (optional) is the id in the link's path: a token for another session is
            # refused rather than silently joining that other session.
            claims = self.signer.verify(auth.get("token"), auth.get("session"))
            if claims.role == "replay":
                raise CommandError("forbidden", "a replay link cannot join the live session")
            session = await self.sessions.get(claims.session_id)
            if session is None:
                raise CommandError("not_found", "no such session")
        except CommandError as exc:
            raise socketio.exceptions.ConnectionRefusedError(
                exc.message, {"code": exc.code, "message": exc.message}
            ) from None
        self.connections[sid] = Connection(session, claims)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self.connections.pop(sid, None)
        if conn is not None and conn.pid is not None:
            conn.session.detach(sid, conn.pid)

    async def on_join(self, sid: str, data: Any = None) -> dict[str, Any]:
        conn = self.connections.get(sid)
        if conn is None:
            return CommandError("not_joined", "connect with a token first").as_ack()
        if conn.pid is None:
            # Look the session up again: an ended one may have left memory since connect.
            session = await self.sessions.get(conn.session.id)
            if session is None:
                return CommandError("not_found", "no such session").as_ack()
            conn.session = session
        try:
            return self._join(sid, conn, data if data is not None else {})
        except CommandError as exc:
            return exc.as_ack()

    def _join(self, sid: str, conn: Connection, data: Any) -> dict[str, Any]:
        # No await in here: entering the rooms and taking the snapshot happen atomically with
        # respect to every other command, so nothing falls between the snapshot and the stream.
        if not isinstance(data, dict):
            raise CommandError("invalid_payload", "the payload must be an object")
        unknown = set(data) - {"name", "last_seq", "epoch"}
        if unknown:
            raise CommandError("invalid_payload", f"{sorted(unknown)[0]}: unknown field")
        last_seq = data.get("last_seq")
        if last_seq is not None and (not isinstance(last_seq, int) or isinstance(last_seq, bool)):
            raise CommandError("invalid_payload", "last_seq: must be an integer")
        session, claims = conn.session, conn.claims
        if conn.pid is None:
            if claims.pid is not None:  # a participant token: the same identity again
                pid, name, role = claims.pid, claims.name or "?", claims.role
            else:
                role = claims.role
                if "name" in data:
                    name = clean_name(data["name"])
                elif role == "trainer":
                    name = "Trainer"
                else:
                    raise CommandError("name_required", "name: a learner must give a display name")
                pid = new_id(6)
            conn.pid, conn.name, conn.role = pid, name, role
            # The synchronous form keeps this block free of awaits (see above).
            self.sio.manager.basic_enter_room(sid, "/", audience_room(session.id, role))
            self.sio.manager.basic_enter_room(sid, "/", personal_room(session.id, pid))
            session.attach(sid, pid, name, role)
        pid, name, role = conn.pid, conn.name, conn.role
        reply: dict[str, Any] = {
            "ok": True,
            "you": {"id": pid, "name": name, "role": role},
            "token": self.signer.participant(session.id, role, pid, name),
            "epoch": session.epoch,
        }
        resumable = last_seq is not None and data.get("epoch") == session.epoch
        missed = session.missed(last_seq, role, pid) if resumable else None
        if missed is None:
            reply["snapshot"] = session.snapshot(role, pid)
            reply["seq"] = reply["snapshot"]["seq"]
        else:
            reply["events"] = missed
            reply["seq"] = session.sent_seq
        return reply

    async def on_command(self, name: str, sid: str, *args: Any) -> dict[str, Any]:
        conn = self.connections.get(sid)
        try:
            if conn is None or conn.pid is None:
                raise CommandError("not_joined", "send `join` before any other command")
            if not conn.bucket.take(_ms()):
                raise CommandError("rate_limited", "too many commands; slow down")
            if len(args) > 1:
                raise CommandError("invalid_payload", "send one payload object per command")
            payload = args[0] if args else None
            if _too_large(payload):
                raise CommandError("payload_too_large", f"a command may be at most {PAYLOAD_BYTES} bytes")
            outcome = conn.session.execute(conn.pid, name, payload)
        except CommandError as exc:
            return exc.as_ack()
        except Exception:
            log.exception("command %r failed", name)
            return CommandError("internal_error", "the server failed; nothing changed").as_ack()
        try:
            await conn.session.durable(outcome)
        except StorageError:
            # The change is live (applied and sent) but not yet on disk: say so, so the client
            # does not send it again; the recorder keeps retrying the write.
            return CommandError(
                "storage_failed", "done, but not yet saved to disk; the server keeps trying to save it"
            ).as_ack()
        seq = outcome.events[-1].seq if outcome.events else conn.session.state.seq
        return {"ok": True, "seq": seq, **outcome.reply}
