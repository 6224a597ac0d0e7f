"""`python -m classroom ...` as a real subprocess, the way a user runs it: one place that starts
`serve` on a free port and waits until it answers, and one that runs a command to its end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from .conftest import free_port

READY = b"Learner link"  # printed once the socket listens, after the URL and the trainer link


def command_env(env: Mapping[str, str] | None = None, drop: Iterable[str] = ()) -> dict[str, str]:
    """This process's environment without the names in `drop`, with `env` on top."""
    # REDIS_URL (set for the cluster tests' Redis) would turn every served server into a node:
    # only the tests that ask for cluster mode get it (by flag or `env`).
    dropped = {*drop, "REDIS_URL"}
    return {**{k: v for k, v in os.environ.items() if k not in dropped}, **(env or {})}


async def run(
    *cmd: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 30
) -> tuple[int, str, str]:
    """Run `cmd` to its end (killed if it takes over `timeout` s): exit status, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        cwd=cwd,
        env=None if env is None else dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def run_classroom(
    *args: str, env: Mapping[str, str] | None = None, drop_env: Iterable[str] = (), timeout: float = 30
) -> tuple[int, str, str]:
    """`python -m classroom *args` to its end, with `env` over this process's environment."""
    return await run(
        sys.executable, "-m", "classroom", *args, env=command_env(env, drop_env), timeout=timeout
    )


class Served:
    """A `python -m classroom serve` subprocess on a free port (kept across restarts).

    `data_dir` goes in `--data-dir` (or `DATA_DIR` with `via_env`, with the port in `PORT`);
    `stderr` is piped (True: read `self.proc.stderr`, the rest is collected into `self.stderr`
    when stopped), discarded (False) or a path the server appends its log to."""

    def __init__(
        self,
        data_dir: Path | None,
        *args: str,
        env: Mapping[str, str] | None = None,
        drop_env: Iterable[str] = (),
        via_env: bool = False,
        stderr: Path | bool = True,
        cwd: Path | None = None,
        preexec_fn: Callable[[], Any] | None = None,
        ready_timeout: float = 60,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.env = dict(env or {})
        self.drop_env = tuple(drop_env)
        self.via_env = via_env
        self.stderr_to = stderr
        self.cwd = cwd
        self.preexec_fn = preexec_fn
        # Seconds each line before the links may take: a bound for a server that hangs, not a
        # speed test. On a loaded 2-core machine importing the server alone took 19 s of wall
        # time (1.6 s of CPU), and 20 s here failed cluster tests at start-up.
        self.ready_timeout = ready_timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.out = ""  # stdout up to the line saying it is ready
        self.link = ""  # the trainer link it printed
        self.stderr = b""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> Served:
        """Start it and return once it listens (it says so on stdout)."""
        args = list(self.args)
        env = dict(self.env)
        if self.via_env:
            env["PORT"] = str(self.port)
            if self.data_dir is not None:
                env["DATA_DIR"] = str(self.data_dir)
        else:
            if self.data_dir is not None:
                args = ["--data-dir", str(self.data_dir), *args]
            args = ["--port", str(self.port), *args]
        err: IO[bytes] | None = None
        stderr: Any = asyncio.subprocess.PIPE if self.stderr_to is True else asyncio.subprocess.DEVNULL
        if isinstance(self.stderr_to, Path):
            stderr = err = open(self.stderr_to, "ab")  # noqa: SIM115 -- the child keeps its own copy
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "classroom", "serve", *args),
                cwd=self.cwd,
                env=command_env(env, self.drop_env),
                preexec_fn=self.preexec_fn,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        finally:
            if err is not None:
                err.close()
        assert self.proc.stdout is not None
        self.out = ""
        try:
            while READY not in (
                line := await asyncio.wait_for(self.proc.stdout.readline(), self.ready_timeout)
            ):
                assert line, f"server exited before it was ready: {self.out}{self._log_tail()}"
                self.out += line.decode()
        except BaseException:
            await self.kill()
            raise
        self.out += line.decode()
        found = re.search(r"Trainer link for .*: (\S+)", self.out)
        assert found, self.out
        self.link = found.group(1)
        return self

    def _log_tail(self) -> str:
        return Path(self.stderr_to).read_text()[-2000:] if isinstance(self.stderr_to, Path) else ""

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> tuple[int, float]:
        """Send `sig` and wait for the exit (killed if it takes over `timeout` s, and TimeoutError
        raised); return the exit status and the seconds it took."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(sig)
        try:
            _, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        except TimeoutError:
            await self.kill()
            raise
        self.stderr += err or b""
        assert self.proc.returncode is not None
        return self.proc.returncode, time.monotonic() - began

    async def kill(self) -> None:
        """SIGKILL, as a crash would (nothing if it has exited already)."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
