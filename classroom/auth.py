"""Signed, expiring tokens for links and for participants resuming their identity."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from itsdangerous import BadSignature, URLSafeSerializer

from .core.errors import CommandError

LinkRole = Literal["trainer", "learner", "replay"]
LINK_ROLES = ("trainer", "learner", "replay")


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says. `pid` and `name` are set only on participant tokens,
    `assignment` only on a replay assignee's token (`Signer.assignee`)."""

    session_id: str
    role: str
    expires: int
    pid: str | None = None
    name: str | None = None
    assignment: str | None = None


class Signer:
    """Issues and verifies tokens. Link and participant tokens use different salts, so one can
    never be passed off as the other."""

    def __init__(self, secret: str, link_ttl: int, participant_ttl: int) -> None:
        self._links = URLSafeSerializer(secret, salt="classcast.link")
        self._participants = URLSafeSerializer(secret, salt="classcast.participant")
        self.link_ttl = link_ttl
        self.participant_ttl = participant_ttl

    def link(self, session_id: str, role: LinkRole, ttl: int | None = None) -> str:
        exp = int(time.time()) + (ttl if ttl is not None else self.link_ttl)
        return self._links.dumps({"s": session_id, "r": role, "e": exp})

    def participant(self, session_id: str, role: str, pid: str, name: str) -> str:
        exp = int(time.time()) + self.participant_ttl
        return self._participants.dumps({"s": session_id, "r": role, "e": exp, "p": pid, "n": name})

    def assignee(self, session_id: str, pid: str, name: str, assignment: str, expires: int) -> str:
        """A replay assignee's personal link token: a replay viewer's token (`pid` is the viewer)
        that also names the assignment. Its expiry is given, not now + a TTL, so the same
        assignment always yields the same token and links need not be stored."""
        return self._participants.dumps(
            {"s": session_id, "r": "replay", "e": expires, "p": pid, "n": name, "a": assignment}
        )

    def verify(self, token: object, session_id: str | None = None) -> Claims:
        """Verify a link or participant token; raise CommandError with a precise code."""
        if not isinstance(token, str) or not token or len(token) > 2048:
            raise CommandError("invalid_token", "a token is required")
        data = None
        for serializer in (self._participants, self._links):
            try:
                data = serializer.loads(token)
                break
            except BadSignature:
                continue
        if not isinstance(data, dict) or not {"s", "r", "e"} <= data.keys():
            raise CommandError("invalid_token", "the token is not valid for this server")
        if data["r"] not in LINK_ROLES:
            raise CommandError("invalid_token", "the token names an unknown role")
        if data["e"] < time.time():
            raise CommandError("expired_token", "the link has expired; ask the trainer for a new one")
        if session_id is not None and data["s"] != session_id:
            raise CommandError("wrong_session", "the token is for another session")
        return Claims(data["s"], data["r"], data["e"], data.get("p"), data.get("n"), data.get("a"))


def new_id(nbytes: int = 9) -> str:
    """A random URL-safe id that never starts with `-`, so no command line takes it for an
    option (ids made before this rule still work everywhere)."""
    while True:
        value = secrets.token_urlsafe(nbytes)
        if not value.startswith("-"):
            return value


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
