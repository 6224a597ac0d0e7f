"""An async Python client for the Classcast protocol: connect with a link, send commands, await
events, and follow the folded session state. Tests, benchmarks and trainers' bots use it.

    async with ClassroomClient(join_url, name="Ada") as c:
        await c.request("chat.send", text="hello")
        await c.wait_for("chat.message", lambda e: e["data"]["text"] == "hi")
        print(c.view()["chat"])

Besides the stream (`event`, folded into `state`) and the presence summary (`presence`), the
server sends some Socket.IO events to one socket only, outside the stream (docs/protocol.md):
`media.offer` (a viewer's renegotiation), `media.reset` (cluster mode: the session's media moved;
view and publish again) and `closing` (the server is about to close the connection). The client
keeps every such personal event, in arrival order, in `personal` as `(name, data)`, and
`wait_personal` waits for one; `on_personal` adds a handler. A handler registered with
`client.sio.on(name, ...)` takes that event for itself instead (Socket.IO calls one handler per
event): it is then not recorded.

    reset = await c.wait_personal("media.reset", timeout=20)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import socketio

from .core import Event, SessionState, apply
from .core.history import QUERIES, merge_reply


class ClassroomError(Exception):
    """A refused connection or command, with the server's code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def parse_link(link: str) -> tuple[str, str, str | None]:
    """Split a trainer or join link into (server base URL, token, session id from the path)."""
    parts = urlsplit(link)
    token = parse_qs(parts.query).get("token", [""])[0]
    if not parts.scheme or not parts.netloc or not token:
        raise ValueError(f"not a Classcast link: {link!r}")
    path = parts.path.strip("/").split("/")
    session = path[1] if len(path) >= 2 and path[0] == "s" else None
    return f"{parts.scheme}://{parts.netloc}", token, session


class ClassroomClient:
    def __init__(
        self,
        link: str,
        name: str | None = None,
        *,
        reconnect: bool = True,
        transports: list[str] | None = None,
    ) -> None:
        self.base_url, self._token, self.session_id = parse_link(link)
        self.name = name
        self.you: dict[str, Any] | None = None
        self.state: SessionState | None = None
        self.events: list[dict[str, Any]] = []  # every event folded, in order
        self.joins = 0  # how many times this client joined (1 + reconnections)
        self.last_join: dict[str, Any] | None = None  # the latest join acknowledgement
        # A large session's presence summary (docs/protocol.md, `presence`): the latest, how many
        # came, and the reactions they counted, per emoji, added up.
        self.presence: dict[str, Any] | None = None
        self.summaries = 0
        self.reactions: dict[str, int] = {}
        self._transports = transports or ["websocket"]
        self._buffer: list[dict[str, Any]] | None = []  # events that arrive before the snapshot
        self._changed = asyncio.Event()
        self._connect_error: dict[str, Any] | None = None
        self._rejoin: asyncio.Task[None] | None = None
        self._epoch: str | None = None
        self._fetches: set[asyncio.Task[Any]] = set()
        # Personal events (outside the stream), in arrival order, and handlers added for them.
        self.personal: list[tuple[str, Any]] = []
        self._personal_handlers: dict[str, list[Callable[[Any], Any]]] = {}
        self.sio = socketio.AsyncClient(
            reconnection=reconnect, reconnection_delay=0.1, reconnection_delay_max=1.0
        )
        self.sio.on("event", self._on_event)
        self.sio.on("presence", self._on_presence)
        self.sio.on("connect", self._on_connect)
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on("*", self._on_personal)  # every event without a handler of its own

    async def __aenter__(self) -> ClassroomClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- connection -----------------------------------------------------------------------------

    async def connect(self, timeout: float = 10) -> dict[str, Any]:
        """Connect and join; returns the join acknowledgement."""
        try:
            await self.sio.connect(
                self.base_url,
                auth=self._auth,
                transports=self._transports,
                wait_timeout=timeout,
            )
        except socketio.exceptions.ConnectionError as exc:
            err = (self._connect_error or {}).get("data") or {}
            raise ClassroomError(err.get("code", "connect_failed"), err.get("message", str(exc))) from None
        try:
            return await self._join()
        except BaseException:
            await self.sio.disconnect()
            raise

    def _auth(self) -> dict[str, Any]:
        auth = {"token": self._token}
        if self.session_id:
            auth["session"] = self.session_id
        return auth

    async def close(self) -> None:
        if self._rejoin is not None:
            self._rejoin.cancel()
        for task in self._fetches:
            task.cancel()
        await self.sio.disconnect()

    async def drop(self) -> None:
        """Cut the transport as a network failure would; the client reconnects and resumes."""
        ws = getattr(self.sio.eio, "ws", None)
        if ws is not None:
            await ws.close()

    def _on_connect_error(self, data: Any = None) -> None:
        self._connect_error = data if isinstance(data, dict) else {"message": str(data)}

    def _on_connect(self) -> None:
        if self.joins and (self._rejoin is None or self._rejoin.done()):
            # A reconnection: join again with the last seq we saw to get exactly what we missed.
            self._rejoin = asyncio.get_running_loop().create_task(self._join())

    async def _join(self) -> dict[str, Any]:
        payload: dict[str, Any] = {}
        if self.state is not None:
            payload["last_seq"] = self.state.seq
            payload["epoch"] = self._epoch
        elif self.name is not None:
            payload["name"] = self.name
        self._buffer = []
        ack = await self.sio.call("join", payload, timeout=10)
        if not ack.get("ok"):
            self._buffer = None
            raise ClassroomError(ack["error"]["code"], ack["error"]["message"])
        self.you = ack["you"]
        self._token = ack["token"]  # reconnections resume this identity
        self._epoch = ack["epoch"]
        if "snapshot" in ack:
            self.state = SessionState.from_view(ack["snapshot"], self.you["id"])
            self.presence = ack["snapshot"].get("presence", self.presence)
        else:
            for wire in ack["events"]:
                self._apply(wire)
        buffered, self._buffer = self._buffer, None
        for wire in buffered:
            self._apply(wire)
        self.joins += 1
        self.last_join = ack
        self._notify()
        return ack

    # -- events ---------------------------------------------------------------------------------

    def _on_event(self, wire: dict[str, Any]) -> None:
        if self._buffer is not None or self.state is None:
            (self._buffer if self._buffer is not None else []).append(wire)
            return
        self._apply(wire)
        self._notify()

    def _on_presence(self, summary: dict[str, Any]) -> None:
        self.presence = summary
        self.summaries += 1
        for emoji, n in (summary.get("reactions") or {}).items():
            self.reactions[emoji] = self.reactions.get(emoji, 0) + n
        self._notify()

    async def _on_personal(self, name: str, data: Any = None, *_: Any) -> None:
        self.personal.append((name, data))
        self._notify()
        for fn in self._personal_handlers.get(name, ()):
            result = fn(data)
            if asyncio.iscoroutine(result):
                await result

    def on_personal(self, name: str, fn: Callable[[Any], Any]) -> None:
        """Call `fn(data)` (a function or a coroutine function) for each personal event `name`,
        after it is recorded in `personal`."""
        self._personal_handlers.setdefault(name, []).append(fn)

    def _apply(self, wire: dict[str, Any]) -> None:
        assert self.state is not None
        if wire["seq"] <= self.state.seq:
            return  # already folded (it was in the snapshot, or a resend)
        apply(self.state, Event.from_wire(wire))
        self.events.append(wire)
        if wire["type"] == "wb.page.switched" and wire["data"]["page"] in self.state.board.get(
            "unloaded", ()
        ):
            # The snapshot did not carry this page: fetch it now that it is shown.
            task = asyncio.get_running_loop().create_task(self._fetch_page(wire["data"]["page"]))
            self._fetches.add(task)
            task.add_done_callback(self._fetches.discard)

    async def _fetch_page(self, page: str) -> None:
        with contextlib.suppress(Exception):  # disconnected: the next join's snapshot has the page
            await self.send("board.page.get", page_id=page)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- commands -------------------------------------------------------------------------------

    async def send(self, command: str, payload: Any = None, /, **fields: Any) -> dict[str, Any]:
        """Send a command and return its acknowledgement, successful or not. The reply of a
        history command is folded into the state as it arrives, in order with the events."""
        if payload is None:
            payload = fields
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_ack(*args: Any) -> None:
            ack = args[0] if args else None
            if (
                command in QUERIES
                and isinstance(ack, dict)
                and ack.get("ok")
                and self.state is not None
                and self.you is not None
            ):
                merge_reply(self.state, command, ack, self.you["id"])
                self._notify()
            if not done.done():
                done.set_result(ack)

        await self.sio.emit(command, payload, callback=on_ack)
        return await asyncio.wait_for(done, 10)

    async def history(self, command: str, limit: int = 50) -> dict[str, Any]:
        """Fetch the page of `command` (chat.history, poll.history, qa.history) older than the
        oldest item held, and fold it in; the reply's `more` says whether older ones remain."""
        assert self.state is not None
        items = {"chat.history": self.state.chat, "poll.history": self.state.polls}.get(
            command, self.state.questions
        )
        before = min((item["seq"] for item in items.values()), default=self.state.seq + 1)
        return await self.request(command, before=before, limit=limit)

    async def request(self, command: str, payload: Any = None, /, **fields: Any) -> dict[str, Any]:
        """Send a command; raise ClassroomError when it is refused."""
        ack = await self.send(command, payload, **fields)
        if not ack.get("ok"):
            raise ClassroomError(ack["error"]["code"], ack["error"]["message"])
        return ack

    # -- waiting --------------------------------------------------------------------------------

    async def wait_until(self, condition: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until `condition()` is truthy (checked after every change); return its value."""
        async with asyncio.timeout(timeout):
            while True:
                value = condition() if self.state is not None else None
                if value:
                    return value
                await self._changed.wait()

    async def wait_for(
        self, type_: str, match: Callable[[dict[str, Any]], bool] | None = None, timeout: float = 5.0
    ) -> dict[str, Any]:
        """Wait for (or find among those received) an event of `type_` that matches."""

        def found() -> dict[str, Any] | None:
            return next((e for e in self.events if e["type"] == type_ and (match is None or match(e))), None)

        return await self.wait_until(found, timeout)

    async def wait_personal(
        self, name: str, match: Callable[[Any], bool] | None = None, timeout: float = 5.0
    ) -> Any:
        """Wait for (or find among those received) a personal event `name` whose data matches;
        returns its data. Not after the join only: a personal event can come first."""

        def found() -> tuple[str, Any] | None:
            return next((p for p in self.personal if p[0] == name and (match is None or match(p[1]))), None)

        async with asyncio.timeout(timeout):
            while (hit := found()) is None:
                await self._changed.wait()
        return hit[1]

    async def wait_seq(self, seq: int, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: self.state is not None and self.state.seq >= seq, timeout)

    def view(self) -> dict[str, Any]:
        """The folded state as this participant may see it (equal to a fresh join's snapshot
        while the session is within the snapshot's bounds)."""
        assert self.state is not None and self.you is not None
        return self.state.view(self.you["role"], self.you["id"], bounded=True)
