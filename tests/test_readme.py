"""The README's examples, run as a newcomer would: its Python client example against a real
server, its `curl` beside a real `serve` (issue 9: the example failed on a fresh session)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest

from .served import Served, run

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), re.S)


async def test_readme_python_example_runs_against_a_fresh_session(server, tmp_path: Path):
    (example,) = [b for b in _blocks("python") if "ClassroomClient" in b]
    script = tmp_path / "hello.py"
    script.write_text(example)
    info = await server.create_session("README")  # fresh: created, not started
    env_path = str(Path(__file__).resolve().parent.parent)
    code, out, err = await run(
        "env",
        f"PYTHONPATH={env_path}",
        sys.executable,
        str(script),
        info["trainer_url"],
        info["join_url"],
        cwd=tmp_path,
    )
    assert code == 0, err
    assert "Hello!" in out and "Ada" in out


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
async def test_readme_create_and_curl_beside_a_server_on_another_port(tmp_path: Path):
    (usage,) = [b for b in _blocks("sh") if "curl" in b and "api/sessions" in b]
    served = await Served(
        None,
        env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        drop_env=("PORT", "HOST", "DATA_DIR"),
        stderr=False,
        cwd=tmp_path,
    ).start()
    try:
        # The README's lines, with the venv's python as it is here.
        script = usage.replace(".venv/bin/python", sys.executable)
        code, out, err = await run("bash", "-e", "-c", script, cwd=tmp_path)
        assert code == 0, err
        assert f"trainer: http://127.0.0.1:{served.port}/s/" in out
        created = json.loads(out[out.index("{") :])
        assert created["title"] == "Statistics 101"
    finally:
        await served.stop(timeout=20)
