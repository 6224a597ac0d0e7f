"""Fails when aiortc no longer matches the forwarding hook (signaling/webrtc/forward.py).

The hook depends on aiortc internals; these tests pin what it relies on so that an aiortc upgrade
breaks here, loudly, instead of silently decoding (or dropping) every frame on the server.
"""

from __future__ import annotations

import inspect
import queue
import threading
from importlib.metadata import version

import aiortc
import av
import pytest
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc import rtcrtpreceiver as receiver_module
from aiortc.codecs import get_encoder
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from signaling.webrtc import Media
from signaling.webrtc.forward import Tap, install_tap, is_keyframe
from tests.webrtc.helpers import Publisher, Viewer, Viewers


def test_the_pinned_aiortc_is_installed() -> None:
    assert version("aiortc") == "1.16.0", "re-check signaling/webrtc/forward.py against the new aiortc"
    with open("pyproject.toml") as f:
        pinned = [line for line in f.read().splitlines() if '"aiortc' in line]
    assert pinned == ['    "aiortc==1.16.0",']


def test_the_receiver_hands_encoded_frames_to_a_decoder_queue() -> None:
    source = inspect.getsource(RTCRtpReceiver)
    # _handle_rtp_packet puts (codec, encoded JitterFrame) on the queue, receive() hands the queue to
    # the decoder thread, which reads it with get() and stops on None.
    assert "self.__decoder_queue.put((codec, encoded_frame))" in inspect.getsource(
        RTCRtpReceiver._handle_rtp_packet
    )
    assert "self.__decoder_queue," in inspect.getsource(RTCRtpReceiver.receive)
    assert "self.__decoder_queue.put(None)" in source
    worker = inspect.getsource(receiver_module.decoder_worker)
    assert "task = input_q.get()" in worker and "if task is None:" in worker
    assert "codec, encoded_frame = task" in worker
    assert list(inspect.signature(RTCRtpReceiver._send_rtcp_pli).parameters) == ["self", "media_ssrc"]
    assert "self.__rtx_ssrc" in source and "self.__started" in source


def test_the_sender_packs_packets_and_reports_key_frame_requests() -> None:
    assert "self._send_keyframe()" in inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    encoded = inspect.getsource(RTCRtpSender._next_encoded_frame)
    assert "self.__encoder.pack(data)" in encoded and "isinstance(data, Frame)" in encoded
    assert "_codecs" in inspect.getsource(RTCRtpTransceiver)
    # pack() takes the packet's bytes, pts and time_base and does not encode.
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    packet = av.Packet(b"\x10\x02\x00\x9d\x01\x2a" + bytes(2000))
    packet.pts = 3000
    packet.time_base = __import__("fractions").Fraction(1, 90000)
    payloads, timestamp = get_encoder(vp8).pack(packet)
    assert timestamp == 3000 and len(payloads) == 2


class _FakeTransport:
    state = "new"


def test_install_tap_replaces_the_queue_and_parks_the_decoder_thread() -> None:
    receiver = RTCRtpReceiver("video", _FakeTransport())  # type: ignore[arg-type]
    assert isinstance(receiver._RTCRtpReceiver__decoder_queue, queue.Queue)
    tap = install_tap(receiver, "video")
    assert receiver._RTCRtpReceiver__decoder_queue is tap
    assert install_tap(receiver, "video") is tap
    # aiortc's own decoder worker, run against the tap, waits and ends without making a decoder.
    thread = threading.Thread(target=tap.get)
    thread.start()
    assert thread.is_alive()
    tap.put(None)
    thread.join(timeout=2)
    assert not thread.is_alive() and tap.stopped


def test_install_tap_refuses_a_started_receiver() -> None:
    receiver = RTCRtpReceiver("audio", _FakeTransport())  # type: ignore[arg-type]
    receiver._RTCRtpReceiver__started = True
    with pytest.raises(RuntimeError, match="already started"):
        install_tap(receiver, "audio")


def test_key_frames_are_recognised() -> None:
    assert is_keyframe("vp8", b"\x10\x02\x00\x9d\x01\x2a")
    assert not is_keyframe("vp8", b"\x31\x02\x00")
    assert is_keyframe("h264", b"\x00\x00\x00\x01\x67\x42" + b"\x00\x00\x00\x01\x65\x88")
    assert not is_keyframe("h264", b"\x00\x00\x00\x01\x41\x9a")
    assert is_keyframe("opus", b"\xfc")


async def test_a_live_server_receiver_feeds_the_tap() -> None:
    viewers = Viewers()
    media = Media(on_offer=viewers.on_offer)
    publisher = Publisher(media, "p")
    try:
        await publisher.start()
        viewer = viewers.add(Viewer(media, "v"))
        await viewer.start()
        await viewer.wait_video(5)
        (pub,) = media._publishers.values()
        receivers = pub.pc.getReceivers()
        assert len(receivers) == 2
        for receiver in receivers:
            tap = receiver._RTCRtpReceiver__decoder_queue
            assert isinstance(tap, Tap) and tap.frames > 0
            assert receiver._RTCRtpReceiver__started
            assert tap.media_ssrc() is not None
        # The viewer's sender answers PLI through our hook (not aiortc's encoder flag).
        sender = next(s for s in viewer.pc.getReceivers() if s.track.kind == "video")
        assert sender is not None
        (out,) = [o for o in media._viewers["v"].out.values() if o.track.kind == "video"]
        assert out.transceiver.sender._send_keyframe == out.track.keyframe_requested
    finally:
        await media.close()
        await publisher.close()
        await viewers.by_id["v"].close()


def test_aiortc_module_is_the_one_in_use() -> None:
    assert aiortc.RTCRtpReceiver is RTCRtpReceiver
