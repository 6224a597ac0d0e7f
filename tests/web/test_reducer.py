"""The browser's reducer agrees with the server's fold: the same recorded events, folded by both,
give the same state, for each audience, from the start and from a snapshot taken midway."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ..recorder.test_replay_e2e import _json, run_script

ROOT = Path(__file__).resolve().parents[2]
FOLD_CLI = ROOT / "web" / "dist" / "fold-cli.mjs"


def js_fold(**job) -> dict:
    out = subprocess.run(
        ["node", str(FOLD_CLI)], input=json.dumps(job), capture_output=True, text=True, check=True, timeout=30
    )
    return json.loads(out.stdout)


def comparable(view: dict) -> dict:
    view = dict(view)
    view.pop("t"), view.pop("paused", None), view.pop("seq")
    return view


@pytest.mark.skipif(not FOLD_CLI.exists(), reason="web bundle not built (make builds it)")
async def test_browser_reducer_agrees_with_the_server_fold(server):
    info, _trainer, _observer, _seen = await run_script(server)
    rid = info["id"]
    admin = server.admin["Authorization"].split()[1]
    manifest = await _json(server, f"/api/recordings/{rid}", admin)
    end = manifest["duration_ms"]
    moments = sorted({0, end // 4, end // 2, (3 * end) // 4, end})
    for audience in ("learner", "trainer"):
        events = (await _json(server, f"/api/recordings/{rid}/events?audience={audience}", admin))["events"]
        assert len(events) >= 40
        previous = None
        for t in moments:
            server_view = await _json(server, f"/api/recordings/{rid}/state?t={t}&audience={audience}", admin)
            upto = [e for e in events if e["t"] <= t]
            from_start = js_fold(
                view=None,
                id=rid,
                title=manifest["title"],
                recording="on",
                viewer=None,
                audience=audience,
                events=upto,
            )
            assert comparable(from_start) == comparable(server_view), (audience, t)
            if previous is not None:
                t0, snapshot = previous
                later = [e for e in events if t0 < e["t"] <= t]
                from_snapshot = js_fold(view=snapshot, viewer=None, audience=audience, events=later)
                assert comparable(from_snapshot) == comparable(server_view), (audience, "from", t0, t)
            previous = (t, server_view)
