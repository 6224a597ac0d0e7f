"""Property-based tests of every socket command with hostile payloads, against a real server.

For every command in the core's registry (and `join`), from a trainer and a learner, with payloads
of the right shape (so `decide()` runs), broken ones and arbitrary JSON-like values:
- the ack is `{ok: true, seq, ...}` or `{ok: false, error: {code, message}}` with a documented
  code, never `internal_error`, and the server logs no error;
- a refused command changes nothing (the whole folded state, history included, is equal);
- an accepted one changes the state exactly as folding its events does;
- afterwards the same connection still answers a known-good command.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import orjson
import pytest
import socketio
from hypothesis import given
from hypothesis import strategies as st

from classroom.app import MAX_MESSAGE_BYTES
from classroom.client import ClassroomClient
from classroom.core import apply
from classroom.core.errors import CODES
from classroom.core.limits import Rate, Rates
from classroom.core.registry import COMMANDS
from classroom.keys import SESSIONS
from classroom.live import LiveSession
from signaling import hub

from .conftest import LoopServer
from .payloads import (
    Raw,
    decodable,
    deep,
    encode,
    for_model,
    json_values,
    mutated,
    resolve,
    short_text,
    undecodable,
)

# Hypothesis warns once that its own thread-local PRNG "could be garbage collected": harmless here.
pytestmark = pytest.mark.filterwarnings("ignore:It looks like `register_random`")

ACK_TIMEOUT = 3.0
REBUILD_AFTER = 300  # examples on one session before a fresh one (keeps the state small)
UNLIMITED = Rate(10**9, 1)

# `join` is handled by the hub itself, not the registry; its fields are these (hub.Hub._join).
JOIN_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "name": st.one_of(short_text, st.sampled_from(["Ann", " Bo ", "x" * 60, "x" * 61])),
    "last_seq": st.one_of(st.integers(-2, 50), st.integers(), st.sampled_from([2**63, 2**64, -(2**64)])),
    "epoch": st.one_of(short_text, st.none()),
}
JOIN_SHAPED = st.fixed_dictionaries({}, optional=JOIN_FIELDS)
COMMAND_NAMES = sorted(COMMANDS)
ROLES = ("trainer", "learner")


class _Json:
    """What python-socketio's packets call: our encoder out (Raw parts, huge ints, escaped lone
    surrogates), the standard library in."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return encode(obj)

    @staticmethod
    def loads(data: str | bytes, **_: Any) -> Any:
        return json.loads(data)


class FuzzPacket(socketio.packet.Packet):
    uses_binary_events = False
    json = _Json


def ids_of(live: LiveSession) -> dict[str, list[str]]:
    """Existing ids by kind, named as the payload fields name them (`poll_id` -> `poll`)."""
    s = live.state
    return {
        "participant": sorted(s.participants),
        "message": sorted(s.chat),
        "poll": sorted(s.polls),
        "question": sorted(s.questions),
        "element": sorted(s.board["index"]),
        "page": sorted(s.board["pages"]),
    }


class World:
    """One live session with a trainer and a learner (joined), two sockets that have not joined
    yet, and something of every kind to act on. Rebuilt when it ends or grows."""

    def __init__(self, srv: LoopServer) -> None:
        self.srv = srv
        self.live: LiveSession | None = None
        self.clients: dict[str, ClassroomClient] = {}
        self.raw: dict[str, socketio.AsyncClient] = {}
        self.examples = 0

    async def ensure(self) -> None:
        broken = any(not c.sio.connected for c in self.clients.values()) or any(
            not raw.connected for raw in self.raw.values()
        )
        if self.live is None or self.live.state.status == "ended" or self.examples >= REBUILD_AFTER or broken:
            await self._close()
            await self._build()
        self.examples += 1

    async def _build(self) -> None:
        server = self.srv.server
        self.info, trainer = await server.live_session("Fuzz")
        learner = await server.client(self.info["join_url"], "Lou")
        self.live = server.app[SESSIONS].live[self.info["id"]]
        # The per-feature rates would refuse most of what follows with `rate_limited`; lifted,
        # the fuzzer reaches each command's own checks (the rates have their own tests).
        self.live.core.rates = Rates(*(UNLIMITED for _ in Rates.__dataclass_fields__))
        self.clients = {"trainer": trainer, "learner": learner}
        for c in self.clients.values():
            c.sio.packet_class = FuzzPacket
        poll = await trainer.request("poll.open", question="Q?", options=["a", "b", "c"], multiple=True)
        closed = await trainer.request("poll.open", question="Old", options=["x", "y"], correct=[1])
        await trainer.request("poll.close", poll_id=closed["id"])
        await learner.request("poll.vote", poll_id=poll["id"], choices=[0, 2])
        await learner.request("qa.ask", text="Why?", anonymous=True)
        await trainer.request("qa.ask", text="Mine")
        await learner.request("chat.send", text="hello")
        await trainer.request("wb.permit", learners_can_draw=True)
        await trainer.request("wb.stroke.begin", points=[1, 1, 2, 2])
        done = await learner.request("wb.stroke.begin", points=[5, 5, 6, 6])
        await learner.request("wb.stroke.end", element_id=done["id"])
        await learner.request("wb.shape", kind="rect", x1=1, y1=1, x2=9, y2=9)
        await learner.request("wb.stroke.begin", points=[7, 7])
        await trainer.request("wb.page.add")
        await trainer.request("wb.page.switch", page_id="w1")
        for role in ROLES:
            await self._connect_raw(role)
        self.examples = 0

    async def _connect_raw(self, role: str) -> None:
        link = self.info["trainer_url" if role == "trainer" else "join_url"]
        raw = socketio.AsyncClient(reconnection=False)
        raw.packet_class = FuzzPacket
        await raw.connect(
            self.srv.server.base_url,
            auth={"token": link.split("token=")[1], "session": self.info["id"]},
            transports=["websocket"],
            wait_timeout=10,
        )
        self.raw[role] = raw

    async def renew_raw(self, role: str, pid: str) -> None:
        """A fresh unjoined socket, once the server has seen the old one (joined as `pid`) go,
        so its `participant.left` cannot fall inside the next example."""
        await self.raw[role].disconnect()
        assert self.live is not None
        async with asyncio.timeout(10):
            while self.live.state.participants[pid]["online"]:
                await asyncio.sleep(0.005)
        await self._connect_raw(role)

    async def _close(self) -> None:
        for c in self.clients.values():
            await c.close()
        for raw in self.raw.values():
            await raw.disconnect()
        self.clients, self.raw = {}, {}


@pytest.fixture(scope="module")
def world(loop_server: LoopServer):
    with pytest.MonkeyPatch.context() as mp:
        # The per-connection flood guard (200 commands/s) would refuse the fuzzer's pace.
        mp.setattr(hub, "CONNECTION_RATE", UNLIMITED, raising=False)
        w = World(loop_server)
        loop_server.run(w.ensure())
        try:
            yield w
        finally:
            loop_server.run(w._close())


def assert_ack(ack: Any, what: str) -> None:
    assert isinstance(ack, dict), f"{what}: the ack is not an object: {ack!r}"
    if ack.get("ok") is True:
        assert isinstance(ack.get("seq"), int), f"{what}: an ok ack without seq: {ack!r}"
        return
    assert ack.get("ok") is False and set(ack) == {"ok", "error"}, f"{what}: malformed ack {ack!r}"
    error = ack["error"]
    assert isinstance(error, dict) and set(error) == {"code", "message"}, f"{what}: {ack!r}"
    assert error["code"] in CODES, f"{what}: undocumented code {error['code']!r}"
    assert error["code"] != "internal_error", f"{what}: {ack!r}"
    assert isinstance(error["message"], str) and error["message"], f"{what}: no message {ack!r}"


async def call(sio: socketio.AsyncClient, name: str, args: tuple[Any, ...] | None, what: str) -> Any:
    data = args[0] if args is not None and len(args) == 1 and not isinstance(args[0], tuple) else args
    try:
        return await sio.call(name, data, timeout=ACK_TIMEOUT)
    except socketio.exceptions.TimeoutError:
        try:
            orjson.loads(encode([name, *(args or ())]))
            parses = "it parses"
        except orjson.JSONDecodeError as exc:
            parses = f"orjson refuses it: {exc}"
        raise AssertionError(f"{what}: no ack within {ACK_TIMEOUT} s ({parses})") from None
    except socketio.exceptions.BadNamespaceError:
        raise AssertionError(f"{what}: the server closed the connection") from None


async def exercise(
    world: World, sio: socketio.AsyncClient, role: str, name: str, args: tuple[Any, ...] | None, joined: bool
) -> dict[str, Any]:
    live = world.live
    assert live is not None
    errors = world.srv.errors
    mark = len(errors.records)
    before = copy.deepcopy(live.state)
    args = resolve(args, ids_of(live))
    what = f"{role} {name}{args!r}"[:300]
    if len(encode([name, *(args or ())])) > MAX_MESSAGE_BYTES - 100:
        # Engine.IO closes a connection that sends more than this in one message, by design
        # (tests/test_bad_input.py covers it); below it, everything must get an ack.
        return {"ok": None}
    ack = await call(sio, name, args, what)
    assert_ack(ack, what)
    await asyncio.sleep(0)  # let anything the command set off run before we look
    if ack["ok"]:
        # Exactly the fold of the events it produced: nothing changed behind the stream's back.
        expected = before
        for event in list(live.recent):
            if event.seq > before.seq:
                apply(expected, event)
        assert live.state == expected, f"{what}: the state is not the fold of its events"
    else:
        assert live.state.seq == before.seq, f"{what}: refused ({ack['error']}) but seq moved"
        assert live.state == before, f"{what}: refused ({ack['error']}) but the state changed"
    # The same connection still answers.
    probe = await call(sio, "hand.lower", ({},), f"{what}, then hand.lower")
    if not joined and not (ack["ok"] and name == "join"):
        assert probe["error"]["code"] == "not_joined", f"{what}: probe answered {probe!r}"
    elif live.state.status == "ended":
        assert probe["error"]["code"] == "session_ended", f"{what}: probe answered {probe!r}"
    else:
        assert probe.get("ok") is True, f"{what}: the connection no longer works: {probe!r}"
    assert not errors.since(mark), f"{what}: the server logged {errors.since(mark)}"
    return ack


def payloads(data: st.DataObject, name: str) -> tuple[Any, ...] | None:
    """No payload, several, or one: shaped like the command's model, broken, or anything, all
    of it JSON that parses (what does not parse has its own test below)."""
    return decodable(_payloads(data, name))


def _payloads(data: st.DataObject, name: str) -> tuple[Any, ...] | None:
    if name == "join":
        shaped = JOIN_SHAPED
        fields = list(JOIN_FIELDS)
    else:
        model = COMMANDS[name].model
        shaped = for_model(model)
        fields = list(model.model_fields)
    kind = data.draw(st.sampled_from(["shaped"] * 4 + ["mutated"] * 3 + ["any"] * 2 + ["args"]), "kind")
    if kind == "shaped":
        return (data.draw(shaped, "payload"),)
    if kind == "mutated":
        return (data.draw(mutated(shaped, fields), "payload"),)
    if kind == "any":
        return (data.draw(json_values(tuple(fields)), "payload"),)
    return data.draw(
        st.one_of(st.none(), st.lists(json_values(tuple(fields)), min_size=2, max_size=3).map(tuple)), "args"
    )


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_each_command_answers_and_refusals_change_nothing(world: World, name: str) -> None:
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        world.srv.run(world.ensure())
        role = data.draw(st.sampled_from(ROLES), "role")
        args = payloads(data, name)
        world.srv.run(exercise(world, world.clients[role].sio, role, name, args, joined=True))

    check()


def test_join_before_and_after_joining(world: World) -> None:
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        world.srv.run(world.ensure())
        role = data.draw(st.sampled_from(ROLES), "role")
        joined = data.draw(st.booleans(), "joined")
        args = payloads(data, "join")
        sio = world.clients[role].sio if joined else world.raw[role]
        ack = world.srv.run(exercise(world, sio, role, "join", args, joined=joined))
        if not joined and ack["ok"]:
            world.srv.run(world.renew_raw(role, ack["you"]["id"]))  # the next example starts unjoined

    check()


def test_unknown_commands(world: World) -> None:
    names = st.one_of(short_text, st.sampled_from(["", "chat", "chat.send ", "CHAT.SEND", "session.start.x"]))

    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        world.srv.run(world.ensure())
        role = data.draw(st.sampled_from(ROLES), "role")
        name = data.draw(names.filter(lambda n: n not in COMMANDS and n != "join"), "name")
        args = decodable(data.draw(st.one_of(st.none(), json_values().map(lambda v: (v,))), "args"))
        world.srv.run(exercise(world, world.clients[role].sio, role, name, args, joined=True))

    check()


def test_undecodable_payloads(world: World) -> None:
    """JSON that no parser takes (NaN, lone surrogates, 1e999, nesting past any parser's limit)
    in an otherwise well-shaped command: still an ack with a code, and nothing changes."""

    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        world.srv.run(world.ensure())
        role = data.draw(st.sampled_from(ROLES), "role")
        name = data.draw(st.sampled_from([*COMMAND_NAMES, "join"]), "name")
        args = _payloads(data, name)
        bad = data.draw(undecodable, "bad")
        if args and isinstance(args[0], dict) and args[0] and data.draw(st.booleans(), "in a field"):
            payload = dict(args[0])
            payload[data.draw(st.sampled_from(sorted(payload)), "field")] = bad
            args = (payload,)
        else:
            args = (bad,)
        world.srv.run(exercise(world, world.clients[role].sio, role, name, args, joined=True))

    check()


HOSTILE = [
    deep(1000),
    deep(1020, "dict"),
    deep(990),
    Raw("9" * 300),
    2**64,
    -(2**63) - 1,
    1e308,
    [deep(1000)],
]


@pytest.mark.parametrize("name", [*COMMAND_NAMES, "join"])
def test_hostile_values_in_every_field(world: World, name: str) -> None:
    """The hostile values that parse (nesting near the parsers' limits, numbers past every
    integer type), in each field of each command and as the whole payload: a corpus that runs
    every time, beside what hypothesis happens to draw."""
    fields = list(JOIN_FIELDS) if name == "join" else list(COMMANDS[name].model.model_fields)
    for value in HOSTILE:
        for field in [*fields, None]:
            world.srv.run(world.ensure())
            payload = value if field is None else {field: value}
            sio = world.clients["trainer"].sio
            world.srv.run(exercise(world, sio, "trainer", name, (payload,), joined=True))


@pytest.mark.parametrize("name", [*COMMAND_NAMES, "join"])
def test_no_payload_and_several_payloads(world: World, name: str) -> None:
    """Zero arguments, and two or three where the protocol takes one: an ack either way."""
    for args in [None, ({}, {}), ({}, None, 1)]:
        world.srv.run(world.ensure())
        world.srv.run(exercise(world, world.clients["learner"].sio, "learner", name, args, joined=True))
