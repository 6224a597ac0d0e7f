"""Kill the server with SIGKILL mid-session; after a restart every acknowledged message, vote,
question and stroke is there, live and in the replay."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import aiohttp

from classroom.client import ClassroomClient, ClassroomError

from ..conftest import ADMIN_KEY, barrier
from ..served import Served


async def test_sigkill_loses_nothing_acknowledged(tmp_path):
    served = await Served(
        tmp_path, "--admin-key", ADMIN_KEY, env={"LOG_LEVEL": "WARNING"}, stderr=False
    ).start()
    base = served.base
    clients: list[ClassroomClient] = []
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{base}/api/sessions",
                json={"title": "Crash"},
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            ) as r,
        ):
            info = await r.json()
        trainer = ClassroomClient(info["trainer_url"], "T")
        clients.append(trainer)
        await trainer.connect()
        await trainer.request("session.start")
        poll = await trainer.request("poll.open", question="Q", options=["a", "b", "c"])
        await trainer.request("wb.permit", learners_can_draw=True)
        learners = [ClassroomClient(info["join_url"], f"L{i}") for i in range(4)]
        clients.extend(learners)
        await asyncio.gather(*(c.connect() for c in learners))

        acked: dict[str, list] = {"chat": [], "votes": [], "questions": [], "strokes": []}
        attempts: dict[str, list[list[int]]] = {}

        async def busy(i: int, c: ClassroomClient) -> None:
            # Keep going until the server dies under us; record only what was acknowledged.
            n = 0
            while True:
                n += 1
                try:
                    if n % 4 == 1:
                        await c.request("chat.send", text=f"L{i} says {n}")
                        acked["chat"].append(f"L{i} says {n}")
                    elif n % 4 == 2:
                        # A vote in flight when the server dies may land without its ack: note the try.
                        attempts.setdefault(c.you["id"], []).append([n % 3])
                        await c.request("poll.vote", poll_id=poll["id"], choices=[n % 3])
                        acked["votes"].append((c.you["id"], len(attempts[c.you["id"]]) - 1))
                    elif n % 4 == 3:
                        ack = await c.request("wb.shape", kind="line", x1=i, y1=n % 400, x2=i + 9, y2=9)
                        acked["strokes"].append(ack["id"])
                    else:
                        ack = await c.request("qa.ask", text=f"Q{n} from L{i}")
                        acked["questions"].append(ack["id"])
                except (ClassroomError, Exception):
                    await asyncio.sleep(0.05)  # rate limited or disconnected: try again
                if n > 400:
                    return

        tasks = [asyncio.create_task(busy(i, c)) for i, c in enumerate(learners)]
        await asyncio.sleep(1.5)
        await served.kill()
        await asyncio.sleep(0.3)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert acked["chat"] and acked["votes"] and acked["strokes"]

        await served.start()
        # The clients reconnect by themselves with their participant tokens.
        for c in clients:
            await c.wait_until(lambda c=c: c.joins >= 2, timeout=20)
        await barrier(trainer, *learners)

        view = trainer.view()
        texts = {m["text"] for m in view["chat"]}
        assert set(acked["chat"]) <= texts
        last_acked = dict(acked["votes"])  # each learner's votes were acknowledged in order
        live_votes = view["polls"][0]["votes"]
        for pid, i in last_acked.items():
            # The last acknowledged vote stands, or a later try that landed as the server died.
            assert live_votes[pid] in attempts[pid][i:]
        assert set(acked["questions"]) <= {q["id"] for q in view["questions"]}
        elements = {e["id"] for e in view["board"]["pages"][0]["elements"]}
        assert set(acked["strokes"]) <= elements
        # Same identities, nobody duplicated.
        assert sorted(p["name"] for p in view["participants"]) == ["L0", "L1", "L2", "L3", "T"]
        # Learners folded the same state as a fresh snapshot gives them.
        assert {m["text"] for m in learners[0].view()["chat"]} == texts

        await trainer.request("session.end")
        async with aiohttp.ClientSession() as http:
            token = info["replay_url"].split("token=")[1]
            headers = {"Authorization": f"Bearer {token}"}
            async with http.get(f"{base}/api/recordings/{info['id']}", headers=headers) as r:
                manifest = await r.json()
            async with http.get(
                f"{base}/api/recordings/{info['id']}/state?t={manifest['duration_ms']}", headers=headers
            ) as r:
                replay = await r.json()
        assert set(acked["chat"]) <= {m["text"] for m in replay["chat"]}
        assert set(acked["questions"]) <= {q["id"] for q in replay["questions"]}
        assert set(acked["strokes"]) <= {e["id"] for e in replay["board"]["pages"][0]["elements"]}
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                await c.close()
        if served.running:
            await served.stop(signal.SIGINT, 20)
