"""The garbage budget of a connection counts only packets that are not JSON or not Socket.IO
events; well-formed JSON refused for a limit of ours (nesting) is answered and not counted; the
budget is a setting (`--bad-packets`, 0: no limit)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from classroom.config import add_arguments, from_args
from classroom.core.limits import Rate
from signaling.guard import BAD_PACKETS, rate_setting

from .conftest import running_server
from .test_socket_garbage import RawSocket

TOO_DEEP = '["chat.send",{"text":' + "[" * 17 + "]" * 17 + "}]"
TRUNCATED = '["chat.send",'


async def _send(sock: RawSocket, raw: str, n: int) -> None:
    for _ in range(n):
        ack = await sock.call("", raw=raw)
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload", ack


async def test_json_over_the_nesting_limit_is_refused_but_not_counted(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data", bad_packets=3) as server:
        info, _trainer = await server.live_session()
        sock = await RawSocket.open(server, info["join_url"], {"name": "Deep"})
        await _send(sock, TOO_DEEP, 30)
        assert (await sock.call("chat.send", {"text": "still here"}))["ok"]
        assert not [f for f in sock.frames if f.startswith('42["closing"')]


async def test_the_budget_is_a_setting(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data", bad_packets=3) as server:
        info, _trainer = await server.live_session()
        sock = await RawSocket.open(server, info["join_url"], {"name": "Mal"})
        with pytest.raises(ConnectionError):
            await _send(sock, TRUNCATED, 10)
        assert any(f.startswith('42["closing",{"code":"bad_packets"') for f in sock.frames), sock.frames[-3:]


async def test_no_limit_when_the_setting_is_zero(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data", bad_packets=0) as server:
        info, _trainer = await server.live_session()
        sock = await RawSocket.open(server, info["join_url"], {"name": "Mal"})
        await _send(sock, TRUNCATED, 60)
        assert (await sock.call("chat.send", {"text": "still here"}))["ok"]


async def test_join_with_several_arguments_is_answered(tmp_path: Path) -> None:
    async with running_server(tmp_path / "data") as server:
        info, _trainer = await server.live_session()
        sock = await RawSocket.open(server, info["join_url"])
        ack = await sock.call("", raw='["join",{"name":"A"},{}]')
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload", ack
        assert (await sock.call("join", {"name": "A"}))["ok"]


def test_bad_packets_flag_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLASSCAST_BAD_PACKETS", "7")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert from_args(parser.parse_args([])).bad_packets == 7
    assert from_args(parser.parse_args(["--bad-packets", "0"])).bad_packets == 0
    # What the server makes of the setting (classroom/app.py): that many per 10 s, 0 or less none.
    assert rate_setting(7, BAD_PACKETS.per_ms) == Rate(7, 10_000)
    assert rate_setting(BAD_PACKETS.burst, BAD_PACKETS.per_ms) == BAD_PACKETS
    assert rate_setting(0, BAD_PACKETS.per_ms) is None
    assert rate_setting(-1, BAD_PACKETS.per_ms) is None
