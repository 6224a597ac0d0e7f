"""The aiohttp application keys every HTTP route reads (`request.app[SESSIONS]`): one public place
for the classroom's routes, the recorder's replay routes and the composition root (`app.py`),
which sets them."""

from __future__ import annotations

from aiohttp import web

from .auth import Signer
from .ports import Edge
from .sessions import Sessions

SESSIONS = web.AppKey("sessions", Sessions)
SIGNER = web.AppKey("signer", Signer)
ADMIN_KEY = web.AppKey("admin_key", str)
PUBLIC_URL = web.AppKey("public_url", str)
# The socket.io hub (`signaling.hub.Hub`), seen through what the HTTP side may ask of it.
HUB = web.AppKey("hub", Edge)
