"""Live media in cluster mode (`--redis-url`): one node runs a session's media, the others forward.

A session's media (its `Media`, an SFU: publishers' and viewers' RTCPeerConnections, the key frame
cache, the recording's feed) runs on the node that **owns the session** (holds its lease,
`classroom/cluster/owner.py`): the node whose `LiveSession` decides the floor, tells the stream which
tracks are live (`media.tracks`) and writes the session's log, so the media's recording lands beside
it. This module wraps the embedded `MediaRooms` for that:

- **Commands**: a socket's `media.*` command runs at once when this node owns the session; from
  any other node it goes to the owner over its inbox (op `media`, with the socket named
  `<node>|<sid>` there), where it is answered as forwarded commands are
  (`ClusterSessions.answer`: in arrival order, `not_owner` if the node does not own the session),
  and the owner's ack comes back. The client then connects its
  RTCPeerConnection over UDP straight to the owner: the owner's SDP carries the owner's ICE
  candidates, so every node's UDP ports must be reachable from clients (or `--ice-servers` name a
  TURN server every node uses).
- **Directed signaling** (the owner's re-offers, `media.offer`) goes to the node holding the socket
  (op `media.emit` in that node's inbox), which emits it to its socket.
- **Which tracks are live** is the stream's `media.tracks`, told by the owner's `LiveSession`:
  every node's sockets see it like any event.
- **Disconnects**: a socket's node tells the media node (op `media.gone`); the media node drops
  the sockets of nodes that died (their heartbeat key lapsed).
- **Failover**: a node that stops owning the session (drain, a lost lease) closes its media; a
  node that sees the session's owner change tells its sockets that used the media
  (`media.reset`): they view and publish again, now on the new owner, whose takeover already told
  the stream that no track is live (`LiveSession.rebuild`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from classroom.cluster import ClusterSessions, Owned
from classroom.core import CommandError
from classroom.tasks import cancel, next_tick

from .media import MediaRooms

log = logging.getLogger(__name__)

SEP = "|"  # a socket on the media node: "<node id>|<socket id>"
MEDIA_RPC_TIMEOUT = 15.0  # an offer's answer waits for the media node's ICE gathering
WATCH_S = 0.5  # how often rooms and sockets are checked against the sessions' owners
ALIVE_EVERY = 4  # rounds between checks that the nodes of remote media sockets are alive
FLOOR_COMMANDS = frozenset({"floor.give", "floor.take"})
RESET = {
    "code": "media_moved",
    "message": "The session's media moved to another server: view and publish again.",
}


def gsid(node: str, sid: str) -> str:
    return f"{node}{SEP}{sid}"


def split(global_sid: str) -> tuple[str, str]:
    node, _, sid = global_sid.partition(SEP)
    return node, sid


class _Router:
    """What `MediaRooms` takes for `sio`: its emits to `<node>|<sid>` reach that node's socket."""

    def __init__(self, owner: ClusterMedia) -> None:
        self._owner = owner

    async def emit(self, event: str, data: Any, to: str) -> None:
        self._owner.emit(to, event, data)


class ClusterMedia:
    """The hub's media in cluster mode: the interface of `MediaRooms` (`command`, `gone`,
    `floor_changed`, `client_ice_servers`, `close`), each socket's media served by the node that
    owns its session."""

    def __init__(
        self,
        sio: Any,
        sessions: ClusterSessions,
        make_rooms: Callable[[Any], MediaRooms],
    ) -> None:
        self.sio = sio
        self.sessions = sessions
        self.node = sessions.node
        self.rooms = make_rooms(_Router(self))  # the sessions whose media runs here
        # This node's sockets that asked a media node for something: sid -> (session, media node).
        self.used: dict[str, tuple[str, str]] = {}
        self._emits: asyncio.Queue[tuple[str, str, Any]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[Any]] = set()
        self._forward = sessions.node.on_request
        sessions.node.on_request = self._on_request
        sessions.after_command.append(self._after_command)

    @property
    def client_ice_servers(self) -> list[dict[str, str]]:
        return self.rooms.client_ice_servers

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._emits = asyncio.Queue()
        self._tasks = [loop.create_task(self._emitter()), loop.create_task(self._watch())]

    async def close(self) -> None:
        for task in self._tasks:
            await cancel(task)
        self._tasks = []
        await self.rooms.close()

    # -- the hub's side ---------------------------------------------------------------------------

    async def command(self, sid: str, session: Any, pid: str, name: str, payload: Any) -> dict[str, Any]:
        """Run a socket's `media.*` command on the session's media node; the ack's extra fields,
        or CommandError."""
        failure = CommandError(
            "temporarily_unavailable", "the session's media node cannot be reached right now"
        )
        for attempt in range(3):
            if attempt:
                await asyncio.sleep(0.2 * attempt)
            # From Redis, not the replica's view (up to `WATCH_S` old): a dead owner's requests
            # would wait for their timeout.
            owner = await self._owner_of(session.id)
            if owner == self.node.id:
                owned = self.sessions.owned.get(session.id)
                if owned is not None and owned.usable:
                    self.used[sid] = (session.id, owner)
                    return await self.rooms.command(gsid(owner, sid), owned.live, pid, name, payload)
            elif owner is not None:
                self.used[sid] = (session.id, owner)
                msg = {"op": "media", "s": session.id, "a": [gsid(self.node.id, sid), pid, name, payload]}
                try:
                    reply = await self.node.request(owner, msg, timeout=MEDIA_RPC_TIMEOUT)
                except CommandError as exc:
                    # The node died or handed the session over: ask its new owner. Not when it
                    # only answered late (the command may have run there).
                    if exc.code != "temporarily_unavailable" or await self._owner_of(session.id) == owner:
                        raise
                    failure = exc
                    continue
                ack = reply.get("ack")
                if ack is not None:
                    if not ack.get("ok"):
                        error = ack.get("error") or {}
                        raise CommandError(error.get("code", "media_failed"), error.get("message", ""))
                    return {k: v for k, v in ack.items() if k not in ("ok", "seq")}
        raise failure

    async def _owner_of(self, session_id: str) -> str | None:
        try:
            return await self.sessions.owner_of(session_id)
        except Exception as exc:  # Redis away
            log.debug("media: no owner for %s (%s)", session_id, exc)
            return None

    async def gone(self, sid: str, session: Any, pid: str | None) -> None:
        """A socket of this node disconnected: its media ends on its media node."""
        used = self.used.pop(sid, None)
        if used is None:
            return
        session_id, node = used
        if node == self.node.id:
            await self.rooms.gone(gsid(node, sid), session, pid)
        else:
            self.node.send(
                node, {"k": "req", "op": "media.gone", "s": session_id, "a": [gsid(self.node.id, sid), pid]}
            )

    async def floor_changed(self, session: Any, events: list[Any]) -> None:
        """Not called in cluster mode (floor commands run on the owner: `_after_command`)."""

    async def _after_command(self, live: Any, name: str, events: list[Any]) -> None:
        """The owner ran a command: after `floor.take` / `floor.give`, a learner's tracks the
        floor no longer covers end (as the hub does for an embedded session)."""
        if name in FLOOR_COMMANDS and events:
            await self.rooms.floor_changed(live, events)

    # -- directed signaling -----------------------------------------------------------------------

    def emit(self, to: str, event: str, data: Any) -> None:
        """An event for one socket, anywhere in the cluster (`<node>|<sid>`), sent in order."""
        node, sid = split(to)
        if node == self.node.id:
            self._emit_local(sid, event, data)
        else:
            self.node.send(node, {"k": "req", "op": "media.emit", "a": [sid, event, data]})

    def _emit_local(self, sid: str, event: str, data: Any) -> None:
        if event == "media.reset":
            self.used.pop(sid, None)
        if self._emits is not None:
            self._emits.put_nowait((sid, event, data))

    async def _emitter(self) -> None:
        assert self._emits is not None
        while True:
            sid, event, data = await self._emits.get()
            try:
                await self.sio.emit(event, data, to=sid)
            except Exception:
                log.debug("media: could not tell %s", sid, exc_info=True)

    # -- the media node's side --------------------------------------------------------------------

    def _on_request(self, msg: dict[str, Any]) -> None:
        op = msg.get("op")
        if op == "media":
            target, pid, name, payload = msg["a"]

            async def run(owned: Owned) -> dict[str, Any]:
                return {"ok": True, **await self.rooms.command(target, owned.live, pid, name, payload)}

            self.sessions.answer(msg, run, f"forwarded media command {str(name)[:60]!r}")
        elif op == "media.gone":
            owned = self.sessions.owned.get(msg.get("s", ""))
            target, pid = msg["a"]
            if owned is not None:
                self._spawn(self.rooms.gone(target, owned.live, pid))
        elif op == "media.emit":
            sid, event, data = msg["a"]
            self._emit_local(sid, event, data)
        else:
            self._forward(msg)

    # -- failover ---------------------------------------------------------------------------------

    async def _watch(self) -> None:
        rounds = 0
        while True:
            await next_tick(WATCH_S)  # with the beat and the other timers: one wake-up
            rounds += 1
            try:
                await self._check_rooms()
                await self._check_sockets()
                if rounds % ALIVE_EVERY == 0:
                    await self._forget_dead_nodes()
            except Exception:
                log.exception("media: checking the media nodes failed")

    async def _check_rooms(self) -> None:
        """Rooms of sessions this node no longer owns close, and their sockets hear of it."""
        for session_id, room in list(self.rooms.rooms.items()):
            owned = self.sessions.owned.get(session_id)
            if owned is not None and owned.live is room.session and not owned.abdicated:
                continue
            targets = set(room.viewers) | set(room.publishers.values())
            log.info("session %s: its media stops here (%d connections)", session_id, len(targets))
            await self.rooms.close_room(session_id)
            for target in targets:
                self.emit(target, "media.reset", RESET)

    async def _check_sockets(self) -> None:
        """This node's sockets whose media node is no longer the session's owner (it died, or
        handed the session over) are told to view and publish again."""
        moved: dict[str, str | None] = {}  # session -> its owner now, from Redis
        for sid, (session_id, node) in list(self.used.items()):
            replica = self.sessions.live.get(session_id)
            owner = replica.owner if replica is not None else None
            if owner is None or owner == node:
                continue
            if session_id not in moved:  # the replica's view may lag: Redis says
                moved[session_id] = await self._owner_of(session_id)
            now = moved[session_id]
            if now is not None and now != node and self.used.get(sid) == (session_id, node):
                self._emit_local(sid, "media.reset", RESET)

    async def _forget_dead_nodes(self) -> None:
        """The media connections of sockets on nodes that died end."""
        nodes = {
            split(target)[0]
            for room in self.rooms.rooms.values()
            for target in (*room.viewers, *room.publishers.values())
        } - {self.node.id}
        if not nodes:
            return
        alive = await self.node.alive(sorted(nodes))
        dead = {n for n, up in alive.items() if not up}
        for room in list(self.rooms.rooms.values()):
            by_target = {target: pid for pid, target in room.publishers.items()}
            for target in {*room.viewers, *by_target}:
                if split(target)[0] in dead:
                    await self.rooms.gone(target, room.session, by_target.get(target))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
