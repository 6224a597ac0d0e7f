"""Limits per person, not per connection: identities minted from one learner link at one address
share rate buckets and are minted at a bounded rate; a muted learner coming back stays muted; a
socket that does not join is closed and never listed. Loopback is made a limited address here."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest

from classroom.client import ClassroomClient, ClassroomError
from classroom.core.limits import Rate, Rates
from classroom.keys import HUB, SESSIONS

from .conftest import Server
from .test_socket_garbage import RawSocket

ADDRESS_SHARE = 4  # (classroom.core.limits.ADDRESS_SHARE; spelled out so the test runs before the fix)


@pytest.fixture
def limited(server: Server) -> Server:
    """Loopback counts as an address like any other."""
    guard = getattr(server.app[HUB], "guard", None)
    if guard is not None:  # (there is none before the fix: the tests then show what fails)
        guard.unlimited = frozenset()
    return server


def guard(server: Server) -> Any:
    return getattr(server.app[HUB], "guard", None) or SimpleNamespace(total=1)


async def test_five_connections_on_one_link_share_a_persons_budget(limited: Server):
    info, trainer = await limited.live_session()
    learners = [await limited.client(info["join_url"], f"Spam {i}") for i in range(ADDRESS_SHARE + 2)]
    acks = await asyncio.gather(
        *(c.send("chat.send", text=f"{i}") for c in learners for i in range(Rates().chat.burst))
    )
    ok = [a for a in acks if a["ok"]]
    assert len(ok) == Rates().chat.burst * ADDRESS_SHARE < len(acks)
    assert {a["error"]["code"] for a in acks if not a["ok"]} == {"rate_limited"}
    # The trainer is not limited by the learners' address.
    assert (await trainer.send("chat.send", text="trainer"))["ok"]


async def test_a_muted_learner_who_opens_the_link_again_is_still_muted(limited: Server):
    info, trainer = await limited.live_session()
    lea = await limited.client(info["join_url"], "Lea")
    await trainer.request("participant.mute", participant_id=lea.you["id"])
    # Same browser: it resumes with its participant token, the same identity.
    token = lea.last_join["token"]
    await lea.close()
    again = ClassroomClient(f"{limited.base_url}/s/{info['id']}/join?token={token}")
    limited._clients.append(again)
    await again.connect()
    assert again.you["id"] == lea.you["id"]
    assert (await again.send("chat.send", text="hi"))["error"]["code"] == "muted"
    # Another tab or a private window: a new identity, from the same address, starts muted.
    new = await limited.client(info["join_url"], "Not Lea")
    assert new.you["id"] != lea.you["id"]
    assert (await new.send("chat.send", text="hi"))["error"]["code"] == "muted"
    await trainer.wait_for("participant.muted", lambda e: e["data"]["id"] == new.you["id"])
    live = limited.app[SESSIONS].live[info["id"]]
    assert live.state.participants[new.you["id"]]["muted"]


async def test_new_identities_per_address_are_minted_at_a_bounded_rate(limited: Server):
    guard(limited).joins_per_address = Rate(3, 60_000)
    info, _trainer = await limited.live_session()
    for i in range(3):
        await limited.client(info["join_url"], f"L{i}")
    with pytest.raises(ClassroomError) as err:
        await limited.client(info["join_url"], "One too many")
    assert err.value.code == "rate_limited"
    # Coming back with one's participant token is not a new identity; the trainer link is not limited.
    first = limited._clients[1]
    await first.drop()
    await first.wait_until(lambda: first.joins == 2, timeout=10)
    await limited.client(info["trainer_url"], "Second trainer")


async def test_sockets_that_never_join_are_closed_and_never_listed(limited: Server):
    edge = guard(limited)
    edge.join_timeout = 1.0
    info, _trainer = await limited.live_session()
    live = limited.app[SESSIONS].live[info["id"]]
    before = len(live.state.participants)
    silent = [await RawSocket.open(limited, info["join_url"]) for _ in range(40)]
    # Not even a socket.io CONNECT: closed as well.
    url = limited.base_url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    bare = [await limited.http.ws_connect(url) for _ in range(10)]
    assert len(live.state.participants) == before
    frames = await asyncio.gather(*(s.until_closed(timeout=10) for s in silent))
    for got in frames:
        closing = [json.loads(f[2:]) for f in got if f.startswith('42["closing"')]
        assert closing and closing[0][1]["code"] == "join_timeout", got
    async with asyncio.timeout(10):
        for ws in bare:
            while not ws.closed:
                await ws.receive()
    assert len(live.state.participants) == before
    assert len(limited.app[HUB].connections) == 1  # the trainer
    assert edge.total == 1
    # Joining in time is unaffected.
    late = await limited.client(info["join_url"], "On time")
    await asyncio.sleep(1.5)
    assert (await late.send("chat.send", text="still here"))["ok"]
