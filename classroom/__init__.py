"""Classcast's live classroom: the session core, its HTTP API and socket.io server."""

__version__ = "0.1.0"
