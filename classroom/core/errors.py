"""The one error type the session core raises: a stable code plus a human message."""

from __future__ import annotations


class CommandError(Exception):
    """A refused command. Nothing changed; the code is stable, the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def as_ack(self) -> dict:
        return {"ok": False, "error": {"code": self.code, "message": self.message}}


# Every code the core or the transport may answer with, documented in docs/protocol.md.
CODES = {
    "unknown_command": "the command name is not part of the protocol",
    "invalid_payload": "a field is missing, has the wrong type, or is not allowed",
    "too_long": "a text is longer than its limit",
    "out_of_range": "a number, an index, or a list's number of items is outside its allowed range",
    "payload_too_large": "the whole command is larger than the size limit",
    "forbidden": "your role may not do this",
    "not_joined": "send `join` before any other command",
    "not_found": "the target does not exist",
    "not_owner": "the target belongs to someone else",
    "session_not_live": "the session has not started yet",
    "session_ended": "the session has ended",
    "already_live": "the session is already live",
    "recording_off": "the session was created with recording off",
    "muted": "a trainer muted you in chat",
    "rate_limited": "too many commands of this kind; slow down",
    "poll_closed": "the poll is closed",
    "poll_open": "the poll must be closed first",
    "question_closed": "the question is answered or dismissed",
    "limit_reached": "a size limit of the session is reached",
    "no_quiz": "the quiz is required but the recording has no quiz",
    "nobody_to_assign": "nobody missed the session or left early",
    "assignments_damaged": "the session's stored assignments cannot be read",
    "board_full": "the whiteboard holds (or you drew) as much as it may; erase, clear or add a page",
    "stroke_ended": "the stroke was already finished",
    "nothing_to_undo": "there is nothing of yours to undo or redo",
    "unauthorized": "the request carries no admin key or token",
    "invalid_token": "the link or token is forged, malformed or for another purpose",
    "expired_token": "the link or token has expired",
    "wrong_session": "the token is for another session",
    "name_required": "a learner must give a display name",
    "session_live": "end the session first",
    "recording_damaged": "the recording's log is damaged; what could be recovered is listed",
    "media_failed": "the media layer refused an offer, answer or candidate (the message says why)",
    "internal_error": "the server failed; nothing changed",
    "storage_failed": "the change took effect but is not yet on disk; the server keeps retrying",
    "storage_full": "the server cannot save right now; nothing changed",
    "temporarily_unavailable": "cluster mode: Redis or the session's node is unreachable; not acknowledged",
    "method_not_allowed": "the HTTP method is not allowed on this path",
    "range_not_satisfiable": "the requested byte range lies outside the file (HTTP 416)",
    "http_error": "another HTTP error (the status code says which)",
    "draining": "the server is stopping: connect again (a load balancer sends you to another node)",
}
