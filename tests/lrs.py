"""A real Learning Record Store on loopback for the xAPI tests: ralph's LRS (FastAPI under
uvicorn) with its file-system backend, run from the virtualenv `make lrs` makes (`.venv-lrs`;
ralph pins its own web stack, so it lives apart from the server's). Started in a temp dir with
one basic-auth user; it can be stopped and started again on the same port with the same data."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import aiohttp

from .conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
LRS_PYTHON = Path(os.environ.get("CLASSCAST_LRS_VENV", ROOT / ".venv-lrs")) / "bin" / "python"
USER, PASSWORD = "classcast", "lrs-secret"
READY = b"Application startup complete"


class RalphLrs:
    def __init__(self, root: Path, port: int | None = None) -> None:
        if not LRS_PYTHON.exists():
            raise RuntimeError(f"no LRS for the xAPI tests at {LRS_PYTHON}: run `make lrs`")
        self.root = root
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/xAPI"
        self.proc: asyncio.subprocess.Process | None = None
        self._drain: asyncio.Task[None] | None = None
        self.log = b""
        root.mkdir(parents=True, exist_ok=True)
        hashed = subprocess.run(
            [
                str(LRS_PYTHON),
                "-c",
                "import bcrypt, sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt(4)).decode())",
                PASSWORD,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        user = {
            "username": USER,
            "hash": hashed,
            "scopes": ["all"],
            "agent": {"mbox": "mailto:lrs@example.org"},
        }
        (root / "auth.json").write_text(json.dumps([user]))

    async def start(self, timeout: float = 60) -> None:
        """Start uvicorn serving ralph's API; returns once it accepts requests."""
        env = {
            **os.environ,
            "RALPH_APP_DIR": str(self.root),
            "RALPH_AUTH_FILE": str(self.root / "auth.json"),
            "RALPH_RUNSERVER_BACKEND": "fs",
            "RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH": str(self.root),
        }
        self.proc = await asyncio.create_subprocess_exec(
            str(LRS_PYTHON),
            str(Path(__file__).with_name("lrs_server.py")),
            str(self.port),
            cwd=self.root,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        ready = asyncio.get_running_loop().create_future()
        self._drain = asyncio.create_task(self._read(ready))
        try:
            await asyncio.wait_for(asyncio.shield(ready), timeout)
        except BaseException:
            await self.stop()
            raise

    async def _read(self, ready: asyncio.Future[None]) -> None:
        assert self.proc and self.proc.stderr
        async for line in self.proc.stderr:
            self.log += line
            if READY in line and not ready.done():
                ready.set_result(None)
        if not ready.done():
            ready.set_exception(RuntimeError(f"the LRS stopped: {self.log.decode(errors='replace')[-2000:]}"))

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._drain is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._drain, 5)
        self.proc = self._drain = None

    async def statements(self) -> list[dict[str, Any]]:
        """Every statement the LRS holds, following its `more` links."""
        out: list[dict[str, Any]] = []
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        headers = {"X-Experience-API-Version": "1.0.3", "Authorization": f"Basic {token}"}
        url = f"{self.url}/statements?limit=100"
        async with aiohttp.ClientSession() as http:
            while url:
                async with http.get(url, headers=headers) as r:
                    assert r.status == 200, await r.text()
                    body = await r.json()
                out += body["statements"]
                more = body.get("more")
                url = f"http://127.0.0.1:{self.port}{more}" if more else ""
        return out
