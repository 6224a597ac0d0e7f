"""WebRTC media: aiortc peers that forward publishers' encoded frames to viewers without re-encoding.

No socket.io here: the signaling layer drives :class:`Media` and turns its callbacks into events.

Peers (``peers.py``)
    ``media = Media(ice_servers="stun:stun.example.org:3478", on_tracks=..., on_offer=...)``

    - ``await media.publish(publisher_id, offer_sdp, labels={track_or_mid: "mic"|"camera"|"screen"})``
      returns the answer SDP. One RTCPeerConnection per publisher; an offer from the same peer
      connection renegotiates it (tracks added or removed), one from a new peer connection replaces it
      (publisher restart) and its tracks keep their track ids, so viewers need no renegotiation.
    - ``await media.unpublish(publisher_id)`` ends the publisher's tracks.
    - ``await media.view(viewer_id)`` returns the server's offer SDP (one RTCPeerConnection per viewer,
      carrying every live track); ``await media.answer(viewer_id, answer_sdp)`` completes it. When
      tracks come and go the server re-offers through ``on_offer(viewer_id, sdp)`` (a coroutine
      function) and expects ``answer`` again. ``await media.leave(viewer_id)`` closes the viewer.
    - ``media.mids(viewer_id)`` maps the mids of the viewer's latest offer to track ids, so the client
      knows which received track is whose camera, screen or voice (send it along with the offer).
    - ``await media.candidate(peer_id, "candidate:...", sdp_mid, viewer=False)`` adds a trickled ICE
      candidate from a publisher (``viewer=True``: from a viewer); the server's own SDP already holds
      all of its candidates.
    - ``on_tracks(tracks)`` is called with the full list of live tracks whenever it changes, each
      ``{"id": "<publisher>:<label>", "publisher", "label", "kind": "audio"|"video", "codec"}``.
    - Bad input raises :class:`MediaError` (``code``, ``message``) and changes nothing.

Recorder interface
    ``unsubscribe = media.subscribe(callback)``: ``callback(frame)`` runs on the event loop for every
    encoded frame of every live track, in arrival order per track, and must not block (hand the frame
    to a queue or a thread). ``frame`` is a frozen :class:`EncodedFrame`:

    ``publisher_id: str, track_id: str, kind: "audio"|"video", codec: "vp8"|"h264"|"opus",
    data: bytes, pts: int, time_base: fractions.Fraction, keyframe: bool``

    ``data`` is one whole encoded frame as the codec's decoder takes it (a VP8 frame, H.264 Annex B
    access unit, one Opus packet), ``time_base`` is 1/clock rate (1/90000 video, 1/48000 Opus). ``pts``
    never goes back within a track id, also across publisher restarts and device switches, and is
    anchored on a clock shared by all tracks of one ``Media``: a track's first frame has
    ``pts * time_base`` ≈ seconds since ``media.epoch`` (``time.monotonic()`` when the ``Media`` was
    created), so tracks line up with each other and with the session clock.
    A track has ended when it leaves ``on_tracks``' list. Video starts being useful at the first
    ``keyframe``; ``media.request_keyframe(track_id)`` asks the publisher for one.

Forwarding (``forward.py``): see its docstring; it relies on aiortc 1.16.0 internals, pinned.
"""

from signaling.webrtc.forward import EncodedFrame
from signaling.webrtc.peers import Media, MediaError, parse_ice_servers

__all__ = ["EncodedFrame", "Media", "MediaError", "parse_ice_servers"]
