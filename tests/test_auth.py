"""Links carry signed, expiring tokens; forged, expired and wrong-session tokens are refused."""

from __future__ import annotations

import pytest
from itsdangerous import URLSafeSerializer

from classroom.client import ClassroomClient, ClassroomError
from classroom.keys import SIGNER


async def _refused(link: str, name: str | None = "Eve") -> str:
    client = ClassroomClient(link, name, reconnect=False)
    with pytest.raises(ClassroomError) as exc:
        await client.connect()
    await client.close()
    return exc.value.code


async def test_forged_and_foreign_tokens_are_refused(server):
    info = await server.create_session()
    link = info["join_url"]
    assert await _refused(link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")) == "invalid_token"
    foreign = URLSafeSerializer("another-secret", salt="classcast.link").dumps(
        {"s": info["id"], "r": "trainer", "e": 2**40}
    )
    assert await _refused(f"{server.base_url}/s/{info['id']}/trainer?token={foreign}") == "invalid_token"


async def test_expired_token_is_refused(server):
    info = await server.create_session()
    token = server.app[SIGNER].link(info["id"], "learner", ttl=-1)
    assert await _refused(f"{server.base_url}/s/{info['id']}/join?token={token}") == "expired_token"


async def test_token_for_another_session_is_refused(server):
    a = await server.create_session("A")
    b = await server.create_session("B")
    token_a = a["join_url"].split("token=")[1]
    assert await _refused(f"{server.base_url}/s/{b['id']}/join?token={token_a}") == "wrong_session"
    async with server.http.get(
        f"{server.base_url}/api/sessions/{b['id']}",
        headers={"Authorization": f"Bearer {a['trainer_url'].split('token=')[1]}"},
    ) as r:
        assert r.status == 403
        assert (await r.json())["error"]["code"] == "wrong_session"


async def test_unknown_session_and_replay_link_cannot_join(server):
    token = server.app[SIGNER].link("no-such-session", "learner")
    assert await _refused(f"{server.base_url}/s/no-such-session/join?token={token}") == "not_found"
    info = await server.create_session()
    assert await _refused(info["replay_url"]) == "forbidden"


async def test_roles_come_from_the_token_not_the_client(server):
    info = await server.create_session()
    learner = await server.client(info["join_url"], "Mallory")
    assert learner.you["role"] == "learner"
    # A learner's participant token does not open trainer-only HTTP either.
    async with server.http.get(
        f"{server.base_url}/api/sessions/{info['id']}",
        headers={"Authorization": f"Bearer {learner._token}"},
    ) as r:
        assert r.status == 403 and (await r.json())["error"]["code"] == "forbidden"
    ack = await learner.send("session.start")
    assert ack["error"]["code"] == "forbidden"
