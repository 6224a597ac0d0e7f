"""The composition root: assembles the server from its packages (the classroom's registry and
HTTP API, `signaling`'s real-time edge, `recorder`'s log and replay) and stops it gracefully. With
`__main__.py`, the only module of `classroom/` that may import `signaling` or `recorder`."""

from __future__ import annotations

import functools
import logging
from typing import Any

import engineio.base_server
import socketio
from aiohttp import web

from recorder.api import (
    ASSIGNMENTS,
    LIBRARY,
    REPLAY_STORE,
    XAPI_BASE,
    XAPI_CHANGED,
    XAPI_EXTRAS,
    build_statements,
    setup_replay_routes,
)
from recorder.assignment_api import xapi_extras
from recorder.assignments import AssignmentStore
from recorder.interactive import ReplayStore
from recorder.library import Library
from recorder.lrs import LrsPusher
from recorder.mediafeed import MediaFeeds
from recorder.recorder import Recorder
from signaling.fanout import FrameFanout
from signaling.guard import BAD_PACKETS, JOINS_PER_LINK, Guard, raise_nofile, rate_setting
from signaling.hub import Hub
from signaling.media import MediaRooms
from signaling.media_cluster import ClusterMedia
from signaling.sendmany import RoomsManager
from signaling.websocket import Transports
from signaling.wire import JsonPacket

from . import metrics
from .api import setup_routes
from .auth import Signer
from .cluster import ClusterSessions, RedisStore
from .cluster.limits import EdgeLimits
from .config import Settings
from .heap import HeapTrimmer, LongLived
from .http import ServerLog, json_errors, security_headers
from .keys import ADMIN_KEY, HUB, PUBLIC_URL, SESSIONS, SIGNER
from .operate import setup_operations
from .pages import html_errors, setup_pages
from .sessions import Sessions
from .store import SessionStore

log = logging.getLogger(__name__)

# How the last stop went: {"saved": False} when events could not be saved (`serve` exits 3 then).
STOPPED = web.AppKey("stopped", dict)
# Cluster mode's registry (None when embedded): `ready()` and `release_all()` for readiness and drain.
CLUSTER = web.AppKey("cluster", object)
LRS = web.AppKey("lrs", LrsPusher)  # when --lrs-url is given
CLOSING = {
    "code": "server_closing",
    "message": "The server is restarting. You will be reconnected in a moment.",
}

# Engine.IO drops a connection that sends more than this in one message; below it, a command over
# PAYLOAD_BYTES gets a clean `payload_too_large` ack instead.
MAX_MESSAGE_BYTES = 1_000_000


def allowed_origins(extra: list[str]) -> Any:
    """What socket.io accepts as a browser's Origin: the server's own origin (as python-engineio
    computes it when given None) plus the configured extra origins. A plain list would replace
    the own origin, and the bundled pages could no longer connect."""
    if not extra:
        return None
    if "*" in extra:
        return "*"
    extras = frozenset(extra)

    def allowed(origin: str | None, environ: dict[str, Any]) -> bool:
        if origin is None or origin in extras:
            return True
        own = _OWN_ORIGIN._cors_allowed_origins(environ)
        return origin in own

    return allowed


class _OwnOrigin(engineio.base_server.BaseServer):
    """Only for its same-origin rule (cors_allowed_origins=None), reused as is."""

    def __init__(self) -> None:
        self.cors_allowed_origins = None


_OWN_ORIGIN = _OwnOrigin()


def build_app(settings: Settings) -> web.Application:
    """The whole server as an aiohttp application (keys resolved from the data directory)."""
    settings.resolve_keys()
    assert settings.secret and settings.admin_key
    raise_nofile()  # before the guard reads the limit (Transports below)
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        serializer=JsonPacket,
        # Tells the fan-out when a room changes (its lists for the native write, signaling/sendmany.py).
        client_manager=RoomsManager(),
        cors_allowed_origins=allowed_origins(settings.cors_origins),
        max_http_buffer_size=MAX_MESSAGE_BYTES,
        ping_interval=10,
        ping_timeout=10,
    )
    app = web.Application(
        middlewares=[security_headers, html_errors, json_errors],
        client_max_size=256 * 1024,
        # Whatever runs the app (run_app, an AppRunner): aiohttp's own error lines, throttled.
        handler_args={"logger": ServerLog(logging.getLogger("aiohttp.server"))},
    )
    sio.attach(app)
    heap = HeapTrimmer()
    long_lived = LongLived()
    transports = Transports(
        heap,
        Guard(
            bad_packets=rate_setting(settings.bad_packets, BAD_PACKETS.per_ms),
            joins_per_link=rate_setting(settings.joins_per_link, JOINS_PER_LINK.per_ms),
        ),
    )
    transports.install(sio)
    recordings = settings.data_dir / "recordings"
    recorder = Recorder(recordings)
    library = Library(recordings, recorder.is_open)
    replay_store = ReplayStore(settings.data_dir / "replay.db")
    sessions: Sessions | ClusterSessions
    if settings.redis_url:
        # Cluster mode: sessions shared through Redis (classroom/cluster/), media on each
        # session's owner (signaling/media_cluster.py).
        sessions = ClusterSessions(
            settings.redis_url,
            FrameFanout(sio, transports),
            recorder,
            settings.idle_timeout,
            settings.crowd_size,
        )
        store: SessionStore | RedisStore = sessions.store
        # The edge's budgets per address and per link counted across the nodes (issue 11).
        transports.guard.shared = EdgeLimits(sessions.node)
    else:
        store = SessionStore(settings.data_dir)
        sessions = Sessions(
            store, FrameFanout(sio, transports), recorder, settings.idle_timeout, settings.crowd_size
        )
    app[CLUSTER] = sessions if isinstance(sessions, ClusterSessions) else None
    signer = Signer(settings.secret, settings.link_ttl, settings.participant_ttl)
    app[SESSIONS] = sessions
    app[SIGNER] = signer
    app[ADMIN_KEY] = settings.admin_key
    app[PUBLIC_URL] = (settings.public_url or "").rstrip("/")
    feeds = MediaFeeds(recordings)
    media: MediaRooms | ClusterMedia
    if isinstance(sessions, ClusterSessions):
        # A session's media runs on the node that owns it; other nodes forward to it.
        media = ClusterMedia(sio, sessions, lambda router: MediaRooms(router, settings.ice_servers, feeds))
    else:
        media = MediaRooms(sio, settings.ice_servers, feeds)
    hub = Hub(sio, sessions, signer, transports.guard, media)
    app[HUB] = hub
    app[LIBRARY] = library
    app[REPLAY_STORE] = replay_store
    app[XAPI_BASE] = settings.base_url
    # Assignees' e-mails and completions in the session's xAPI statements.
    app[XAPI_EXTRAS] = functools.partial(xapi_extras, app)
    lrs: LrsPusher | None = None
    if settings.lrs_url:
        lrs = LrsPusher(
            settings.lrs_url,
            settings.lrs_user,
            settings.lrs_password,
            settings.data_dir / "lrs.db",
            lambda session_id: build_statements(app, session_id),
        )
        app[LRS] = lrs
        app[XAPI_CHANGED] = lrs.notify
        sessions.on_ended.append(lambda session_id: lrs.notify(session_id, final=True))
    app[ASSIGNMENTS] = AssignmentStore(settings.data_dir / "assignments")
    setup_routes(app)
    setup_replay_routes(app)
    setup_pages(app)
    # Operating (issue 11): /readyz, /metrics, draining on SIGTERM (`operate.py`, `__main__.py`).
    node = setup_operations(app)
    node.tell_clients = hub.drain
    node.refuse_new = hub.refuse_new
    node.connections = lambda: len(hub.connections)
    if isinstance(sessions, ClusterSessions):
        cluster = sessions
        node.ready_checks.append(("redis", cluster.ready))

        async def hand_over() -> None:
            if lost := await cluster.release_all():
                log.error("draining: %s decided events could not reach Redis", lost)

        node.on_drain.append(hand_over)
    metrics.observe(
        connections=lambda: len(hub.connections),
        sessions=lambda: len(sessions.owned if isinstance(sessions, ClusterSessions) else sessions.live),
        backlog=lambda: sum(recorder.backlog.values()),
    )

    async def start(app: web.Application) -> None:
        sessions.start()
        if isinstance(media, ClusterMedia):
            media.start()
        heap.start()
        if lrs is not None:
            await lrs.start()
        long_lived.start()

    async def closing(app: web.Application) -> None:
        # Called once the listening sockets are closed and before aiohttp waits for the open
        # connections: tell every client why, then close their sockets now rather than waiting
        # for them to time out. Their `participant.left` events go to the log before it closes.
        await sio.emit("closing", CLOSING)
        for sid in list(hub.connections):
            await sio.disconnect(sid)
        for sid in list(hub.connections):
            # A socket already closing when the stop began may have its disconnect handler still
            # to run: leave for it now, so its `participant.left` is logged before the log closes.
            await hub.on_disconnect(sid)
        # Every session's media ends (its `media.tracks` reach the log, its files are finalised).
        await media.close()
        for transport in list(transports.by_eio_sid.values()):
            transport.close()  # after what is buffered: the engine.io close reaches the client

    async def stop(app: web.Application) -> None:
        await heap.close()
        await long_lived.close()
        app[STOPPED]["saved"] = await sessions.close()
        if lrs is not None:
            await lrs.close()  # what is left to push stays noted for the next start
        store.close()
        library.close()
        replay_store.close()

    app[STOPPED] = {"saved": None}
    app.on_startup.append(start)
    app.on_shutdown.append(closing)
    app.on_cleanup.append(stop)
    return app
