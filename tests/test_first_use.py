"""What a first outside user hit when setting up and running Classcast (issue 9): the command
line, its flags and environment, startup faults, CORS and the links' base URL."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import aiohttp
import socketio

import classroom.__main__ as cli
from classroom.auth import new_id
from classroom.config import from_args
from classroom.store import SessionStore

from .conftest import ADMIN_KEY, running_server
from .served import Served, run_classroom


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return await run_classroom(*args, env=env, drop_env=("PORT", "HOST", "LOG_LEVEL", "DATA_DIR"))


# -- ids and `export` -----------------------------------------------------------------------------


def test_new_ids_never_look_like_options():
    ids = [new_id() for _ in range(20_000)]  # about 300 would start with '-' by chance
    assert not [i for i in ids if i.startswith("-")]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[A-Za-z0-9_-]{12}", i) for i in ids)


async def test_export_takes_an_old_id_starting_with_a_dash(tmp_path: Path):
    data_dir = tmp_path / "data"
    old_id = "-hOldId_42xy"  # made before ids were kept from starting with '-'
    store = SessionStore(data_dir)
    try:
        store.create_sync(old_id, "Old class")
    finally:
        store.close()
    async with running_server(data_dir) as server:
        async with server.http.get(f"{server.base_url}/api/sessions/{old_id}", headers=server.admin) as r:
            assert r.status == 200
            info = await r.json()
        trainer = await server.client(info["trainer_url"], "Tess")
        await trainer.request("session.start")
        await trainer.request("chat.send", text="hello, old id")
        await trainer.request("session.end")
    out_a = str(tmp_path / "a")
    for args in (
        ["export", "--data-dir", str(data_dir), "--format", "txt", "--out", out_a, "--", old_id],
        ["export", old_id, "--data-dir", str(data_dir), "--format", "txt", "--out", str(tmp_path / "b")],
        ["export", "--format", "txt", old_id, "--out", str(tmp_path / "c"), "--data-dir", str(data_dir)],
    ):
        code, out, err = await _run(*args)
        assert code == 0, (args, err)
        written = Path(out.strip())
        assert written.name == f"{old_id}-chat.txt"
        assert "hello, old id" in written.read_text()
    code, _, err = await _run("export", "-nosuchid", "--data-dir", str(data_dir))
    assert code != 0 and "no recording" in err


def test_export_help_lists_only_its_own_flags():
    text = cli.build_parser()._subparsers._group_actions[0].choices["export"].format_help()  # type: ignore[union-attr]
    assert "--format" in text and "--out" in text and "--data-dir" in text
    for flag in ("--port", "--host", "--admin-key", "--secret", "--cors-origin", "--idle-timeout"):
        assert flag not in text, flag


async def test_export_help_as_run():
    code, out, _ = await _run("export", "--help")
    assert code == 0 and "--format" in out and "--port" not in out and "--admin-key" not in out
    code, out, _ = await _run("create", "--help")
    assert code == 0 and "--public-url" in out and "--cors-origin" not in out


# -- flags and environment ------------------------------------------------------------------------


def _settings(argv: list[str], env: dict[str, str]):
    return from_args(cli.build_parser().parse_args(argv), env)


def test_flags_override_the_environment():
    env = {"CLASSCAST_CORS_ORIGINS": "https://a.example, https://b.example/", "PORT": "9001"}
    assert _settings(["serve"], env).cors_origins == ["https://a.example", "https://b.example"]
    assert _settings(["serve"], env).port == 9001
    flagged = _settings(["serve", "--cors-origin", "https://c.example", "--port", "9002"], env)
    assert flagged.cors_origins == ["https://c.example"] and flagged.port == 9002
    assert _settings(["serve"], {}).cors_origins == []
    assert _settings(["serve", "--public-url", "https://host//"], {}).public_url == "https://host"


async def _handshake(server, origin: str) -> int:
    async with server.http.get(
        f"{server.base_url}/socket.io/?EIO=4&transport=polling", headers={"Origin": origin}
    ) as r:
        return r.status


async def _socketio_connects(server, token: str, origin: str) -> bool:
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(
            server.base_url,
            auth={"token": token},
            headers={"Origin": origin},
            transports=["websocket"],
            wait_timeout=5,
        )
    except socketio.exceptions.ConnectionError:
        return False
    await client.disconnect()
    return True


async def test_cors_origin_adds_to_the_own_origin(tmp_path: Path):
    async with running_server(tmp_path / "data", cors_origins=["https://lms.example"]) as server:
        assert await _handshake(server, server.base_url) == 200  # the bundled pages
        assert await _handshake(server, "https://lms.example") == 200
        assert await _handshake(server, "https://evil.example") == 400
        # And a real socket.io client, over a websocket, as a browser on each origin would.
        info, _trainer = await server.live_session()
        token = info["join_url"].split("token=")[1]
        assert await _socketio_connects(server, token, server.base_url)
        assert await _socketio_connects(server, token, "https://lms.example")
        assert not await _socketio_connects(server, token, "https://evil.example")
    async with running_server(tmp_path / "data2") as server:
        assert await _handshake(server, server.base_url) == 200
        assert await _handshake(server, "https://lms.example") == 400


async def test_public_url_with_a_trailing_slash(tmp_path: Path):
    async with running_server(tmp_path / "data", public_url="https://host.example/") as server:
        info = await server.create_session()
        for key in ("trainer_url", "join_url", "replay_url"):
            assert info[key].startswith("https://host.example/s/"), info[key]
    code, out, _ = await _run(
        "create", "Algebra", "--data-dir", str(tmp_path / "d"), "--public-url", "https://cc.example/"
    )
    assert code == 0 and "https://cc.example/s/" in out and "//s/" not in out


# -- startup faults: one line, exit 2 -------------------------------------------------------------


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


async def test_port_in_use_is_one_line(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = await _run("serve", "--data-dir", str(tmp_path), "--port", str(port))
    assert code == 2
    assert "already in use" in _one_line(err) and str(port) in err


async def test_bad_settings_are_one_line(tmp_path: Path):
    for args, env, word in [
        (["serve", "--log-level", "bogus"], {}, "bogus"),
        (["serve"], {"LOG_LEVEL": "bogus"}, "bogus"),
        (["serve"], {"PORT": "abc"}, "PORT"),
        (["serve", "--port", "abc"], {}, "--port"),
        (["create", "T"], {"PORT": "abc"}, "PORT"),
        (["serve", "--idle-timeout", "soon"], {}, "--idle-timeout"),
        (["serve", "--public-url", "host.example"], {}, "http"),
    ]:
        code, _, err = await _run(*args, "--data-dir", str(tmp_path), env=env)
        assert code == 2, (args, env, err)
        assert word in _one_line(err), (args, env, err)


# -- `create` beside a running server -------------------------------------------------------------


async def test_create_uses_the_running_servers_url(tmp_path: Path):
    served = await Served(tmp_path, stderr=False).start()
    try:
        code, out, _ = await _run("create", "Beside", "--data-dir", str(tmp_path))
        assert code == 0
        join = re.search(r"learner: (\S+)", out)
        assert join and join.group(1).startswith(f"http://127.0.0.1:{served.port}/s/"), out
        async with aiohttp.ClientSession() as http, http.get(join.group(1)) as r:
            assert r.status == 200
        # Flags and environment still win.
        code, out, _ = await _run("create", "Env", "--data-dir", str(tmp_path), env={"PORT": "9"})
        assert code == 0 and "http://127.0.0.1:9/s/" in out
    finally:
        await served.stop(timeout=20)
    assert ADMIN_KEY  # the conftest key is not used by subprocesses
