"""The command line: `python -m classroom create` and `serve`, as a newcomer runs them."""

from __future__ import annotations

import re
import signal

from classroom.client import ClassroomClient

from .served import Served, run_classroom


async def test_create_prints_three_links(tmp_path):
    code, out, _ = await run_classroom(
        "create", "Algebra", "--data-dir", str(tmp_path), "--public-url", "https://cc.example"
    )
    assert code == 0
    assert re.search(r"trainer: https://cc\.example/s/[\w-]+/trainer\?token=\S+", out)
    assert re.search(r"learner: https://cc\.example/s/[\w-]+/join\?token=\S+", out)
    assert re.search(r"replay: +https://cc\.example/s/[\w-]+/replay\?token=\S+", out)
    code, _, err = await run_classroom("create", "   ", "--data-dir", str(tmp_path))
    assert code != 0 and "title" in err


async def test_serve_prints_url_and_a_working_trainer_link(tmp_path):
    served = await Served(tmp_path, via_env=True, env={"CLASSCAST_ADMIN_KEY": ""}, stderr=False).start()
    try:
        text = served.out
        assert f"http://127.0.0.1:{served.port}" in text
        link = served.link
        assert "Admin key" in text or (tmp_path / "admin.key").exists()
        client = ClassroomClient(link)
        await client.connect()
        try:
            assert client.you["role"] == "trainer"
            await client.request("session.start")
        finally:
            await client.close()
    finally:
        assert (await served.stop(signal.SIGINT, 20))[0] == 0
