"""`python -m classroom serve` logs every request at INFO without the secrets some of them carry in
the query string (link tokens, the admin key, download tokens)."""

from __future__ import annotations

import asyncio
import signal

import aiohttp

from .served import Served

ADMIN = "admin-key-that-must-not-be-logged"


async def test_access_log_redacts_tokens_and_keys(tmp_path):
    served = await Served(
        tmp_path, via_env=True, env={"CLASSCAST_ADMIN_KEY": ADMIN, "LOG_LEVEL": "INFO"}
    ).start()
    proc = served.proc
    base = served.base
    try:
        link = served.link
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
        await served.stop(signal.SIGINT, 20)
    log += served.stderr.decode()
    access = [line for line in log.splitlines() if "aiohttp.access" in line]
    assert len(access) == len(requests) + 1, log
    assert "INFO" in access[0] and f"/s/{session_id}/trainer?token=[redacted]" in log
    assert "/replay?t=5&token=[redacted]" in log
    assert "password=[redacted]&sig=[redacted]" in log
    for secret in secrets:
        assert secret not in log, secret
