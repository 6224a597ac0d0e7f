"""A child process that takes commands as JSON lines on stdin and answers with JSON lines on
stdout, read by a thread: the scale harness's generators (`swarm.mjs`) and the floor's receivers."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from pathlib import Path
from typing import Any


class Child:
    """A process answering JSON lines on stdout (other lines are progress, ignored)."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.msgs: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _take(self, msg: dict[str, Any]) -> None:
        """Keep a message (under `cond`); subclasses route some elsewhere."""
        self.msgs.append(msg)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                with self.cond:
                    self._take(json.loads(line))
                    self.cond.notify_all()
        with self.cond:
            self.msgs.append({"error": f"exited ({self.proc.poll()})"})
            self.cond.notify_all()

    def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def wait(self, key: str | None, timeout: float) -> dict[str, Any]:
        """The next message with `key` (None: the next message); an error message raises."""

        def found(m: dict[str, Any]) -> bool:
            return key is None or key in m or "error" in m

        with self.cond:
            if not self.cond.wait_for(lambda: any(found(m) for m in self.msgs), timeout):
                raise RuntimeError(f"{self.proc.args[:2]}: no {key or 'answer'!r} within {timeout:.0f} s")
            msg = next(m for m in self.msgs if found(m))
            self.msgs.remove(msg)
        if "error" in msg:
            raise RuntimeError(f"{self.proc.args[:2]}: {msg['error']}")
        return msg

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.send(cmd="quit")
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
