"""Media forwarding benchmark: one 720p 30 fps VP8 publisher to N viewers, forwarded vs re-encoded.

Processes on loopback, started by :func:`run_plan`:

- the server, pinned to core 0 (``taskset``): either Classcast's ``signaling.webrtc.Media``
  ("forward": encoded frames forwarded as they are) or aiortc's stock path ("relay":
  ``aiortc.contrib.media.MediaRelay``, the publisher's video decoded once and encoded per viewer),
  behind a tiny HTTP signaling endpoint;
- the publisher, pinned to the other cores: a clip encoded once with libvpx at start-up (1280x720,
  30 fps, 1.5 Mbit/s, one key frame), its packets replayed in a loop at 30 fps, so publishing costs
  little; a PLI from the server restarts the loop at its key frame;
- the viewers, spread round robin over several processes (``Plan.viewer_procs``) pinned to the other
  cores: aiortc peers that decrypt each SRTP packet where aioice hands the datagram over, read its
  RTP header, count it and check its sequence number, and do nothing more (no per-packet task
  wake-up, no jitter buffer, no depacketising, no decoding), so a core of viewers holds many and the
  server is what is measured;
- this driver (polls only).

Per N: the server's CPU over a window (core-seconds per second, from ``os.times`` in the server),
minus the publisher-only baseline, divided by N; RTP packets lost over the window (expected from the
sequence numbers minus received); frames per second per viewer; then one late joiner, timed from its
connection state turning "connected" to the last packet of its first key frame. After the Ns asked
for, N goes up by half again until the server's core or the viewers' saturate, packets are lost,
``max_n`` is reached or three quarters of the plan's time budget are spent; the stock path then runs
at its few Ns (it saturates a core at a handful of viewers).

    .venv/bin/python bench/webrtc/harness.py --mode quick --json /tmp/media.json   # table on stdout
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import fractions
import itertools
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.plans import plan_from  # noqa: E402

WIDTH, HEIGHT, FPS = 1280, 720, 30
BITRATE = 1_500_000
CLIP_FRAMES = 150  # 5 s, one key frame at the start
TRACK = "bench:camera"
PUBLISHER_NICE = -5  # see publish()
SERVER_CORE = "0"
# The publisher and the viewer processes: every core but the server's (taskset's list form).
CLIENT_CORES = f"1-{(os.cpu_count() or 2) - 1}" if (os.cpu_count() or 1) > 2 else "1"


@dataclass
class Plan:
    forward_ns: list[int]
    relay_ns: list[int]
    rounds: int = 3
    seconds: float = 4.0
    warmup: float = 2.0
    late_joiners: bool = True
    viewer_procs: int = 4  # viewer processes, the viewers spread over them round robin
    scale: bool = True  # past forward_ns, raise N until something saturates or loses packets ...
    max_n: int = 400  # ... up to this N ...
    budget: float = 900.0  # ... while the run is within this many seconds (it then stops scaling)
    extra: dict[str, Any] = field(default_factory=dict)


PLANS = {
    "tiny": Plan(
        forward_ns=[2], relay_ns=[1], rounds=1, seconds=2.0, warmup=1.0, viewer_procs=2, scale=False
    ),
    "quick": Plan(forward_ns=[10, 50, 100], relay_ns=[2, 4], rounds=3, seconds=4.0, budget=600.0),
    "full": Plan(
        forward_ns=[10, 50, 100, 150, 200],
        relay_ns=[1, 2, 4, 6],
        rounds=5,
        seconds=8.0,
        viewer_procs=8,
        max_n=800,
        budget=2400.0,
    ),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rtc_config() -> Any:
    from aiortc import RTCConfiguration

    return RTCConfiguration(iceServers=[])  # loopback: host candidates only


async def post(url: str, op: str, timeout: float = 120.0, **body: object) -> dict:
    import aiohttp

    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
        http.post(f"{url}/{op}", json=body) as response,
    ):
        response.raise_for_status()
        return await response.json()


async def http_serve(port: int, ops: dict[str, Any]) -> None:
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        op = ops.get(request.match_info["op"])
        if op is None:
            raise web.HTTPNotFound()
        return web.json_response(await op(**(await request.json())))

    app = web.Application()
    app.router.add_post("/{op}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def cpu_now() -> dict[str, float]:
    t = os.times()
    return {"cpu": t.user + t.system, "wall": time.monotonic()}


# -- server ------------------------------------------------------------------------------------------
class ForwardServer:
    """Classcast's path: ``Media`` forwards the publisher's encoded frames."""

    def __init__(self) -> None:
        from signaling.webrtc import Media

        async def on_offer(viewer_id: str, sdp: str) -> None:  # no renegotiation in this benchmark
            return None

        self.media = Media(on_offer=on_offer)

    async def publish(self, sdp: str) -> str:
        return await self.media.publish("bench", sdp)

    async def view(self, viewer_id: str) -> str:
        return await self.media.view(viewer_id)

    async def answer(self, viewer_id: str, sdp: str) -> None:
        await self.media.answer(viewer_id, sdp)

    async def leave(self, viewer_id: str) -> None:
        await self.media.leave(viewer_id)

    def viewers(self) -> list[str]:
        return list(self.media.stats()["viewers"])

    def ready(self) -> bool:
        return self.stats()["published"] >= FPS

    def stats(self) -> dict[str, Any]:
        stats = self.media.stats()
        track = stats["tracks"].get(TRACK, {})
        return {
            "published": track.get("frames", 0),
            "sent": sum(v.get(TRACK, 0) for v in stats["viewers"].values()),
            "keyframes_requested": track.get("keyframes_requested", 0),
        }


class RelayServer:
    """aiortc's stock path: ``MediaRelay`` hands each viewer's sender decoded frames to encode."""

    def __init__(self) -> None:
        from aiortc.contrib.media import MediaRelay

        self.relay = MediaRelay()
        self.source: asyncio.Future = asyncio.get_running_loop().create_future()
        self.pcs: dict[str, Any] = {}
        self.publisher: Any = None

    async def publish(self, sdp: str) -> str:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        pc = self.publisher = RTCPeerConnection(rtc_config())

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "video" and not self.source.done():
                self.source.set_result(track)

        await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription.sdp

    async def view(self, viewer_id: str) -> str:
        from aiortc import RTCPeerConnection

        source = await asyncio.wait_for(asyncio.shield(self.source), 30)
        pc = self.pcs[viewer_id] = RTCPeerConnection(rtc_config())
        pc.addTrack(self.relay.subscribe(source, buffered=False))  # latest frame only: bounded memory
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp

    async def answer(self, viewer_id: str, sdp: str) -> None:
        from aiortc import RTCSessionDescription

        await self.pcs[viewer_id].setRemoteDescription(RTCSessionDescription(sdp, "answer"))

    async def leave(self, viewer_id: str) -> None:
        pc = self.pcs.pop(viewer_id, None)
        if pc is not None:
            await pc.close()

    def viewers(self) -> list[str]:
        return list(self.pcs)

    def ready(self) -> bool:
        return self.source.done()

    def stats(self) -> dict[str, Any]:
        return {"published": None, "sent": None, "keyframes_requested": None}


async def serve(port: int, kind: str) -> None:
    server: ForwardServer | RelayServer = ForwardServer() if kind == "forward" else RelayServer()

    async def publish(sdp: str) -> dict:
        return {"sdp": await server.publish(sdp)}

    async def view(id: str) -> dict:
        return {"sdp": await server.view(id)}

    async def answer(id: str, sdp: str) -> dict:
        await server.answer(id, sdp)
        return {}

    async def leave(id: str) -> dict:
        await server.leave(id)
        return {}

    async def reset() -> dict:
        for viewer_id in server.viewers():
            await server.leave(viewer_id)
        return {}

    async def cpu() -> dict:
        return cpu_now() | server.stats() | {"ready": server.ready()}

    await http_serve(
        port, {"publish": publish, "view": view, "answer": answer, "leave": leave, "reset": reset, "cpu": cpu}
    )


# -- publisher ---------------------------------------------------------------------------------------
def encode_clip() -> list[bytes]:
    """The publisher's clip, encoded once: a textured pattern sliding sideways (a real bitrate)."""
    import av
    import numpy as np

    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.time_base = fractions.Fraction(1, FPS)
    codec.framerate = fractions.Fraction(FPS, 1)
    codec.bit_rate = BITRATE
    codec.gop_size = CLIP_FRAMES * 2
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "error-resilient": "1"}
    rng = np.random.default_rng(1)
    x = np.arange(WIDTH * 2)
    rows = np.arange(HEIGHT * 3 // 2)[:, None]
    smooth = 128 + 60 * np.sin(x / 37.0) * np.cos(rows / 23.0)
    texture = (smooth + rng.integers(-6, 6, smooth.shape)).clip(16, 235).astype(np.uint8)
    packets: list[bytes] = []
    for i in range(CLIP_FRAMES):
        shift = (i * 4) % WIDTH
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(texture[:, shift : shift + WIDTH]), format="yuv420p"
        )
        frame.pts = i
        packets += [bytes(p) for p in codec.encode(frame)]
    packets += [bytes(p) for p in codec.encode(None)]
    return packets


async def publish(url: str) -> None:
    import av
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamTrack

    clip = encode_clip()
    # The publisher is the apparatus, not what is measured: where allowed (root), it gets ahead of
    # other work on its core, so a starved source does not pass for a slow server. The server and the
    # viewers keep the default priority.
    with contextlib.suppress(OSError):
        os.nice(min(PUBLISHER_NICE, int(os.environ.get("BENCH_NICE", "0"))) - os.nice(0))

    class Replay(MediaStreamTrack):
        """Yields the clip's packets at 30 fps; a PLI (the sender's force-keyframe flag) restarts it."""

        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.sender: Any = None
            self.n = 0
            self.index = 0
            self.start = time.monotonic()

        async def recv(self) -> av.Packet:  # type: ignore[override]
            self.n += 1
            delay = self.start + self.n / FPS - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            # aiortc 1.16.0: an incoming PLI/FIR sets this flag; only its encoder path reads it.
            if self.sender is not None and self.sender._RTCRtpSender__force_keyframe:
                self.sender._RTCRtpSender__force_keyframe = False
                self.index = 0
            packet = av.Packet(clip[self.index])
            self.index = (self.index + 1) % len(clip)
            packet.pts = self.n * (90000 // FPS)
            packet.time_base = fractions.Fraction(1, 90000)
            return packet

    pc = RTCPeerConnection(rtc_config())
    track = Replay()
    track.sender = pc.addTrack(track)
    await pc.setLocalDescription(await pc.createOffer())
    answer = await post(url, "publish", sdp=pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
    await asyncio.Event().wait()


# -- viewers -----------------------------------------------------------------------------------------
def vp8_keyframe_start(payload: bytes) -> bool:
    """Whether an RTP payload starts a VP8 key frame (RFC 7741 payload descriptor, then RFC 6386 9.1)."""
    if len(payload) < 2:
        return False
    first = payload[0]
    if not first & 0x10 or first & 0x07:  # S (start of partition) and partition index 0
        return False
    i = 1
    if first & 0x80:  # X: an extension byte follows
        ext = payload[1]
        i = 2
        if ext & 0x80:  # I: picture id, one byte or two (M bit)
            i += 2 if i < len(payload) and payload[i] & 0x80 else 1
        if ext & 0x40:  # L: TL0PICIDX
            i += 1
        if ext & 0x30:  # T or K: TID/KEYIDX
            i += 1
    return i < len(payload) and not payload[i] & 0x01


_RTP_HEAD = struct.Struct("!HII")  # after the first two bytes: sequence number, timestamp, SSRC


class Viewer:
    """One viewer peer, cut short where its SRTP arrives: once DTLS is up, each datagram of its ICE
    connection that is SRTP (not STUN, DTLS or SRTCP) is decrypted with the connection's SRTP session
    right where aioice hands it over, its RTP header read, the packet counted and its sequence number
    checked, and nothing more: no per-packet queue and task wake-up, no ``RtpPacket``, no jitter
    buffer, no NACKs, no depacketising, no decoding, so one process holds many viewers and the server,
    not the viewers, is what is measured. STUN (ICE consent), DTLS and SRTCP still go through aiortc.
    """

    def __init__(self) -> None:
        self.pc: Any = None
        self.packets = 0
        self.frames = 0
        self.bytes = 0
        self.keyframes = 0
        self.undecryptable = 0
        self.connected_at: float | None = None
        self.first_key: asyncio.Future = asyncio.get_running_loop().create_future()
        self._streams: dict[int, list[int]] = {}  # ssrc -> [base extended seq, highest, received]
        self._key_ts: int | None = None  # RTP timestamp of a key frame under way
        self.first_packet: float | None = None

    async def on_rtp(self, packet: Any, arrival_time_ms: int = 0) -> None:
        """Stands in for ``RTCRtpReceiver._handle_rtp_packet`` (aiortc 1.16.0), for packets that came
        before the fast path could decrypt (DTLS finishing)."""
        self.count(packet.ssrc, packet.sequence_number, packet.timestamp, packet.marker, packet.payload)

    def tap(self, dtls: Any) -> None:
        """Take the SRTP of ``dtls``'s ICE connection at the datagram (aioice ``Connection.
        data_received``, aiortc 1.16.0 / aioice 0.10), ahead of aiortc's queue."""
        connection = dtls.transport._connection
        queued = connection.data_received

        def data_received(data: bytes, component: int) -> None:
            srtp = dtls._rx_srtp
            if srtp is None or not 127 < data[0] < 192 or 192 <= data[1] <= 208:  # not SRTP (yet)
                queued(data, component)
                return
            try:
                plain = srtp.unprotect(data)
            except Exception:
                self.undecryptable += 1
                return
            first = plain[0]
            seq, timestamp, ssrc = _RTP_HEAD.unpack_from(plain, 2)
            pos = 12 + 4 * (first & 0x0F)
            if first & 0x10:  # header extension: 4 bytes, then its length in words
                pos += 4 + 4 * int.from_bytes(plain[pos + 2 : pos + 4], "big")
            self.count(ssrc, seq, timestamp, plain[1] >> 7, plain[pos:])

        connection.data_received = data_received

    def count(self, ssrc: int, seq: int, timestamp: int, marker: int, payload: bytes) -> None:
        self.packets += 1
        if self.first_packet is None:
            self.first_packet = time.monotonic()
        self.bytes += len(payload)
        stream = self._streams.get(ssrc)
        if stream is None:
            self._streams[ssrc] = [seq, seq, 1]
        else:
            # Extend the 16-bit sequence number around the highest seen (RFC 3550 A.1, simplified).
            high = stream[1]
            ext = (high & ~0xFFFF) | seq
            if ext < high - 0x8000:
                ext += 0x10000
            elif ext > high + 0x8000:
                ext -= 0x10000
            stream[1] = max(high, ext)
            stream[2] += 1
        if vp8_keyframe_start(payload):
            self._key_ts = timestamp
        if marker:
            self.frames += 1
            if self._key_ts is not None and timestamp == self._key_ts:
                self._key_ts = None
                self.keyframes += 1
                if not self.first_key.done():
                    self.first_key.set_result(time.monotonic())

    def rtp(self) -> tuple[int, int]:
        """RTP packets received and lost (expected from the sequence numbers, minus received)."""
        received = sum(s[2] for s in self._streams.values())
        expected = sum(s[1] - s[0] + 1 for s in self._streams.values())
        return received, max(0, expected - received)

    async def connect(self, server: str, viewer_id: str) -> None:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        self.pc = pc = RTCPeerConnection(rtc_config())
        connected = asyncio.get_running_loop().create_future()

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState == "connected" and not connected.done():
                self.connected_at = time.monotonic()
                connected.set_result(True)
            elif pc.connectionState == "failed" and not connected.done():
                connected.set_exception(RuntimeError("connection failed"))

        offer = await post(server, "view", id=viewer_id)
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        for transceiver in pc.getTransceivers():  # count, never depacketise or decode
            transceiver.receiver._handle_rtp_packet = self.on_rtp
        for dtls in {id(t.receiver.transport): t.receiver.transport for t in pc.getTransceivers()}.values():
            self.tap(dtls)
        await pc.setLocalDescription(await pc.createAnswer())
        await post(server, "answer", id=viewer_id, sdp=pc.localDescription.sdp)
        await asyncio.wait_for(connected, 60)


async def view(port: int, server: str) -> None:
    viewers: dict[str, Viewer] = {}
    gate = asyncio.Semaphore(10)  # connect in small batches: a burst of ICE checks is not the point

    async def one(viewer_id: str) -> str | None:
        async with gate:
            viewer = viewers[viewer_id] = Viewer()
            try:
                await viewer.connect(server, viewer_id)
                return None
            except Exception as exc:
                return repr(exc)

    async def add(ids: list[str]) -> dict:
        errors = [e for e in await asyncio.gather(*(one(i) for i in ids)) if e]
        return {"connected": len(ids) - len(errors), "failed": len(errors), "errors": errors[:3]}

    async def stats() -> dict:
        per: dict[str, list[int]] = {}
        for viewer_id, viewer in list(viewers.items()):
            received, lost = viewer.rtp()
            per[viewer_id] = [received, lost, viewer.frames, viewer.bytes]
        return cpu_now() | {"viewers": per}

    async def late(id: str) -> dict:
        viewer = Viewer()
        start = time.monotonic()
        await viewer.connect(server, id)
        first = await asyncio.wait_for(asyncio.shield(viewer.first_key), 10)
        await viewer.pc.close()
        assert viewer.connected_at is not None
        return {
            "connected_ms": (viewer.connected_at - start) * 1000,
            "key_ms": (first - viewer.connected_at) * 1000,
            "first_packet_ms": ((viewer.first_packet or first) - viewer.connected_at) * 1000,
            "keyframes": viewer.keyframes,
        }

    async def reset() -> dict:
        for viewer in viewers.values():
            await viewer.pc.close()
        viewers.clear()
        return {}

    await http_serve(port, {"add": add, "stats": stats, "late": late, "reset": reset})


# -- driver ------------------------------------------------------------------------------------------
def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if shutil.which("taskset") and (os.cpu_count() or 1) >= 2 else argv


async def wait_up(url: str, op: str) -> None:
    for _ in range(300):
        try:
            await post(url, op, timeout=5)
            return
        except Exception:
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def loadavg() -> list[float]:
    return list(os.getloadavg())


def schedstat(pid: int) -> tuple[int, int]:
    """Nanoseconds a process's threads ran and waited on a run queue (ready, but another task ran)."""
    run = wait = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            fields = (task / "schedstat").read_text().split()
        except OSError:
            continue
        run, wait = run + int(fields[0]), wait + int(fields[1])
    return run, wait


async def window(server: str, viewers: list[str], seconds: float, pids: dict[str, int]) -> dict[str, Any]:
    q0 = {who: schedstat(pid) for who, pid in pids.items()}
    s0, v0 = await post(server, "cpu"), await gather_stats(viewers)
    await asyncio.sleep(seconds)
    s1, v1 = await post(server, "cpu"), await gather_stats(viewers)
    q1 = {who: schedstat(pid) for who, pid in pids.items()}
    wall = s1["wall"] - s0["wall"]
    # Per viewer, over the viewers present at both ends (a viewer whose connection dropped has no stats).
    common = v0["viewers"].keys() & v1["viewers"].keys()
    deltas = [
        [max(0, b - a) for a, b in zip(v0["viewers"][i], v1["viewers"][i], strict=True)] for i in common
    ]
    received, lost, frames, size = (sum(d[k] for d in deltas) for k in range(4))
    n = max(len(common), 1)
    out = {
        "server_cores": (s1["cpu"] - s0["cpu"]) / wall,
        "viewers_cores": sum(
            (b["cpu"] - a["cpu"]) / (b["wall"] - a["wall"])
            for a, b in zip(v0["procs"], v1["procs"], strict=True)
        ),
        "packets": received,
        "lost": lost,
        "loss_pct": 100 * lost / (received + lost) if received + lost else None,
        "fps_per_viewer": frames / n / wall,
        "kbps_per_viewer": size * 8 / 1000 / n / wall,
    }
    # Demand: running plus waiting for the core. On a shared machine a process can be saturated (it
    # wants its core all the time) while its CPU share stays well below one core.
    demand = {who: sum(b - a for a, b in zip(q0[who], q1[who], strict=True)) / 1e9 / wall for who in pids}
    out["server_demand"] = demand["server"]
    viewer_demands = [d for who, d in demand.items() if who.startswith("viewers")]
    out["viewers_demand"] = sum(viewer_demands)
    out["viewers_max_demand"] = max(viewer_demands)
    if s0["published"] is not None:
        out["published_fps"] = (s1["published"] - s0["published"]) / wall
        out["sent_fps_per_viewer"] = (s1["sent"] - s0["sent"]) / n / wall
    return out


async def gather_stats(viewers: list[str]) -> dict[str, Any]:
    """The viewer processes' counters, merged: per viewer, and each process's CPU."""
    replies = await asyncio.gather(*(post(url, "stats") for url in viewers))
    merged: dict[str, Any] = {}
    for reply in replies:
        merged.update(reply["viewers"])
    return {"viewers": merged, "procs": [{"cpu": r["cpu"], "wall": r["wall"]} for r in replies]}


async def add_viewers(viewers: list[str], ids: list[str]) -> dict[str, Any]:
    """Spread ``ids`` over the viewer processes, round robin, and connect them all."""
    parts = [ids[i :: len(viewers)] for i in range(len(viewers))]
    replies = await asyncio.gather(
        *(post(url, "add", timeout=600, ids=part) for url, part in zip(viewers, parts, strict=True) if part)
    )
    return {
        "connected": sum(r["connected"] for r in replies),
        "failed": sum(r["failed"] for r in replies),
        "errors": [e for r in replies for e in r["errors"]][:3],
    }


def next_n(n: int) -> int:
    """The next N when scaling up: half as many again, in tens."""
    return max(n + 10, round(n * 1.5 / 10) * 10)


async def run_kind(
    kind: str, ns: list[int], plan: Plan, log: Any, deadline: float | None = None
) -> dict[str, Any]:
    """One server kind at each N (and, with a ``deadline``, higher Ns until saturated or out of time)."""
    sport = free_port()
    vports = [free_port() for _ in range(plan.viewer_procs)]
    server = f"http://127.0.0.1:{sport}"
    viewers = [f"http://127.0.0.1:{p}" for p in vports]
    me = [sys.executable, __file__]
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    procs: list[subprocess.Popen] = [
        subprocess.Popen(
            pinned(SERVER_CORE, [*me, "--role", "server", "--kind", kind, "--port", str(sport)]), env=env
        )
    ]
    result: dict[str, Any] = {"kind": kind, "levels": [], "viewer_procs": plan.viewer_procs}
    try:
        for vport in vports:
            procs.append(
                subprocess.Popen(
                    pinned(
                        CLIENT_CORES, [*me, "--role", "viewers", "--port", str(vport), "--server", server]
                    ),
                    env=env,
                )
            )
        pids = {"server": procs[0].pid}  # taskset execs: same pid
        pids |= {f"viewers{i}": proc.pid for i, proc in enumerate(procs[1:])}
        await wait_up(server, "cpu")
        for url in viewers:
            await wait_up(url, "stats")
        procs.append(
            subprocess.Popen(pinned(CLIENT_CORES, [*me, "--role", "publisher", "--server", server]), env=env)
        )
        # The baseline, publisher alone: forwarding taps its frames; the stock server's receiver already
        # decodes them (aiortc decodes whatever it receives), so per-viewer figures are the rest.
        for _ in range(1200):  # the publisher encodes its clip first: seconds on a busy core
            if (await post(server, "cpu"))["ready"]:
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("the publisher did not start")
        await asyncio.sleep(plan.warmup)
        base = [await window(server, viewers, plan.seconds, pids) for _ in range(max(1, plan.rounds - 1))]
        result["base_cores"] = statistics.median(b["server_cores"] for b in base)
        queue = list(ns)
        while queue:
            n = queue.pop(0)
            await asyncio.gather(*(post(url, "reset") for url in viewers))
            await post(server, "reset")
            added = await add_viewers(viewers, [f"{kind}-{n}-{i}" for i in range(n)])
            await asyncio.sleep(plan.warmup)
            level: dict[str, Any] = {"n": n, "setup": added, "rounds": [], "late": []}
            for r in range(plan.rounds):
                w = await window(server, viewers, plan.seconds, pids)
                w["per_viewer"] = (w["server_cores"] - result["base_cores"]) / n
                level["rounds"].append(w)
                if plan.late_joiners:
                    late_id = f"late-{kind}-{n}-{r}"
                    try:
                        level["late"].append(
                            await post(viewers[r % len(viewers)], "late", timeout=60, id=late_id)
                        )
                    except Exception as exc:  # a saturated server may not get a late joiner through
                        level["late"].append({"error": str(exc)})
                    await post(server, "leave", id=late_id)
                    await asyncio.sleep(0.5)
            summary = summarise(level)
            log(f"{kind} N={n}: {json.dumps(summary)}")
            result["levels"].append(level)
            # Scaling: past the Ns asked for, go on while nothing saturated, nothing was lost and
            # there is time left (the whole run is bounded by the plan's budget).
            if not queue and deadline is not None and n < plan.max_n and clean(summary):
                if time.monotonic() < deadline:
                    queue.append(min(plan.max_n, next_n(n)))
                else:
                    result["stopped"] = f"out of time (budget {plan.budget:.0f} s) after N = {n}"
        await asyncio.gather(*(post(url, "reset") for url in viewers))
        await post(server, "reset")
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return result


def median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def summarise(level: dict[str, Any]) -> dict[str, Any]:
    rounds = level["rounds"]
    keys = [x["key_ms"] for x in level["late"] if "key_ms" in x]
    return {
        "n": level["n"],
        "connected": level["setup"]["connected"],
        "per_viewer": median([r["per_viewer"] for r in rounds]),
        "server_cores": median([r["server_cores"] for r in rounds]),
        "viewers_cores": median([r["viewers_cores"] for r in rounds]),
        "server_demand": median([r["server_demand"] for r in rounds]),
        "viewers_demand": median([r["viewers_demand"] for r in rounds]),
        "viewers_max_demand": median([r.get("viewers_max_demand") for r in rounds]),
        "sent_fps_per_viewer": median([r.get("sent_fps_per_viewer") for r in rounds]),
        "published_fps": median([r.get("published_fps") for r in rounds]),
        "loss_pct": median([r["loss_pct"] for r in rounds]),
        "packets": sum(r["packets"] for r in rounds),
        "lost": sum(r["lost"] for r in rounds),
        "fps_per_viewer": median([r["fps_per_viewer"] for r in rounds]),
        "kbps_per_viewer": median([r["kbps_per_viewer"] for r in rounds]),
        "late_key_ms": median(keys),
        "late_key_ms_max": max(keys) if keys else None,
        "late_connect_ms": median([x["connected_ms"] for x in level["late"] if "connected_ms" in x]),
        "late_failed": sum("error" in x for x in level["late"]),
    }


async def run_plan_async(plan: Plan, log: Any = None) -> dict[str, Any]:
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    load_before = loadavg()
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    # Scaling N stops at 3/4 of the budget: the stock path's fixed Ns take the rest.
    deadline = time.monotonic() + plan.budget * 0.75 if plan.scale else None
    forward = await run_kind("forward", plan.forward_ns, plan, log, deadline)
    relay = await run_kind("relay", plan.relay_ns, plan, log)
    return {
        "started": started,
        "pinned": bool(pinned("0", [])),
        "client_cores": CLIENT_CORES,
        "stopped": forward.get("stopped"),
        "load_before": load_before,
        "load_after": loadavg(),
        "forward": forward | {"summary": [summarise(x) for x in forward["levels"]]},
        "relay": relay | {"summary": [summarise(x) for x in relay["levels"]]},
    }


def run_plan(plan: Plan, log: Any = None) -> dict[str, Any]:
    return asyncio.run(run_plan_async(plan, log))


# -- report ------------------------------------------------------------------------------------------
def fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


SATURATED = 0.9  # cores: a process at this share of its one core is saturated


def markdown(results: dict[str, Any], mode: str) -> str:
    fwd, rel = results["forward"]["summary"], results["relay"]["summary"]
    rel_per = median([at_30fps(s) for s in rel])
    lines = [
        "## Media forwarding (`bench/webrtc/harness.py`)",
        "",
        f"One 720p 30 fps VP8 publisher (a clip encoded once at {BITRATE // 1000} kbit/s, its packets "
        "replayed in a loop) to N aiortc viewers spread over "
        f"{results['forward'].get('viewer_procs', 1)} processes, which decrypt each SRTP packet where aioice "
        "hands the datagram over, read its RTP header and count it (no per-packet task wake-up, no jitter "
        "buffer, no depacketising, no decoding). "
        + (
            f"Server pinned to core {SERVER_CORE} with `taskset`, publisher and viewers to core(s) "
            f"{results.get('client_cores', CLIENT_CORES)}. "
            if results["pinned"]
            else "Not pinned (no `taskset` or a single core). "
        )
        + "Server CPU is its own `os.times()` over each window, minus the publisher-only baseline "
        f"({fmt(results['forward']['base_cores'], '.3f')} core forwarding, "
        f"{fmt(results['relay']['base_cores'], '.3f')} stock), per viewer; loss is the viewers' receiver "
        "counts (packets expected from sequence numbers minus received); a late joiner connects after "
        'each window and is timed from its connection turning "connected" to its first key frame. '
        f"Mode {mode}: {len(results['forward']['levels'][0]['rounds']) if fwd else 0} windows per N, "
        "medians over them.",
        "",
        machine_state(results),
        "",
        "Core columns: CPU used / demand (used plus time spent ready but waiting for the core, from "
        "`/proc/<pid>/task/*/schedstat`, summed over threads, so it can exceed 1); a process whose "
        "demand reaches "
        f"{SATURATED} of a core is saturated, even if other work on the shared machine kept its CPU low "
        "(the viewers: their processes together at that share of their cores, or one of them at it). "
        "A row is clean when nothing saturated, loss is under 1 % and each viewer got at least "
        f"{FPS * 0.9:.0f} frames/s; the slope between Ns is taken over clean rows only.",
        "",
        "Server core per viewer is also given scaled to 30 frames/s actually sent (received, for the stock "
        "path), so a server that falls behind does not look cheaper; the ratio to the stock path uses "
        "that, and only where nothing saturated and nothing was lost.",
        "",
        "| path | N | connected | server core / viewer | at 30 fps | vs stock "
        "| server core | viewers' core | "
        "loss | fps / viewer | kbit/s / viewer | late joiner: first key frame (median, max) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, rows in (("forward (Classcast)", fwd), ("stock MediaRelay", rel)):
        for s in rows:
            norm = at_30fps(s)
            ratio = rel_per / norm if rel_per and norm and norm > 0 and clean(s) else None
            shown = (
                "1" if not label.startswith("forward") else ("1/" + format(ratio, ".0f") if ratio else "–")
            )
            lines.append(
                f"| {label} | {s['n']} | {s['connected']} | {fmt(s['per_viewer'], '.4f')} | "
                f"{fmt(norm, '.4f')} | {shown} | "
                f"{fmt(s['server_cores'], '.2f')} / {fmt(s['server_demand'], '.2f')} | "
                f"{fmt(s['viewers_cores'], '.2f')} / {fmt(s['viewers_demand'], '.2f')} | "
                f"{fmt(s['loss_pct'], '.2f')} % ({s['lost']} of {s['packets'] + s['lost']}) | "
                f"{fmt(s['fps_per_viewer'], '.1f')} | {fmt(s['kbps_per_viewer'], '.0f')} | "
                f"{fmt(s['late_key_ms'], '.0f')} ms, {fmt(s['late_key_ms_max'], '.0f')} ms"
                + (f" ({s['late_failed']} failed)" if s["late_failed"] else "")
                + " |"
            )
    lines += ["", verdict(fwd, rel, rel_per, results.get("stopped"))]
    return "\n".join(lines) + "\n"


def machine_state(results: dict[str, Any]) -> str:
    before, after = results["load_before"], results["load_after"]
    busy = max(before[0], after[0]) >= 1.0
    loads = (
        f"run at {results['started']}, load average {before[0]:.1f} before, {after[0]:.1f} after, "
        f"on {os.cpu_count()} cores"
    )
    if results.get("nice"):
        nice = results["nice"]
        loads += f"; server and viewers at nice {nice}, publisher at {min(PUBLISHER_NICE, nice)}"
    if not busy:
        return f"**Machine state:** otherwise idle ({loads})."
    return (
        f"**Machine state:** shared with other work (test runs) while this ran ({loads}). The CPU figures "
        "are the server's own CPU time, charged only while it runs, but contention still inflates them "
        "(shared caches, frequency, context switches); loss, frame rate and key frame times are wall-clock "
        "effects and suffer much earlier than on an idle machine."
    )


def at_30fps(s: dict[str, Any]) -> float | None:
    """Server core per viewer scaled to 30 frames/s actually sent: a server that falls behind sends
    fewer frames and so spends less, which must not read as cheaper."""
    fps = s.get("sent_fps_per_viewer") or s["fps_per_viewer"]
    if s["per_viewer"] is None or not fps or fps < 5:
        return None
    return s["per_viewer"] * FPS / fps


def clean(s: dict[str, Any]) -> bool:
    """Nothing saturated, no loss, every viewer connected and getting (nearly) all 30 frames/s: the
    figures measure the path itself."""
    return (
        s["loss_pct"] is not None
        and s["loss_pct"] < 1
        and s["connected"] == s["n"]
        and (s["fps_per_viewer"] or 0) >= FPS * 0.9
        and not saturated(s)
    )


def client_cores() -> int:
    first, _, last = CLIENT_CORES.partition("-")
    return int(last or first) - int(first) + 1


def saturated(s: dict[str, Any]) -> list[str]:
    """Who is saturated: the server's core, or the viewers (their cores together, or one process)."""
    out = []
    if s["server_demand"] is not None and s["server_demand"] >= SATURATED:
        out.append("the server's core")
    total, one = s["viewers_demand"], s.get("viewers_max_demand")
    if (total is not None and total >= SATURATED * client_cores()) or (one is not None and one >= SATURATED):
        out.append("the viewers' core" if client_cores() == 1 else "the viewers' cores")
    return out


def slope(rows: list[dict]) -> list[tuple[int, int, float]]:
    """Server core per added viewer between consecutive Ns where nothing saturated and nothing was lost
    (every viewer then gets the 30 frames/s): ``(n_from, n_to, core per viewer)``."""
    good = [s for s in rows if clean(s) and s["server_cores"] is not None]
    return [
        (a["n"], b["n"], (b["server_cores"] - a["server_cores"]) / (b["n"] - a["n"]))
        for a, b in itertools.pairwise(good)
        if b["n"] > a["n"]
    ]


def verdict(fwd: list[dict], rel: list[dict], rel_per: float | None, stopped: str | None = None) -> str:
    out = []
    good = [s for s in fwd if clean(s)]
    if good:
        top = good[-1]
        per = at_30fps(top)
        out.append(
            f"Forwarding, largest N with nothing saturated and no loss (< 1 %): N = {top['n']}, "
            f"{fmt(per, '.4f')} core per viewer at 30 fps (target ≤ 0.004"
            + (f"; {1 / per:.0f} viewers per core" if per and per > 0 else "")
            + "), "
            f"loss {fmt(top['loss_pct'], '.2f')} %, late joiner's first key frame "
            f"{fmt(top['late_key_ms'], '.0f')} ms median (target ≤ 300 ms)."
        )
    lost = [s for s in fwd if s.get("published_fps") == 0]
    if lost:
        out.append(
            f"From N = {lost[0]['n']} no frame reached the server at all: the publisher stopped sending "
            "(starved of CPU on the shared core, or its connection dropped), so those rows measure nothing."
        )
    starved = [s for s in fwd if s.get("published_fps") is not None and 0 < s["published_fps"] < FPS * 0.8]
    if starved:
        out.append(
            "The publisher fell behind (it shares the viewers' core) at N = "
            + ", ".join(f"{s['n']} ({s['published_fps']:.1f} frames/s reached the server)" for s in starved)
            + ": there the viewers received less because less was sent."
        )
    keys = median([s["late_key_ms"] for s in fwd if s["late_key_ms"] is not None and not saturated(s)])
    if keys is not None:
        out.append(f"Late joiner's first key frame, median over the unsaturated Ns: {keys:.0f} ms.")
    first = next((s for s in fwd if saturated(s)), None)
    if first is not None:
        out.append(
            f"At N = {first['n']} {' and '.join(saturated(first))} "
            f"{'is' if len(saturated(first)) == 1 else 'are'} saturated (demand ≥ {SATURATED} core): "
            f"loss {fmt(first['loss_pct'], '.1f')} %, {fmt(first['fps_per_viewer'], '.1f')} fps per viewer, "
            "so the figures from there on measure the bottleneck, not forwarding."
        )
    elif fwd:
        lossy = next((s for s in fwd if not clean(s)), None)
        if lossy is not None:
            out.append(
                f"At N = {lossy['n']} nothing saturated but {fmt(lossy['loss_pct'], '.1f')} % of packets "
                "were lost (or not every viewer connected): the limit is there, unattributed."
            )
        else:
            out.append(
                "Neither the server's core nor the viewers' cores saturated at the largest N measured"
                + (f" ({stopped})." if stopped else ".")
            )
    slopes = slope(fwd)
    if slopes:
        out.append(
            "The slope of the server's core between Ns with nothing saturated and no loss (no baseline "
            "involved): "
            + ", ".join(f"{per:.4f} core per viewer from N = {a} to {b}" for a, b, per in slopes)
            + "."
        )
    per_viewer_rx = median([s["viewers_cores"] / s["n"] for s in good if s["viewers_cores"]])
    if per_viewer_rx:
        out.append(
            f"Receiving costs the viewers {per_viewer_rx:.4f} core per viewer (ICE, SRTP decryption, RTP "
            f"header reading and RTCP), so one core of viewers holds at most about {1 / per_viewer_rx:.0f}."
        )
    if rel:
        top = rel[-1]
        reach = f"{1 / rel_per:.1f}" if rel_per and rel_per > 0 else "–"
        out.append(
            f"The stock path costs {fmt(rel_per, '.3f')} core per viewer at 30 fps (median over N = "
            + ", ".join(str(s["n"]) for s in rel)
            + f"), so its core saturates at about {reach} viewers; at N = {top['n']} its server core is at "
            f"{fmt(top['server_cores'], '.2f')} (demand {fmt(top['server_demand'], '.2f')}) and each viewer "
            f"gets {fmt(top['fps_per_viewer'], '.1f')} fps."
        )
    return " ".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=sorted(PLANS), default=os.environ.get("BENCH_MODE", "quick"))
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--budget", type=float, help="seconds the run may take (default: the mode's)")
    parser.add_argument("--max-n", type=int, help="the largest N scaling may reach (default: the mode's)")
    parser.add_argument("--viewer-procs", type=int, help="viewer processes (default: the mode's)")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of the server and viewer processes (negative: ahead of other work on a shared "
        "machine; needs root); the publisher always runs at -5 where allowed",
    )
    parser.add_argument("--from-json", help="re-render the markdown of an earlier --json file")
    parser.add_argument("--role", choices=["server", "publisher", "viewers"], help=argparse.SUPPRESS)
    parser.add_argument("--kind", choices=["forward", "relay"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role in ("server", "viewers") and int(os.environ.get("BENCH_NICE", "0")):
        with contextlib.suppress(OSError):  # --nice: the server and viewers too (root only)
            os.nice(int(os.environ["BENCH_NICE"]))
    if args.role == "server":
        return asyncio.run(serve(args.port, args.kind))
    if args.role == "publisher":
        return asyncio.run(publish(args.server))
    if args.role == "viewers":
        return asyncio.run(view(args.port, args.server))
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        return print(markdown(results, results.get("mode", args.mode)))
    plan = plan_from(PLANS, args.mode, budget=args.budget, max_n=args.max_n, viewer_procs=args.viewer_procs)
    os.environ["BENCH_NICE"] = str(args.nice)  # the roles' processes inherit it
    results = run_plan(plan) | {"mode": args.mode, "nice": args.nice}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(markdown(results, args.mode))


if __name__ == "__main__":
    main()
