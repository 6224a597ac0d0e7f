"""Quick measure of the server's CPU per viewer when forwarding encoded frames (signaling/webrtc).

Three processes on loopback: the server (``Media`` behind a tiny HTTP signaling endpoint), one aiortc
publisher (synthetic moving video, encoded once by aiortc's VP8 encoder, plus a tone), and N aiortc
viewers that count frames without decoding (their receivers are tapped too). The server's CPU time
is read from /proc over a window with the publisher alone and with N viewers.

    BENCH_SIZE=1280x720 .venv/bin/python bench/webrtc_forward.py --viewers 10 30 --seconds 10

The full benchmark (pinned cores, stock MediaRelay peer, loss, late joiners) is `bench/webrtc/harness.py`,
part of `make bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


WIDTH, HEIGHT = (int(v) for v in os.environ.get("BENCH_SIZE", "1280x720").split("x"))


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
            connected = sum(v.pc.connectionState == "connected" for v in media._viewers.values())
            return web.json_response(
                {
                    "cpu": t.user + t.system,
                    "wall": time.monotonic(),
                    "stats": media.stats(),
                    "connected": connected,
                }
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
        """A textured pattern sliding sideways: real work for the encoder, a real bitrate."""

        def __init__(self) -> None:
            super().__init__()
            # Smooth stripes with some texture: compressible like a camera picture, unlike pure noise
            # (whose key frames make the encoder's rate control drop frames).
            rng = np.random.default_rng(1)
            x = np.arange(WIDTH * 2)
            rows = np.arange(HEIGHT * 3 // 2)[:, None]
            smooth = 128 + 60 * np.sin(x / 37.0) * np.cos(rows / 23.0)
            self.texture = (smooth + rng.integers(-6, 6, smooth.shape)).clip(16, 235).astype(np.uint8)
            self.x = 0

        async def recv(self) -> VideoFrame:
            pts, time_base = await self.next_timestamp()
            self.x = (self.x + 4) % WIDTH
            frame = VideoFrame.from_ndarray(
                np.ascontiguousarray(self.texture[:, self.x : self.x + WIDTH]), format="yuv420p"
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


def frames(reply: dict) -> int:
    return reply["stats"]["tracks"].get("bench:camera", {}).get("frames", 0)


def size(reply: dict) -> int:
    return reply["stats"]["tracks"].get("bench:camera", {}).get("bytes", 0)


def sent(stats: dict) -> int:
    return sum(v.get("bench:camera", 0) for v in stats["viewers"].values())


async def measure(url: str, seconds: float) -> tuple[float, dict, int, int]:
    """Server CPU (cores), its stats, video frames published and handed to senders in the window."""
    start = await post(url, "cpu")
    await asyncio.sleep(seconds)
    end = await post(url, "cpu")
    cpu = (end["cpu"] - start["cpu"]) / (end["wall"] - start["wall"])
    published = (
        end["stats"]["tracks"]["bench:camera"]["frames"] - start["stats"]["tracks"]["bench:camera"]["frames"]
    )
    kbps = (size(end) - size(start)) * 8 / 1000 / (end["wall"] - start["wall"])
    return cpu, end["stats"] | {"kbps": kbps}, published, sent(end["stats"]) - sent(start["stats"])


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
        while frames(await post(url, "cpu")) < 30:
            await asyncio.sleep(0.2)
        base, stats, published, _ = await measure(url, args.seconds)
        print(
            f"publisher only: server {base:.3f} core, {published / args.seconds:.1f} video frames/s, "
            f"{stats['kbps']:.0f} kbit/s"
        )
        for n in args.viewers:
            viewers = subprocess.Popen([*me, "--role", "viewers", "--url", url, "--count", str(n)])
            for _ in range(600):
                if (await post(url, "cpu"))["connected"] == n:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(2)
            cpu, stats, published, handed = await measure(url, args.seconds)
            print(
                f"{n} viewers: server {cpu:.3f} core, {(cpu - base) / n:.4f} core per viewer; "
                f"per viewer {handed / n:.0f} of {published} video frames handed to its sender "
                f"({published / args.seconds:.1f} frames/s, {stats['kbps']:.0f} kbit/s); "
                f"key frames requested {stats['tracks']['bench:camera']['keyframes_requested']}"
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
