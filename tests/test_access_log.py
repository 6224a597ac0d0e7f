"""`python -m classroom serve` logs every request at INFO without the secrets some of them carry in
the query string (link tokens, the admin key, download tokens)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys

import aiohttp

from .conftest import free_port

ADMIN = "admin-key-that-must-not-be-logged"


async def test_access_log_redacts_tokens_and_keys(tmp_path):
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "classroom",
        "serve",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={
            **os.environ,
            "PORT": str(port),
            "DATA_DIR": str(tmp_path),
            "CLASSCAST_ADMIN_KEY": ADMIN,
            "LOG_LEVEL": "INFO",
        },
    )
    base = f"http://127.0.0.1:{port}"
    try:
        out = ""
        while "Trainer link" not in out:
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert line, f"server exited early: {out}"
            out += line.decode()
        link = re.search(r"Trainer link for .*: (\S+)", out).group(1)
        token = link.split("token=")[1]
        session_id = link.split("/s/")[1].split("/")[0]
        secrets = [ADMIN, token, "p4ss-w0rd", "sig-value", "tail-after-encoded-amp"]
        async with aiohttp.ClientSession() as http:
            requests = [
                f"{base}/api/sessions?token={ADMIN}",
                f"{base}/s/{session_id}/trainer?token={token}",
                f"{base}/s/{session_id}/replay?t=5&token={token}",
                f"{base}/api/recordings/{session_id}/export/chat.txt?token={token}",
                f"{base}/api/sessions?key={ADMIN}&admin_key={ADMIN}&password=p4ss-w0rd&sig=sig-value",
                f"{base}/api/sessions?%74oken={ADMIN}",
                f"{base}/api/sessions?token=x%26tail-after-encoded-amp",
            ]
            for url in requests:
                async with http.get(url, headers={"Referer": f"{base}/s/x/join?token={token}"}) as r:
                    await r.read()
            async with http.get(f"{base}/healthz", headers={"Authorization": f"Bearer {ADMIN}"}) as r:
                assert r.status == 200
        log = ""
        while log.count('"GET ') < len(requests) + 1:
            line = await asyncio.wait_for(proc.stderr.readline(), 10)
            assert line, log
            log += line.decode()
    finally:
        proc.send_signal(signal.SIGINT)
        rest = await asyncio.wait_for(proc.communicate(), 20)
    log += rest[1].decode()
    access = [line for line in log.splitlines() if "aiohttp.access" in line]
    assert len(access) == len(requests) + 1, log
    assert "INFO" in access[0] and f"/s/{session_id}/trainer?token=[redacted]" in log
    assert "/replay?t=5&token=[redacted]" in log
    assert "password=[redacted]&sig=[redacted]" in log
    for secret in secrets:
        assert secret not in log, secret
