"""`--ice-servers` / `CLASSCAST_ICE_SERVERS`: the flag overrides the environment, a bad URL stops
`serve` with one line, and a server's media uses exactly the servers given (none by default)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from classroom.config import ConfigError, add_arguments, from_args
from classroom.keys import HUB
from tests.conftest import running_server
from tests.served import run_classroom

STUN = "stun:stun.example.org:3478"
TURN = "turn:class%40cast:s3cret@turn.example.org:3478?transport=udp"


def settings(argv: list[str], env: dict[str, str]):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return from_args(parser.parse_args(argv), env)


def test_the_flag_overrides_the_environment() -> None:
    assert settings([], {}).ice_servers == []
    assert settings([], {"CLASSCAST_ICE_SERVERS": f"{STUN}, {TURN}"}).ice_servers == [STUN, TURN]
    assert settings(["--ice-servers", TURN], {"CLASSCAST_ICE_SERVERS": STUN}).ice_servers == [TURN]
    for bad in ("http://stun.example.org", "stun:", "turn:user:pw@", "stun.example.org:3478"):
        with pytest.raises(ConfigError, match="--ice-servers"):
            settings(["--ice-servers", bad], {})
    with pytest.raises(ConfigError, match="CLASSCAST_ICE_SERVERS"):
        settings([], {"CLASSCAST_ICE_SERVERS": "bogus"})


async def test_a_bad_url_stops_serve_with_one_line(tmp_path: Path) -> None:
    code, _out, err = await run_classroom("serve", "--data-dir", str(tmp_path), "--ice-servers", "bogus:x")
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith("error: --ice-servers: 'bogus:x' is not a STUN/TURN URL"), line


async def test_the_media_uses_the_servers_given(tmp_path: Path) -> None:
    async with running_server(tmp_path / "none") as server:
        assert server.app[HUB].media.ice_servers == []  # loopback: none (not aiortc's public default)
    async with running_server(tmp_path / "given", ice_servers=[STUN, TURN]) as server:
        servers = server.app[HUB].media.ice_servers
        assert [(s.urls, s.username, s.credential) for s in servers] == [
            (STUN, None, None),
            ("turn:turn.example.org:3478?transport=udp", "class@cast", "s3cret"),
        ]
