"""Encoded media for the media recorder's tests, made with PyAV's encoders as a browser would send
it: VP8 video whose frames show their number as a bar code (read back after decoding), Opus audio
in 20 ms packets, both with RTP-style timestamps that start near the 32-bit wrap."""

from __future__ import annotations

import functools
import pickle
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from recorder.media import Packet

FPS = 30
WIDTH, HEIGHT = 192, 144  # small: the tests encode on a loaded 2-core machine
BITS = 12  # frame counter bar code: 12 cells of 16 px along the top band
CELL = 16
VIDEO_TB = Fraction(1, 90000)
AUDIO_TB = Fraction(1, 48000)
# RTP clocks start anywhere; these wrap 2^32 about one second in, as a real one may.
VIDEO_BASE = (1 << 32) - 90000
AUDIO_BASE = (1 << 32) - 48000


def _frame(i: int) -> av.VideoFrame:
    """Frame i in yuv420p, drawn straight into its planes: the bar code in the luma's top band
    (bright cells for the 1 bits) and a bar moving across below."""
    yuv = np.full((HEIGHT * 3 // 2, WIDTH), 128, np.uint8)
    yuv[:HEIGHT] = 40
    for b in range(BITS):
        if i >> b & 1:
            yuv[0:48, b * CELL + 2 : (b + 1) * CELL - 2] = 235
    x = (i * 4) % (WIDTH - 20)
    yuv[70:130, x : x + 20] = 160  # motion
    return av.VideoFrame.from_ndarray(yuv, format="yuv420p")


def read_counter(frame: av.VideoFrame) -> int:
    """The number drawn on a decoded frame."""
    gray = frame.to_ndarray(format="gray")
    return sum(1 << b for b in range(BITS) if gray[8:40, b * CELL + 5 : (b + 1) * CELL - 5].mean() > 140)


@functools.cache
def vp8_packets(seconds: float = 5.0, gop: int = 30) -> tuple[Packet, ...]:
    """Frame i at pts VIDEO_BASE + i * 3000 (wrapped to 32 bits), a key frame every `gop`."""
    cc = av.CodecContext.create("libvpx", "w")
    cc.width, cc.height, cc.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    cc.time_base = VIDEO_TB
    cc.framerate = FPS
    cc.bit_rate = 400_000
    cc.gop_size = gop
    # One thread, fastest settings: threads fight for the 2 cores that other test runs share.
    cc.options = {"deadline": "realtime", "cpu-used": "16", "lag-in-frames": "0", "threads": "1"}
    out = []
    for i in range(round(seconds * FPS)):
        frame = _frame(i)
        frame.pts = i * 3000
        frame.time_base = VIDEO_TB
        if i % gop == 0:
            frame.pict_type = av.video.frame.PictureType.I
        out.extend(cc.encode(frame))
    out.extend(cc.encode(None))
    return tuple(
        Packet("video", "vp8", bytes(p), (VIDEO_BASE + p.pts) % (1 << 32), VIDEO_TB, p.is_keyframe)
        for p in out
    )


@functools.cache
def h264_packets(seconds: float = 3.0) -> tuple[Packet, ...]:
    cc = av.CodecContext.create("libx264", "w")
    cc.width, cc.height, cc.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    cc.time_base = VIDEO_TB
    cc.framerate = FPS
    cc.gop_size = FPS
    cc.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline", "threads": "1"}
    out = []
    for i in range(round(seconds * FPS)):
        frame = _frame(i)
        frame.pts = i * 3000
        frame.time_base = VIDEO_TB
        out.extend(cc.encode(frame))
    out.extend(cc.encode(None))
    return tuple(Packet("video", "h264", bytes(p), VIDEO_BASE + p.pts, VIDEO_TB, p.is_keyframe) for p in out)


@functools.cache
def opus_packets(seconds: float = 5.0) -> tuple[Packet, ...]:
    """A 440 Hz tone in 20 ms packets; packet i at pts AUDIO_BASE + i * 960 (wrapped)."""
    cc = av.CodecContext.create("libopus", "w")
    cc.sample_rate = 48000
    cc.layout = "stereo"
    cc.format = "s16"
    cc.time_base = AUDIO_TB
    out = []
    t = np.arange(960)
    for i in range(round(seconds * 50)):
        tone = (np.sin(2 * np.pi * 440 * (t + i * 960) / 48000) * 6000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(tone, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = i * 960
        frame.time_base = AUDIO_TB
        out.extend(cc.encode(frame))
    out.extend(cc.encode(None))
    # As RTP carries them: packet i at i * 960 (the encoder's own pre-skip offset left out).
    return tuple(
        Packet("audio", "opus", bytes(p), (AUDIO_BASE + i * 960) % (1 << 32), AUDIO_TB, True)
        for i, p in enumerate(out)
    )


def timeline(seconds: float = 5.0) -> list[tuple[float, Packet]]:
    """Video and audio packets with their time from the start (ms), in the order they are sent."""
    items = [(i * 1000 / FPS, p) for i, p in enumerate(vp8_packets(seconds))]
    items += [(i * 20.0, p) for i, p in enumerate(opus_packets(seconds))]
    items.sort(key=lambda x: x[0])
    return items


def dump_timeline(path: Path, seconds: float = 5.0) -> None:
    path.write_bytes(pickle.dumps([(ms, tuple(p)) for ms, p in timeline(seconds)]))


def decode(path: Path) -> dict[str, Any]:
    """Everything a test checks about a recorded file, read back with PyAV."""
    out: dict[str, Any] = {"video": [], "audio": [], "packets": {}}
    with av.open(str(path)) as c:
        out["duration_ms"] = c.duration / 1000 if c.duration else None
        out["metadata"] = dict(c.metadata)
        out["streams"] = [(s.type, s.codec_context.name) for s in c.streams]
        for pkt in c.demux():
            if pkt.dts is None:
                continue
            out["packets"].setdefault(pkt.stream.type, []).append(float(pkt.pts * pkt.time_base * 1000))
            for frame in pkt.decode():
                ms = float(frame.pts * frame.time_base * 1000)
                if isinstance(frame, av.VideoFrame):
                    out["video"].append((ms, read_counter(frame)))
                else:
                    out["audio"].append((ms, frame.samples))
    return out
