"""Fails when aiortc no longer matches the forwarding hook (signaling/webrtc/forward.py).

The hook depends on aiortc internals; these tests pin what it relies on so that an aiortc upgrade
breaks here, loudly, instead of silently decoding (or dropping) every frame on the server.
"""

from __future__ import annotations

import fractions
import inspect
import queue
import struct
import threading
from importlib.metadata import version

import aiortc
import av
import pytest
from aioice.ice import Connection, StunProtocol
from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc import rtcrtpreceiver as receiver_module
from aiortc.codecs import get_encoder
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.rtcrtpparameters import (
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
    RTCRtpParameters,
)
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensionsMap, RtpPacket

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


async def test_the_sender_path_the_fan_out_stands_in_for() -> None:
    """What forward.py's fan-out relies on: when and how aiortc starts a sender, what its RTCP and
    NACK handling read, how DTLS protects and aioice sends, and RTP's serialised layout."""
    assert "self._send_keyframe()" in inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert "await self._retransmit(seq)" in inspect.getsource(RTCRtpSender._handle_rtcp_packet)
    assert list(inspect.signature(RTCRtpSender.send).parameters) == ["self", "parameters"]
    assert "_codecs" in inspect.getsource(RTCRtpTransceiver)
    assert "self._run_rtp(parameters.codecs[0])" in inspect.getsource(RTCRtpSender.send)
    assert "await self.__track.recv()" in inspect.getsource(RTCRtpSender._next_encoded_frame)
    assert "await self._next_encoded_frame(codec)" in inspect.getsource(RTCRtpSender._run_rtp)
    # aiortc starts a sender only once the DTLS transport is connected: its first track.recv() means
    # the viewer can be sent to.
    connect = inspect.getsource(RTCPeerConnection._RTCPeerConnection__connect)
    assert connect.index('if dtlsTransport.state == "connected":') < connect.index(
        "await transceiver.sender.send("
    )
    # Sender reports come from these counters; a NACK is answered from this history.
    rtcp = inspect.getsource(RTCRtpSender._run_rtcp)
    for name in ("ntp_timestamp", "rtp_timestamp", "packet_count", "octet_count"):
        assert f"self.__{name}" in rtcp
    assert "self.__rtp_history.get(sequence_number % RTP_HISTORY_SIZE)" in inspect.getsource(
        RTCRtpSender._retransmit
    )
    sender = RTCRtpSender("video", _FakeTransport())  # type: ignore[arg-type]
    assert sender._RTCRtpSender__rtp_history == {} and sender._RTCRtpSender__packet_count == 0
    assert RTP_HISTORY_SIZE == 128
    # DTLS protects RTP with _tx_srtp and hands it to the ICE transport; aioice sends data on the
    # nominated pair's protocol, whose send_data is its transport's sendto.
    send_rtp = inspect.getsource(RTCDtlsTransport._send_rtp)
    assert "self._state != State.CONNECTED" in send_rtp and "self._tx_srtp.protect(data)" in send_rtp
    assert "self._send = self._connection.send" in inspect.getsource(RTCIceTransport.__init__)
    sendto = inspect.getsource(Connection.sendto)
    assert "active_pair = self._nominated.get(component)" in sendto
    assert "active_pair.protocol.send_data(data, active_pair.remote_addr)" in sendto
    assert "self.transport.sendto(data, addr)" in inspect.getsource(StunProtocol.send_data)
    # pack() takes the packet's bytes, pts and time_base and does not encode.
    vp8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
    packet = av.Packet(b"\x10\x02\x00\x9d\x01\x2a" + bytes(2000))
    packet.pts = 3000
    packet.time_base = fractions.Fraction(1, 90000)
    payloads, timestamp = get_encoder(vp8).pack(packet)
    assert timestamp == 3000 and len(payloads) == 2
    # The fixed header is the first 12 bytes, whatever the extensions: the fan-out rewrites only it.
    rtp = RtpPacket(payload_type=96, marker=1, payload=payloads[1])
    rtp.extensions.abs_send_time = 0x123456
    rtp.extensions.mid = "1"
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=1, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
                RTCRtpHeaderExtensionParameters(
                    id=3, uri="http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
                ),
            ]
        )
    )
    data = rtp.serialize(extensions)
    rewritten = struct.pack("!BBHII", data[0], data[1], 4242, 0xFFFFFFF0, 0xABCDEF) + data[12:]
    parsed = RtpPacket.parse(rewritten, extensions)
    assert (parsed.sequence_number, parsed.timestamp, parsed.ssrc) == (4242, 0xFFFFFFF0, 0xABCDEF)
    assert (parsed.marker, parsed.payload_type, parsed.payload) == (1, 96, payloads[1])
    assert (parsed.extensions.mid, parsed.extensions.abs_send_time) == ("1", 0x123456)


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
        (out,) = [o for o in media._viewers["v"].out.values() if o.track.kind == "video"]
        sender = out.transceiver.sender
        assert sender._send_keyframe == out.track.keyframe_requested
        # The fan-out sent with the sender's SSRC, and kept the counters its sender reports carry.
        (received,) = [r for r in viewer.pc.getReceivers() if r.track.kind == "video"]
        assert sender._ssrc in {s.source for s in received.getSynchronizationSources()}
        assert sender._RTCRtpSender__packet_count >= 5 and sender._RTCRtpSender__octet_count > 0
        assert sender._RTCRtpSender__rtp_timestamp != 0 and sender._RTCRtpSender__ntp_timestamp != 0
        assert isinstance(sender.transport.transport._connection, Connection)
        # A NACK: aiortc's sender retransmits the packet from the track's history, as RTX.
        dtls = sender.transport
        seq = (out.track._seq - 3) & 0xFFFF
        before = dtls._RTCDtlsTransport__tx_packets
        await sender._retransmit(seq)
        assert sender._RTCRtpSender__rtp_history[seq % RTP_HISTORY_SIZE].sequence_number == seq
        assert dtls._RTCDtlsTransport__tx_packets == before + 1
    finally:
        await media.close()
        await publisher.close()
        await viewers.by_id["v"].close()


def test_aiortc_module_is_the_one_in_use() -> None:
    assert aiortc.RTCRtpReceiver is RTCRtpReceiver
