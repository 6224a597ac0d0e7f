"""`serve --workers N`: N server processes sharing one port (SO_REUSEPORT: the kernel spreads new
connections over them) under this parent, which starts them, restarts one that dies, and forwards
SIGTERM/SIGINT/SIGHUP to them all (each drains on its own). Sessions are shared between the
workers through Redis (cluster mode), so `--workers` above 1 needs `--redis-url`.

Workers are forked once the parent has imported the server (as gunicorn does): they start in well
under a second whatever the load, share the imported code's pages, and die with the parent
(PR_SET_PDEATHSIG), so a parent killed with SIGKILL leaves none behind. Fork happens before any
thread or event loop exists in the parent."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable

log = logging.getLogger(__name__)

RESTART_BACKOFF = (0.5, 1.0, 2.0, 5.0, 10.0)  # seconds before restarting a worker that died, by streak
HEALTHY_AFTER = 30.0  # a worker that ran this long resets its restart streak
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: the kernel sends this process SIGTERM when its parent dies (it then drains)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: a killed parent leaves its workers running
        pass


def _exit_status(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code  # killed by signal n: 128 + n, as a shell says


def _fork(index: int, run: Callable[[int], None]) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})  # blocked in the parent only
        for sig in FORWARDED:
            signal.signal(sig, signal.SIG_DFL)
        _die_with_parent()
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)
        run(index)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def supervise(run: Callable[[int], None], workers: int) -> int:
    """Run `run(index)` in `workers` forked processes until a signal stops them; return the worst
    exit status among them (0 when all stopped cleanly)."""
    stopping = False
    procs: dict[int, int] = {}  # pid -> index
    started: dict[int, float] = {}
    streak = dict.fromkeys(range(workers), 0)
    restart_at: dict[int, float] = {}
    worst = 0

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    for sig in FORWARDED:
        signal.signal(sig, forward)
    # The parent sleeps until a worker exits (SIGCHLD, kept pending while blocked, so none is
    # missed between two waits) or a restart is due, rather than polling: an idle cluster's parent
    # used to wake up 20 times a second.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    try:
        for index in range(workers):
            procs[_fork(index, run)] = index
            started[index] = time.monotonic()
        while procs or (restart_at and not stopping):
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid, status = 0, 0
            if pid == 0:
                due = min(restart_at.values(), default=time.monotonic() + 1.0) - time.monotonic()
                signal.sigtimedwait({signal.SIGCHLD}, min(1.0, max(0.0, due)))
            elif pid in procs:
                index = procs.pop(pid)
                code = _exit_status(status)
                if stopping:
                    worst = max(worst, code)
                else:
                    # Died on its own: a crash. Restart it after a growing pause; the others serve.
                    ran = time.monotonic() - started[index]
                    streak[index] = 0 if ran > HEALTHY_AFTER else streak[index] + 1
                    pause = RESTART_BACKOFF[min(streak[index], len(RESTART_BACKOFF) - 1)]
                    log.error(
                        "worker %d exited with %d after %.0f s; restarting in %g s", index, code, ran, pause
                    )
                    restart_at[index] = time.monotonic() + pause
            if stopping:
                restart_at.clear()
            for index, at in list(restart_at.items()):
                if time.monotonic() >= at:
                    del restart_at[index]
                    procs[_fork(index, run)] = index
                    started[index] = time.monotonic()
    finally:
        for pid in procs:  # the parent failing: no worker outlives it
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return worst
