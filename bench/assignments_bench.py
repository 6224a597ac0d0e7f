"""Replay assignments at their bounds: one recorded session with 50 assignments of 500 assignees
(25,000, the most a session may have), 20 of each assignment's assignees having reported progress.
Times the routes over loopback against a real server in this process: creating an assignment of
500, the trainer's list as JSON and CSV (statuses derived from the report, a signed link per
assignee), and one assignee's own status (what the replay page asks for).

    python bench/assignments_bench.py
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from classroom.client import ClassroomClient

KEY = "bench-admin-key"
ASSIGNMENTS, ASSIGNEES, REPORTING = 50, 500, 20


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = _port()
        # The server as users run it, in its own process (the bench measures it, not itself).
        server = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "classroom", "serve", "--port", str(port), "--data-dir", tmp),
            *("--admin-key", KEY, "--idle-timeout", "3600", "--log-level", "WARNING"),
            cwd=str(Path(__file__).resolve().parents[1]),
            stdout=asyncio.subprocess.PIPE,
        )
        assert server.stdout is not None
        while b"Learner link" not in (line := await server.stdout.readline()):  # printed once it listens
            if not line:
                raise SystemExit("the server did not start")
        base = f"http://127.0.0.1:{port}"
        admin = {"Authorization": f"Bearer {KEY}"}
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{base}/api/sessions", json={"title": "Bench"}, headers=admin) as r:
                    info = await r.json()
                async with ClassroomClient(info["trainer_url"], name="Tess") as trainer:
                    await trainer.request("session.start")
                    await trainer.request("poll.open", question="q", options=["a", "b"], correct=[1])
                    await asyncio.sleep(1.0)  # a recording of a second
                    await trainer.request("session.end")
                rid = info["id"]
                deadline = (datetime.now(UTC) + timedelta(days=3)).isoformat()
                posts = []
                for k in range(ASSIGNMENTS):
                    people = [
                        {"name": f"L{k}-{i}", "email": f"l{k}.{i}@example.org"} for i in range(ASSIGNEES)
                    ]
                    t0 = time.perf_counter()
                    async with http.post(
                        f"{base}/api/sessions/{rid}/assignments",
                        json={"deadline": deadline, "assignees": people},
                        headers=admin,
                    ) as r:
                        assert r.status == 201, await r.text()
                        made = await r.json()
                    posts.append(time.perf_counter() - t0)
                    for a in made["assignees"][:REPORTING]:
                        auth = {"Authorization": f"Bearer {a['link'].split('token=')[1]}"}
                        path = f"{base}/api/recordings/{rid}/viewers/{a['id']}/progress"
                        async with http.post(path, json={"from": 0, "to": 500}, headers=auth) as r:
                            assert r.status == 204
                print(f"POST {ASSIGNEES} assignees: median {statistics.median(posts) * 1000:.0f} ms")
                for fmt in ("json", "csv"):
                    times = []
                    for _ in range(3):
                        t0 = time.perf_counter()
                        async with http.get(
                            f"{base}/api/sessions/{rid}/assignments?format={fmt}", headers=admin
                        ) as r:
                            body = await r.read()
                        times.append(time.perf_counter() - t0)
                    n = ASSIGNMENTS * ASSIGNEES
                    best = min(times) * 1000
                    print(f"GET {fmt}: {n} assignees, {len(body) / 1e6:.1f} MB, best of 3 {best:.0f} ms")
                auth = {"Authorization": f"Bearer {made['assignees'][0]['link'].split('token=')[1]}"}
                times = []
                for _ in range(10):
                    t0 = time.perf_counter()
                    async with http.get(f"{base}/api/recordings/{rid}/assignment", headers=auth) as r:
                        assert r.status == 200
                    times.append(time.perf_counter() - t0)
                print(f"GET one assignee's status: median {statistics.median(times) * 1000:.0f} ms")
        finally:
            server.terminate()
            await server.wait()


if __name__ == "__main__":
    asyncio.run(main())
