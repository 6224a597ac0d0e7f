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
    },
}


def _errors(*statuses: int) -> dict[str, Any]:
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    names = {400: "Bad input", 401: "No or invalid credentials", 403: "Forbidden", 404: "Not found"}
    return {str(s): {"description": names[s], **ref} for s in statuses}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


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
                                    "properties": {"title": {"type": "string", "maxLength": 200}},
                                }
                            }
                        },
                    },
                    "responses": {"201": _json(session_ref, "Created"), **_errors(400, 401, 403)},
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
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1 document"}},
                }
            },
        },
    }
