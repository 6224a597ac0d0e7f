"""The socket.io edge: authenticates connections, joins participants, dispatches commands to the
session core and acknowledges them. Protocol in docs/protocol.md."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import socketio

from classroom import metrics
from classroom.auth import Claims, Signer, new_id
from classroom.core import CommandError, clean_name
from classroom.core.limits import PAYLOAD_BYTES, Rate
from classroom.core.ratelimit import TokenBucket
from classroom.live import LiveSession
from classroom.ports import StorageError
from classroom.sessions import Sessions
from classroom.throttle import LogThrottle

from .fanout import audience_room, personal_room
from .guard import Guard
from .media import COMMANDS as MEDIA_COMMANDS
from .media import MediaRooms
from .media_cluster import ClusterMedia
from .wire import BadPacket

log = logging.getLogger(__name__)
throttled = LogThrottle(log)

FLOOR_COMMANDS = frozenset({"floor.give", "floor.take"})  # may end a learner's tracks

# Draining: seconds between telling every socket to reconnect elsewhere and closing them.
DRAIN_NOTICE_S = 0.25

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
    bad: TokenBucket | None = None  # packets that did not decode (created at the first)
    address: str | None = None  # the peer's address, None where no per-address limit applies
    deadline: asyncio.TimerHandle | None = None  # closes the socket unless it joins in time


def _ms() -> int:
    return int(time.monotonic() * 1000)


def _token_name(name: str | None) -> str:
    """The name in a participant token, cleaned again (a token issued before names were one line
    may carry a line break)."""
    try:
        return clean_name(name)
    except CommandError:
        return "?"


def _check_size(data: Any) -> None:
    """Refuse a payload over PAYLOAD_BYTES as compact JSON. The decoder (`wire.py`) already bounds
    its nesting, and orjson neither recurses in Python nor accepts what JSON cannot carry."""
    try:
        size = len(orjson.dumps(data))
    except orjson.JSONEncodeError:
        raise CommandError("invalid_payload", "the payload is not plain JSON") from None
    if size > PAYLOAD_BYTES:
        raise CommandError("payload_too_large", f"a command may be at most {PAYLOAD_BYTES} bytes")


class Hub:
    def __init__(
        self,
        sio: socketio.AsyncServer,
        sessions: Sessions,
        signer: Signer,
        guard: Guard | None = None,
        media: MediaRooms | ClusterMedia | None = None,
    ) -> None:
        self.sio = sio
        self.sessions = sessions
        self.signer = signer
        self.guard = guard or Guard()
        # The `media.*` commands: signaling/media.py, or signaling/media_cluster.py in cluster mode.
        self.media = media
        self.connections: dict[str, Connection] = {}
        self.draining = False  # SIGTERM: new connections are refused with `draining`
        sio.on("connect", self.on_connect)
        sio.on("disconnect", self.on_disconnect)
        sio.on("join", self.on_join)
        sio.on("*", self.on_command)

    async def on_connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        auth = auth if isinstance(auth, dict) else {}
        try:
            if self.draining:
                raise CommandError("draining", "this server is stopping; connect again to reach another")
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
        address = self.guard.address(environ)
        conn = Connection(session, claims, address=address if self.guard.limited(address) else None)
        conn.deadline = asyncio.get_running_loop().call_later(
            self.guard.join_timeout, lambda: asyncio.ensure_future(self._join_deadline(sid))
        )
        self.connections[sid] = conn

    async def _join_deadline(self, sid: str) -> None:
        conn = self.connections.get(sid)
        if conn is not None and conn.pid is None:
            timeout = self.guard.join_timeout
            await self.close(sid, "join_timeout", f"no `join` within {timeout:g} s of connecting")

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self.connections.pop(sid, None)
        if conn is not None and conn.deadline is not None:
            conn.deadline.cancel()
        if conn is not None and conn.pid is not None:
            conn.session.detach(sid, conn.pid)
            if self.media is not None:
                await self.media.gone(sid, conn.session, conn.pid)

    async def on_join(self, sid: str, *args: Any) -> dict[str, Any]:
        # Any number of arguments: python-socketio passes each one, and a handler that cannot
        # take them raises in a task of its own (no ack, a traceback in the log).
        conn = self.connections.get(sid)
        if conn is None:
            return CommandError("not_joined", "connect with a token first").as_ack()
        if len(args) > 1:
            return CommandError("invalid_payload", "send one payload object per command").as_ack()
        data = args[0] if args else None
        try:
            if conn.pid is None:
                # Look the session up again: an ended one may have left memory since connect, and
                # loading it again may be refused (`storage_full`).
                session = await self.sessions.get(conn.session.id)
                if session is None:
                    raise CommandError("not_found", "no such session")
                conn.session = session
            minting = (
                conn.pid is None
                and conn.claims.pid is None
                and conn.claims.role == "learner"
                and isinstance(data, dict)
                and "name" in data
                and conn.session.state.status != "ended"
            )
            # A new learner: the local bucket, then (cluster mode) the count across the nodes,
            # which needs an await, so it is spent here rather than in `_join`.
            if minting and not await self.guard.may_mint_everywhere(conn.session.id, conn.address):
                raise _too_many_new()
            return self._join(sid, conn, data if data is not None else {}, minted=minting)
        except CommandError as exc:
            return exc.as_ack()

    def _join(self, sid: str, conn: Connection, data: Any, minted: bool = False) -> dict[str, Any]:
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
                pid, name, role = claims.pid, _token_name(claims.name), claims.role
            else:
                role = claims.role
                if role == "learner" and session.state.status == "ended":
                    # Ended means ended: a new learner would only add a participant, and dead air
                    # to the recording. Known identities (participant tokens) still come back.
                    raise CommandError("session_ended", "this class has ended; nobody new can join it")
                if "name" in data:
                    name = clean_name(data["name"])
                elif role == "trainer":
                    name = "Trainer"
                else:
                    raise CommandError("name_required", "name: a learner must give a display name")
                if role == "learner" and not minted and not self.guard.may_mint(session.id, conn.address):
                    raise _too_many_new()
                pid = new_id(6)
            conn.pid, conn.name, conn.role = pid, name, role
            if conn.deadline is not None:
                conn.deadline.cancel()  # joined in time: no task to start at the deadline
                conn.deadline = None
            session.core.place(pid, conn.address)
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
        if self.media is not None:
            # The STUN/TURN servers browsers give their RTCPeerConnections (`--ice-servers`).
            reply["ice_servers"] = self.media.client_ice_servers
        resumable = last_seq is not None and data.get("epoch") == session.epoch
        missed = session.missed(last_seq, role, pid) if resumable else None
        if missed is None:
            reply["snapshot"] = session.snapshot(role, pid)
            reply["seq"] = reply["snapshot"]["seq"]
        else:
            reply["events"] = missed
            reply["seq"] = session.sent_seq
        return reply

    async def on_command(self, name: str | BadPacket, sid: str, *args: Any) -> dict[str, Any]:
        conn = self.connections.get(sid)
        if isinstance(name, BadPacket):
            return await self._bad_packet(sid, conn, name)
        try:
            if conn is None or conn.pid is None:
                raise CommandError("not_joined", "send `join` before any other command")
            if not conn.bucket.take(_ms()):
                raise CommandError("rate_limited", "too many commands; slow down")
            if len(args) > 1:
                raise CommandError("invalid_payload", "send one payload object per command")
            payload = args[0] if args else None
            _check_size(payload)
            if name in MEDIA_COMMANDS and self.media is not None:
                # Cluster mode: `ClusterMedia` runs them on the session's media node.
                reply = await self.media.command(sid, conn.session, conn.pid, name, payload)
                metrics.COMMANDS_OK.inc()
                return {"ok": True, "seq": conn.session.state.seq, **reply}
            if getattr(conn.session, "forwards", False):
                # Cluster mode (classroom/cluster/): the session's owner runs the core and acks.
                return await conn.session.command(conn.pid, name, payload)
            outcome = conn.session.execute(conn.pid, name, payload)
        except CommandError as exc:
            metrics.COMMANDS_ERROR.inc()
            return exc.as_ack()
        except Exception as exc:
            metrics.COMMANDS_ERROR.inc()
            # One line per kind of failure a minute, not one per command: a client that found a
            # way to make a command fail must not be able to flood the log with it.
            cause = f"{type(exc).__name__} in {name if isinstance(name, str) else '?'}"[:100]
            throttled.log(logging.ERROR, cause, "command %r failed", str(name)[:60], exc_info=True)
            return CommandError("internal_error", "the server failed; nothing changed").as_ack()
        try:
            await conn.session.durable(outcome)
        except StorageError:
            # The change is live (applied and sent) but not yet on disk: say so, so the client
            # does not send it again; the recorder keeps retrying the write.
            return CommandError(
                "storage_failed", "done, but not yet saved to disk; the server keeps trying to save it"
            ).as_ack()
        if name in FLOOR_COMMANDS and outcome.events and self.media is not None:
            await self.media.floor_changed(conn.session, outcome.events)
        seq = outcome.events[-1].seq if outcome.events else conn.session.state.seq
        metrics.COMMANDS_OK.inc()
        return {"ok": True, "seq": seq, **outcome.reply}

    async def _bad_packet(self, sid: str, conn: Connection | None, bad: BadPacket) -> dict[str, Any]:
        """A packet that did not decode: answered (if it asked for an ack). Garbage (not JSON, not
        a Socket.IO event) is counted, and a client that keeps sending it is disconnected, with one
        log line a minute for all of them; well-formed JSON over a limit of ours (nesting) is only
        refused, and spends a token of the flood guard like any command."""
        error = CommandError("invalid_payload", bad.reason)
        if conn is None:
            return error.as_ack()
        if not bad.garbage:
            if not conn.bucket.take(_ms()):
                return CommandError("rate_limited", "too many commands; slow down").as_ack()
            return error.as_ack()
        if self.guard.bad_packets is None:
            return error.as_ack()
        if conn.bad is None:
            conn.bad = TokenBucket(self.guard.bad_packets, _ms())
        if not conn.bad.take(_ms()):
            throttled.log(logging.WARNING, "bad packets", "closed a connection that kept sending bad packets")
            await self.close(sid, "bad_packets", "too many packets that do not decode; check the client")
        return error.as_ack()

    async def disconnect_session(self, session_id: str) -> None:
        """Close the sockets still connected to a session (one being deleted), and let each
        leave at once, whatever its socket's state (`classroom.ports.Edge`)."""
        for sid, conn in list(self.connections.items()):
            if conn.session.id == session_id:
                await self.sio.disconnect(sid)
                await self.on_disconnect(sid)

    def refuse_new(self) -> None:
        """Draining: new connections are refused with `draining` from now on."""
        self.draining = True

    async def drain(self, message: str) -> int:
        """Draining (SIGTERM): refuse new connections, and tell every socket to reconnect
        elsewhere (`closing` {code: "draining"}), then close their connections. Every notice goes
        out first, and the connections close DRAIN_NOTICE_S later: a client handles the event
        before it sees its connection end (python-socketio dispatches events in tasks of their
        own). Their `participant.left` follow as the disconnects come in. Returns how many."""
        self.draining = True
        sids = list(self.connections)
        notice = {"code": "draining", "message": message}
        for sid in sids:
            try:
                await self.sio.emit("closing", notice, to=sid)
            except Exception:  # one broken socket must not keep the others from hearing
                log.debug("could not tell %s to reconnect", sid, exc_info=True)
        if sids:
            await asyncio.sleep(DRAIN_NOTICE_S)
        for sid in sids:
            eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
            if eio_sid is not None:
                try:
                    await self.sio.eio.disconnect(eio_sid)
                except Exception:
                    log.debug("could not close %s", sid, exc_info=True)
        return len(sids)

    async def close(self, sid: str, code: str, message: str) -> None:
        """Close a socket's whole connection (not only its socket.io namespace: that would keep the
        file descriptor), telling it why first with a `closing` event {code, message}."""
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        try:
            await self.sio.emit("closing", {"code": code, "message": message}, to=sid)
        finally:
            if eio_sid is not None:
                await self.sio.eio.disconnect(eio_sid)


def _too_many_new() -> CommandError:
    return CommandError(
        "rate_limited", "too many new participants from this link or address; try again shortly"
    )
