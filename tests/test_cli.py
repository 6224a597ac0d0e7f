"""The command line: `python -m classroom create` and `serve`, as a newcomer runs them."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

from classroom.client import ClassroomClient

from .conftest import free_port


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "classroom",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode(), err.decode()


async def test_create_prints_three_links(tmp_path):
    code, out, _ = await _run(
        "create", "Algebra", "--data-dir", str(tmp_path), "--public-url", "https://cc.example"
    )
    assert code == 0
    assert re.search(r"trainer: https://cc\.example/s/[\w-]+/trainer\?token=\S+", out)
    assert re.search(r"learner: https://cc\.example/s/[\w-]+/join\?token=\S+", out)
    assert re.search(r"replay: +https://cc\.example/s/[\w-]+/replay\?token=\S+", out)
    code, _, err = await _run("create", "   ", "--data-dir", str(tmp_path))
    assert code != 0 and "title" in err


async def test_serve_prints_url_and_a_working_trainer_link(tmp_path):
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "classroom",
        "serve",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PORT": str(port), "DATA_DIR": str(tmp_path), "CLASSCAST_ADMIN_KEY": ""},
    )
    try:
        lines = []
        while not any("Trainer link" in line for line in lines):
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert line, f"server exited early: {lines}"
            lines.append(line.decode())
        text = "".join(lines)
        assert f"http://127.0.0.1:{port}" in text
        link = re.search(r"Trainer link for .*: (\S+)", text).group(1)
        assert "Admin key" in text or (tmp_path / "admin.key").exists()
        client = ClassroomClient(link)
        await client.connect()
        try:
            assert client.you["role"] == "trainer"
            await client.request("session.start")
        finally:
            await client.close()
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
