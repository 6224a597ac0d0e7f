"""Bad signaling input gets a clear MediaError and changes nothing; H.264 is forwarded too."""

from __future__ import annotations

import itertools

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from signaling.webrtc import Media, MediaError, parse_ice_servers
from tests.webrtc.helpers import Publisher, Viewer, Viewers, no_stun


async def test_bad_offers_and_answers_change_nothing() -> None:
    media = Media()
    try:
        with pytest.raises(MediaError) as err:
            await media.publish("p", "")
        assert err.value.code == "bad_sdp"
        with pytest.raises(MediaError) as err:
            await media.publish("p", "v=0\r\nthis is not sdp\r\n")
        assert err.value.code == "nothing_published"
        with pytest.raises(MediaError) as err:
            await media.answer("nobody", "v=0\r\n")
        assert err.value.code == "not_viewing"
        with pytest.raises(MediaError) as err:
            await media.candidate("nobody", "candidate:1 1 udp 1 127.0.0.1 9 typ host")
        assert err.value.code == "not_connected"
        assert media.tracks() == [] and media._publishers == {}
        # A label that does not fit the track.
        pc = RTCPeerConnection(no_stun())
        publisher = Publisher(media, "p")
        try:
            await publisher.pc.setLocalDescription(await publisher.pc.createOffer())
            sdp = publisher.pc.localDescription.sdp
            audio_track = publisher.audio.id
            with pytest.raises(MediaError) as err:
                await media.publish("p", sdp, labels={audio_track: "camera"})
            assert err.value.code == "bad_label"
            with pytest.raises(MediaError) as err:
                await media.publish("p", sdp, labels={audio_track: "podium"})
            assert err.value.code == "bad_label"
            assert media.tracks() == [] and media._publishers == {}
            # A viewer's answer that does not answer the offer leaves the offer waiting.
            await publisher.pc.setLocalDescription(await publisher.pc.createOffer())
            await media.publish("p", publisher.pc.localDescription.sdp)
            offer = await media.view("v")
            assert offer.startswith("v=0")
            for garbage in ("garbage", "v=0\r\n"):
                with pytest.raises(MediaError) as err:
                    await media.answer("v", garbage)
                assert err.value.code == "bad_sdp"
            assert media._viewers["v"].pc.signalingState == "have-local-offer"
            # A real answer completes it; a second answer finds no offer waiting.
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            await media.answer("v", pc.localDescription.sdp)
            with pytest.raises(MediaError) as err:
                await media.answer("v", pc.localDescription.sdp)
            assert err.value.code == "no_offer"
            # Trickled candidates go to the publisher's or the viewer's connection.
            mid = next(iter(media.mids("v")))
            await media.candidate("v", "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", mid, viewer=True)
            with pytest.raises(MediaError) as err:
                await media.candidate("v", "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", mid)
            assert err.value.code == "not_connected"
            with pytest.raises(MediaError) as err:
                await media.candidate("p", "candidate:nonsense", mid)
            assert err.value.code == "bad_candidate"
        finally:
            await publisher.close()
            await pc.close()
    finally:
        await media.close()


def test_ice_servers_parse() -> None:
    servers = parse_ice_servers(
        "stun:stun.example.org:3478, turn:ann:s%40cret@turn.example.org:3478?transport=udp"
    )
    assert [(s.urls, s.username, s.credential) for s in servers] == [
        ("stun:stun.example.org:3478", None, None),
        ("turn:turn.example.org:3478?transport=udp", "ann", "s@cret"),
    ]
    assert parse_ice_servers("") == [] and parse_ice_servers(None) == []
    with pytest.raises(ValueError, match="not a STUN/TURN URL"):
        parse_ice_servers("http://example.org")
    assert Media().ice_servers == []  # no public STUN server by default
    assert len(Media(ice_servers="stun:stun.example.org:3478").ice_servers) == 1


async def test_h264_is_forwarded_as_it_is() -> None:
    viewers = Viewers()
    media = Media(on_offer=viewers.on_offer)
    publisher = Publisher(media, "trainer", codec="H264")
    try:
        await publisher.start()
        assert [t["codec"] for t in media.tracks()] == ["opus", "h264"]
        watchers = [viewers.add(Viewer(media, f"v{i}")) for i in range(2)]
        for viewer in watchers:
            await viewer.start()
        for viewer in watchers:
            await viewer.wait_video(20)
            assert all(b > a for a, b in itertools.pairwise(viewer.counters)), viewer.counters
            codecs = [t._codecs[0].mimeType for t in viewer.pc.getTransceivers() if t.kind == "video"]
            assert codecs == ["video/H264"]
    finally:
        await media.close()
        await publisher.close()
        for viewer in viewers.by_id.values():
            await viewer.close()
