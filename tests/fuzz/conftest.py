"""The fuzz tests' settings profiles and their server.

Profiles: `ci` (the default) is derandomized, so CI runs the same examples every time, and sized
to keep all fuzz tests within about a minute; `fuzz` (`make fuzz`, or HYPOTHESIS_PROFILE=fuzz)
draws thousands of fresh examples per test and keeps failures in the example database.

Hypothesis drives synchronous test functions; the server runs on its own event loop in a thread
for the whole module, and each example runs one coroutine on that loop (`LoopServer.run`). So one
server serves hundreds of examples, and the examples see the server exactly as clients would.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.conftest import Server, running_server

T = TypeVar("T")

_SLOW = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
# No shrinking in CI: a failure that is a missing ack costs seconds per attempt, and shrinking
# it would take minutes; CI reports the example as drawn, `make fuzz` shrinks it.
settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "30")),
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=_SLOW,
    phases=[Phase.explicit, Phase.generate],
    print_blob=True,
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "2000")),
    deadline=None,
    suppress_health_check=_SLOW,
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


class Errors(logging.Handler):
    """Collects every ERROR the server logs (a traceback in the log is a crash, even when the
    client got a polite answer)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def since(self, mark: int) -> list[str]:
        return [
            f"{r.name}: {r.getMessage()}"
            + (f" ({r.exc_info[0].__name__}: {r.exc_info[1]})" if r.exc_info and r.exc_info[1] else "")
            for r in self.records[mark:]
        ]


class LoopServer:
    """A real server on loopback, on an event loop in a thread of its own."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-server", daemon=True)
        self._thread.start()
        # The garbage budget (20 undecodable packets per 10 s per connection) would close the
        # fuzzer's connections, which send nothing else for minutes: lifted, like the rates the
        # socket tests lift (tests/test_socket_garbage.py tests the budget itself).
        self._cm = running_server(data_dir, bad_packets=0)
        self.server: Server = self.run(self._cm.__aenter__())
        self.errors = Errors()
        logging.getLogger().addHandler(self.errors)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        logging.getLogger().removeHandler(self.errors)
        try:
            self.run(self._cm.__aexit__(None, None, None))
        finally:
            self.run(_cancel_all())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()


async def _cancel_all() -> None:
    """Cancel what the clients and server left running (engine.io pings), so closing the loop
    destroys no pending task."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture(scope="module")
def loop_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopServer]:
    srv = LoopServer(tmp_path_factory.mktemp("fuzz") / "data")
    try:
        yield srv
    finally:
        srv.close()
