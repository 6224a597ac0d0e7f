"""The OpenAPI 3.1 document of the HTTP API, served at /api/openapi.json."""

from __future__ import annotations

from typing import Any

from . import __version__

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}

_SESSION = {
    "type": "object",
    "required": ["id", "title", "status", "created_at", "trainer_url", "join_url", "replay_url"],
    "properties": {
        "id": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "string", "enum": ["created", "live", "ended"]},
        "created_at": {"type": "number", "description": "Unix time"},
        "started_at": {"type": ["number", "null"]},
        "ended_at": {"type": ["number", "null"]},
        "trainer_url": {"type": "string", "description": "signed link giving the trainer role"},
        "join_url": {"type": "string", "description": "signed link for learners"},
        "replay_url": {"type": "string", "description": "signed link to the replay"},
        "participants": {"type": "integer"},
        "online": {"type": "integer"},
        "seq": {"type": "integer", "description": "sequence number of the last event"},
        "recording": {"type": "boolean", "description": "whether a replay is recorded"},
        "anonymize": {"type": "boolean", "description": "learner names anonymised in the replay"},
    },
}


def _errors(*statuses: int) -> dict[str, Any]:
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    names = {
        400: "Bad input",
        401: "No or invalid credentials",
        403: "Forbidden",
        404: "Not found",
        409: "Conflict: recording_off (the session is recorded off: no replay), session_live (DELETE;"
        " assignments to those who missed a running session), limit_reached (progress reports,"
        " assignments), no_quiz, nobody_to_assign (assignments)",
        413: "Body over 256 KiB",
        416: "Range not satisfiable (range_not_satisfiable; Content-Range: bytes */<size>)",
        429: "Too fast (rate_limited)",
        500: "Server failure (internal_error, recording_damaged, assignments_damaged)",
        503: "The disk refuses writes (storage_full); nothing was created",
    }
    return {str(s): {"description": names[s], **ref} for s in statuses}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    ok: dict[str, Any],
    *errors: int,
    params: tuple[str, ...] = (),
    body: dict | None = None,
    security: str = "replay",
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{security: []}, {"admin": []}],
        "responses": {**ok},
    }
    # Every recording route may answer 409 recording_off (docs/protocol.md section 10).
    op["responses"].update(_errors(*sorted({*errors, 409})))
    path_params = [p for p in params if not p.startswith("?")]
    op["parameters"] = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
        for p in ["id", *path_params]
    ] + [_query(p[1:]) for p in params if p.startswith("?")]
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _query(name: str) -> dict[str, Any]:
    """A query parameter: `audience` (learner|trainer), else milliseconds; `!` marks required."""
    required = name.endswith("!")
    name = name.rstrip("!")
    if name == "format":
        schema: dict[str, Any] = {"type": "string", "enum": ["json", "csv"], "default": "json"}
    elif name == "audience":
        schema = {"type": "string", "enum": ["learner", "trainer"], "default": "learner"}
    elif name == "before":
        schema = {"type": "integer", "minimum": 0, "description": "a seq: items older than this one"}
    elif name == "download":
        schema = {"type": "integer", "enum": [0, 1], "default": 0, "description": "1: as an attachment"}
    elif name == "limit":
        schema = {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}
    elif name == "offset":
        schema = {"type": "integer", "minimum": 0, "default": 0, "description": "items to skip"}
    else:
        schema = {"type": "integer", "minimum": 0, "description": "milliseconds since the start"}
    return {"name": name, "in": "query", "required": required, "schema": schema}


_ASSIGNMENT_IN = {
    "type": "object",
    "required": ["deadline"],
    "additionalProperties": False,
    "properties": {
        "deadline": {"type": "string", "format": "date-time", "description": "ISO 8601 with a time zone"},
        "threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.9},
        "quiz_required": {"type": "boolean", "default": False},
        "audience": {"type": "string", "enum": ["list", "missed"], "default": "list"},
        "assignees": {
            "type": "array",
            "maxItems": 500,
            "items": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "maxLength": 60},
                    "email": {"type": "string", "maxLength": 254, "format": "email"},
                },
            },
        },
        "left_early_s": {"type": "integer", "minimum": 0, "maximum": 86400, "default": 300},
    },
}


def _recording_paths() -> dict[str, Any]:
    obj = {"type": "object"}
    json_or_csv = {
        "200": {
            "description": "JSON (msgpack with Accept: application/msgpack), or CSV with"
            " format=csv or Accept: text/csv",
            "content": {
                "application/json": {"schema": obj},
                "application/msgpack": {"schema": obj},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    }
    negotiated = {
        "description": "JSON, or msgpack with Accept: application/msgpack",
        "content": {"application/json": {"schema": obj}, "application/msgpack": {"schema": obj}},
    }
    ok = {"200": negotiated}
    xapi_get = _op(
        "xAPI 1.0.3 statements of what happened (attended, answered, asked, progressed,"
        " completed), validated with ralph's xAPI models; a StatementResult page",
        {
            "200": {
                "description": "statements ordered by timestamp then id; `more`: the next"
                " page's path or empty; `total`: how many in all",
                "content": {"application/json": {"schema": obj}},
            }
        },
        400,
        401,
        403,
        404,
        params=("?offset", "?limit"),
        security="trainer",
    )
    for param in xapi_get["parameters"]:
        if param["name"] == "limit":
            param["schema"] = {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1000}
    return {
        "/api/recordings": {
            "get": {
                "summary": "List recordings (admin: all; trainer token: that session's)",
                "security": [{"admin": []}, {"trainer": []}],
                "responses": {"200": negotiated, **_errors(401, 403)},
            }
        },
        "/api/recordings/{id}": {
            "get": _op(
                "Manifest: duration, start, chapters, polls, questions, pauses, counts, media",
                ok,
                401,
                403,
                404,
            ),
            "delete": _op(
                "Delete a recording for good",
                {"204": {"description": "Deleted"}},
                401,
                403,
                404,
                security="trainer",
            ),
        },
        "/api/recordings/{id}/events": {
            "get": _op(
                "Events with from <= t <= to, in order",
                ok,
                400,
                401,
                403,
                404,
                params=("?from", "?to", "?audience"),
            ),
        },
        "/api/recordings/{id}/state": {
            "get": _op(
                "Folded state at time t, bounded as a join snapshot (recent part, current page, more)",
                ok,
                400,
                401,
                403,
                404,
                params=("?t!", "?audience"),
            ),
        },
        **{
            f"/api/recordings/{{id}}/state/{kind}": {
                "get": _op(
                    f"The {kind} shown at time t older than seq `before`, a page of `limit`",
                    ok,
                    400,
                    401,
                    403,
                    404,
                    params=("?t!", "?before", "?limit", "?audience"),
                ),
            }
            for kind in ("chat", "polls", "questions")
        },
        "/api/recordings/{id}/state/board/{page}": {
            "get": _op(
                "One whiteboard page as it was at time t",
                ok,
                400,
                401,
                403,
                404,
                params=("page", "?t!", "?audience"),
            ),
        },
        "/api/recordings/{id}/export/{name}": {
            "get": _op(
                "Export: recording.json, recording.msgpack, chat.vtt, chat.txt, polls.csv, questions.csv",
                {"200": {"description": "The file"}},
                401,
                403,
                404,
                params=("name",),
            ),
        },
        "/api/recordings/{id}/media/{file}": {
            "get": _op(
                "A media file of the recording (WebM or Matroska), with HTTP Range requests",
                {
                    "200": {"description": "The whole file"},
                    "206": {"description": "The requested byte range (Content-Range)"},
                },
                400,
                401,
                403,
                404,
                416,
                params=("file", "?download"),
            ),
        },
        "/api/recordings/{id}/viewers": {
            "post": _op(
                "Register as a replay viewer; returns a viewer token",
                {"201": negotiated},
                400,
                401,
                403,
                404,
                body={"type": "object", "properties": {"name": {"type": "string", "maxLength": 60}}},
            ),
        },
        "/api/recordings/{id}/viewers/{viewer}/progress": {
            "post": _op(
                "A replay viewer's player reports the media-time interval [from, to) it played",
                {"204": {"description": "Stored"}},
                400,
                401,
                403,
                404,
                429,
                params=("viewer",),
                body={
                    "type": "object",
                    "required": ["from", "to"],
                    "additionalProperties": False,
                    "properties": {
                        "from": {"type": "integer", "minimum": 0, "description": "ms of the recording"},
                        "to": {
                            "type": "integer",
                            "minimum": 1,
                            "description": "after from, at most duration_ms",
                        },
                    },
                },
            ),
        },
        "/api/sessions/{id}/report": {
            "get": _op(
                "Engagement report: attendance, participation, polls, timeline, replay viewers (JSON or CSV)",
                json_or_csv,
                400,
                401,
                403,
                404,
                params=("?format",),
                security="trainer",
            ),
        },
        "/api/sessions/{id}/xapi": {"get": xapi_get},
        "/api/sessions/{id}/assignments": {
            "post": _op(
                "Assign the replay (and optionally its quiz) with a deadline to learners, or to everyone"
                " who missed the live session or left early; each assignee gets a personal link",
                {"201": negotiated},
                400,
                401,
                403,
                404,
                500,
                503,
                body=_ASSIGNMENT_IN,
                security="trainer",
            ),
            "get": _op(
                "The session's replay assignments with each assignee's status (JSON or CSV)",
                json_or_csv,
                400,
                401,
                403,
                404,
                500,
                params=("?format",),
                security="trainer",
            ),
        },
        "/api/recordings/{id}/assignment": {
            "get": _op(
                "An assignee's own deadline, status and progress (their personal link's token)",
                ok,
                401,
                403,
                404,
                500,
            ),
        },
        "/api/recordings/{id}/assignment.ics": {
            "get": _op(
                "An assignee's deadline as an iCalendar file",
                {
                    "200": {
                        "description": "iCalendar",
                        "content": {"text/calendar": {"schema": {"type": "string"}}},
                    }
                },
                401,
                403,
                404,
                500,
            ),
        },
        "/api/recordings/{id}/quiz": {
            "get": _op(
                "This viewer's quiz answers (with the live results where the trainer shared them)",
                ok,
                401,
                403,
                404,
            ),
        },
        "/api/recordings/{id}/quiz/{poll}": {
            "post": _op(
                "Answer a poll as a quiz question",
                ok,
                400,
                401,
                403,
                404,
                params=("poll",),
                body={
                    "type": "object",
                    "required": ["choices"],
                    "properties": {"choices": {"type": "array", "items": {"type": "integer", "minimum": 0}}},
                },
            ),
        },
        "/api/recordings/{id}/questions": {
            "get": _op("Questions anchored to moments of the replay, with answers", ok, 401, 403, 404),
            "post": _op(
                "Ask a question anchored at time t",
                {"201": negotiated},
                400,
                401,
                403,
                404,
                body={
                    "type": "object",
                    "required": ["t", "text"],
                    "properties": {
                        "t": {"type": "integer", "minimum": 0},
                        "text": {"type": "string", "maxLength": 1000},
                    },
                },
            ),
        },
        "/api/recordings/{id}/questions/{qid}/answer": {
            "post": _op(
                "Answer a replay question (trainer or admin)",
                ok,
                400,
                401,
                403,
                404,
                params=("qid",),
                body={
                    "type": "object",
                    "required": ["text"],
                    "properties": {"text": {"type": "string", "maxLength": 2000}},
                },
                security="trainer",
            ),
        },
    }


def document(server_url: str) -> dict[str, Any]:
    session_ref = {"$ref": "#/components/schemas/Session"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Classcast",
            "version": __version__,
            "description": "Live classroom server. The socket.io protocol is in docs/protocol.md.",
        },
        "servers": [{"url": server_url}],
        "components": {
            "schemas": {"Error": _ERROR, "Session": _SESSION},
            "securitySchemes": {
                "admin": {"type": "http", "scheme": "bearer", "description": "the admin key"},
                "trainer": {"type": "http", "scheme": "bearer", "description": "a trainer token"},
                "replay": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the replay link's token, a viewer token, a trainer or learner token",
                },
            },
        },
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Liveness and version",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "status": {"const": "ok"},
                                    "version": {"type": "string"},
                                    "live_sessions": {"type": "integer"},
                                },
                            },
                            "The server is up",
                        )
                    },
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: whether to send this node traffic (not draining, checks pass)",
                    "responses": {
                        "200": _json(
                            {"type": "object", "properties": {"status": {"const": "ready"}}}, "Ready"
                        ),
                        "503": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "status": {"const": "unavailable"},
                                    "problems": {
                                        "type": "object",
                                        "additionalProperties": {"type": "string"},
                                        "description": "why, by check name (`draining`, `redis`, …)",
                                    },
                                },
                            },
                            "Draining, or a readiness check failed",
                        ),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics of this node (text exposition format)",
                    "security": [{"admin": []}],
                    "responses": {
                        "200": {
                            "description": "The metrics",
                            "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
                        },
                        **_errors(401, 403),
                    },
                }
            },
            "/api/sessions": {
                "post": {
                    "summary": "Create a session",
                    "security": [{"admin": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["title"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "title": {"type": "string", "maxLength": 200},
                                        "recording": {"type": "boolean", "default": True},
                                        "anonymize": {
                                            "type": "boolean",
                                            "default": False,
                                            "description": "learner names anonymised in the replay",
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "responses": {"201": _json(session_ref, "Created"), **_errors(400, 401, 403, 413, 503)},
                },
                "get": {
                    "summary": "List sessions, newest first",
                    "security": [{"admin": []}],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {"sessions": {"type": "array", "items": session_ref}},
                            },
                            "All sessions",
                        ),
                        **_errors(401, 403),
                    },
                },
            },
            "/api/sessions/{id}": {
                "get": {
                    "summary": "Describe one session",
                    "security": [{"admin": []}, {"trainer": []}],
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {"200": _json(session_ref, "The session"), **_errors(401, 403, 404)},
                }
            },
            **_recording_paths(),
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1 document"}},
                }
            },
        },
    }
