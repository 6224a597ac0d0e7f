"""`python -m classroom export` writes the same files the HTTP exports serve."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sys


async def _export(data_dir, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "classroom",
        "export",
        *args,
        "--data-dir",
        str(data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(os.environ),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_export_every_format(server, tmp_path):
    data_dir = tmp_path / "data"
    info, trainer = await server.live_session("Exported")
    ada = await server.client(info["join_url"], "Ada")
    await ada.request("chat.send", text="first")
    poll = await trainer.request("poll.open", question="Best?", options=["x", "y"])
    await ada.request("poll.vote", poll_id=poll["id"], choices=[1])
    await ada.request("qa.ask", text="How?")
    await trainer.request("session.end")
    out = tmp_path / "out"

    code, _, stderr = await _export(data_dir, info["id"], "--format", "json", "--out", str(out))
    assert code == 0, stderr
    doc = json.loads((out / f"{info['id']}-recording.json").read_text())
    assert [e["seq"] for e in doc["events"]] == list(range(1, len(doc["events"]) + 1))
    assert "reading" in stderr and "ev" in stderr  # the progress bar
    async with server.http.get(
        f"{server.base_url}/api/recordings/{info['id']}/export/recording.json", headers=server.admin
    ) as r:
        assert (await r.json())["events"] == doc["events"]

    code, _stdout, _ = await _export(data_dir, info["id"], "--format", "csv", "--out", str(out))
    assert code == 0
    polls = list(csv.DictReader((out / f"{info['id']}-polls.csv").open()))
    assert [(r["option"], r["votes"]) for r in polls] == [("x", "0"), ("y", "1")]
    questions = list(csv.DictReader((out / f"{info['id']}-questions.csv").open()))
    assert [q["question"] for q in questions] == ["How?"]
    code, _, _ = await _export(data_dir, info["id"], "--format", "vtt", "--out", str(out))
    assert (out / f"{info['id']}-chat.vtt").read_text().startswith("WEBVTT")

    code, _, stderr = await _export(data_dir, "../../etc", "--format", "json", "--out", str(out))
    assert code != 0 and "no recording" in stderr
