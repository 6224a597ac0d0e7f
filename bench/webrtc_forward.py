"""Quick measure of the server's CPU per viewer when forwarding encoded frames (signaling/webrtc).

Three processes on loopback: the server (``Media`` behind a tiny HTTP signaling endpoint), one aiortc
publisher (synthetic moving video, encoded once by aiortc's VP8 encoder, plus a tone), and N aiortc
viewers that count frames without decoding (their receivers are tapped too). The server's CPU time
is read from /proc over a window with the publisher alone and with N viewers.

    .venv/bin/python bench/webrtc_forward.py --viewers 10 30 --seconds 10

Not the issue's full benchmark (no stock MediaRelay comparison, no pinning to cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def serve(port: int) -> None:
    from aiohttp import web

    from signaling.webrtc import Media

    offers: dict[str, asyncio.Queue] = {}

    async def on_offer(viewer_id: str, sdp: str) -> None:
        offers.setdefault(viewer_id, asyncio.Queue()).put_nowait(sdp)

    media = Media(on_offer=on_offer)

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        op = request.match_info["op"]
        if op == "publish":
            return web.json_response({"sdp": await media.publish(body["id"], body["sdp"])})
        if op == "view":
            return web.json_response({"sdp": await media.view(body["id"])})
        if op == "answer":
            await media.answer(body["id"], body["sdp"])
            return web.json_response({})
        if op == "reoffer":
            sdp = await offers.setdefault(body["id"], asyncio.Queue()).get()
            return web.json_response({"sdp": sdp})
        if op == "reset":
            for viewer_id in list(media._viewers):
                await media.leave(viewer_id)
            return web.json_response({})
        if op == "cpu":
            t = os.times()
            return web.json_response(
                {"cpu": t.user + t.system, "wall": time.monotonic(), "stats": media.stats()}
            )
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_post("/{op}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


async def post(url: str, op: str, **body: object) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.post(f"{url}/{op}", json=body) as response:
        response.raise_for_status()
        return await response.json()


async def publish(url: str) -> None:
    import numpy as np
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import VideoStreamTrack
    from av import VideoFrame

    from tests.webrtc.helpers import ToneAudio, no_stun

    class Moving(VideoStreamTrack):
        """720p, a noisy texture sliding sideways: real work for the encoder, a real bitrate."""

        def __init__(self) -> None:
            super().__init__()
            rng = np.random.default_rng(1)
            self.texture = rng.integers(16, 235, (720 * 3 // 2, 1280 + 1280), dtype=np.uint8)
            self.x = 0

        async def recv(self) -> VideoFrame:
            pts, time_base = await self.next_timestamp()
            self.x = (self.x + 4) % 1280
            frame = VideoFrame.from_ndarray(
                np.ascontiguousarray(self.texture[:, self.x : self.x + 1280]), format="yuv420p"
            )
            frame.pts = pts
            frame.time_base = time_base
            return frame

    pc = RTCPeerConnection(no_stun())
    pc.addTrack(ToneAudio())
    pc.addTrack(Moving())
    await pc.setLocalDescription(await pc.createOffer())
    answer = await post(url, "publish", id="bench", sdp=pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    await asyncio.Event().wait()


async def view(url: str, count: int) -> None:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from signaling.webrtc.forward import install_tap
    from tests.webrtc.helpers import no_stun

    async def one(i: int) -> None:
        pc = RTCPeerConnection(no_stun())
        offer = await post(url, "view", id=f"v{i}")
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        for transceiver in pc.getTransceivers():  # count frames, never decode
            install_tap(transceiver.receiver, transceiver.kind)
        await pc.setLocalDescription(await pc.createAnswer())
        await post(url, "answer", id=f"v{i}", sdp=pc.localDescription.sdp)
        await asyncio.Event().wait()

    await asyncio.gather(*(one(i) for i in range(count)))


async def measure(url: str, seconds: float) -> tuple[float, dict]:
    start = await post(url, "cpu")
    await asyncio.sleep(seconds)
    end = await post(url, "cpu")
    return (end["cpu"] - start["cpu"]) / (end["wall"] - start["wall"]), end["stats"]


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, nargs="+", default=[10, 30])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--role", choices=["server", "publisher", "viewers"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "server":
        return await serve(args.port)
    if args.role == "publisher":
        return await publish(args.url)
    if args.role == "viewers":
        return await view(args.url, args.count)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    me = [sys.executable, __file__]
    procs = [subprocess.Popen([*me, "--role", "server", "--port", str(port)])]
    try:
        for _ in range(100):
            try:
                await post(url, "cpu")
                break
            except Exception:
                await asyncio.sleep(0.1)
        procs.append(subprocess.Popen([*me, "--role", "publisher", "--url", url]))
        await asyncio.sleep(3)
        base, stats = await measure(url, args.seconds)
        print(f"publisher only: server {base:.3f} core; {json.dumps(stats['tracks'])}")
        for n in args.viewers:
            viewers = subprocess.Popen([*me, "--role", "viewers", "--url", url, "--count", str(n)])
            await asyncio.sleep(3 + n * 0.1)
            cpu, stats = await measure(url, args.seconds)
            sent = sum(v.get("bench:camera", 0) for v in stats["viewers"].values())
            print(
                f"{n} viewers ({len(stats['viewers'])} connected, {sent} video frames handed to senders): "
                f"server {cpu:.3f} core, {(cpu - base) / n:.4f} core per viewer"
            )
            viewers.terminate()
            viewers.wait()
            await post(url, "reset")
            await asyncio.sleep(2)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
