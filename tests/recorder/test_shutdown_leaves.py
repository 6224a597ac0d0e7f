"""Stopping a server while clients are connected, or just leaving: every participant's
`participant.left` reaches the log before it closes, every time."""

from __future__ import annotations

from pathlib import Path

import pytest

from recorder.replay import Recording

from ..conftest import running_server
from .test_replay_api import recorded_session


def _left_and_joined(data_dir: Path, session_id: str) -> tuple[set[str], set[str]]:
    events = Recording(data_dir / "recordings", session_id).window(0, 2**62, "trainer")
    joined = {e["data"]["id"] for e in events if e["type"] == "participant.joined"}
    left = {e["data"]["id"] for e in events if e["type"] == "participant.left"}
    return joined, left


@pytest.mark.parametrize("close_clients_first", [True, False])
async def test_every_leave_is_recorded_at_shutdown(tmp_path: Path, close_clients_first: bool):
    data_dir = tmp_path / "data"
    async with running_server(data_dir) as server:
        ended, *_ = await recorded_session(server, "Ended")
        live, trainer, ada, bob = await recorded_session(server, "Live", end=False)
        if not close_clients_first:
            server._clients.clear()  # the server stops under them; they are closed afterwards
            stay = (trainer, ada, bob)
        else:
            stay = ()
    for c in stay:
        await c.close()
    for info in (ended, live):
        joined, left = _left_and_joined(data_dir, info["id"])
        assert len(joined) == 3 and left == joined, (info["title"], joined, left)
