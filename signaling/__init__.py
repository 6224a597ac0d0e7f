"""Classcast's real-time edge: socket.io, websockets, frame fan-out, WebRTC signaling and media."""
