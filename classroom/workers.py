"""`serve --workers N`: N server processes sharing one port (SO_REUSEPORT, the kernel spreads new
connections over them) under this parent, which starts them, restarts one that dies, and forwards
SIGTERM/SIGINT/SIGHUP to them all (each drains on its own). Sessions are shared between the
workers through Redis (cluster mode), so `--workers` above 1 needs `--redis-url`."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)

WORKER_ENV = "CLASSCAST_WORKER"  # in each worker: its index (0 announces the links)
RESTART_BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0)  # seconds before restarting a worker that died, by streak
HEALTHY_AFTER = 30.0  # a worker that ran this long resets its restart streak
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def supervise(argv: Sequence[str], workers: int) -> int:
    """Run `python -m classroom <argv>` `workers` times (each told its index in WORKER_ENV) until a
    signal stops them; return the worst exit status among them (0 when all stopped cleanly)."""
    stopping = False
    procs: dict[int, subprocess.Popen[bytes]] = {}
    started: dict[int, float] = {}
    streak: dict[int, int] = dict.fromkeys(range(workers), 0)
    worst = 0

    def spawn(index: int) -> None:
        env = {**os.environ, WORKER_ENV: str(index)}
        procs[index] = subprocess.Popen([sys.executable, "-m", "classroom", *argv], env=env)
        started[index] = time.monotonic()

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    for index in range(workers):
        spawn(index)
    restart_at: dict[int, float] = {}
    while procs or (restart_at and not stopping):
        time.sleep(0.1)
        for index, proc in list(procs.items()):
            code = proc.poll()
            if code is None:
                continue
            del procs[index]
            if stopping:
                worst = max(worst, code)
                continue
            # Died on its own: a crash. Restart it after a growing pause; the others serve.
            ran = time.monotonic() - started[index]
            streak[index] = 0 if ran > HEALTHY_AFTER else streak[index] + 1
            pause = RESTART_BACKOFF[min(streak[index], len(RESTART_BACKOFF) - 1)]
            log.error(
                "worker %d (pid %d) exited with %d after %.0f s; restarting in %g s",
                index,
                proc.pid,
                code,
                ran,
                pause,
            )
            restart_at[index] = time.monotonic() + pause
        for index, at in list(restart_at.items()):
            if stopping:
                restart_at.clear()
                break
            if time.monotonic() >= at:
                del restart_at[index]
                spawn(index)
    return worst
