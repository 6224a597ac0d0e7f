"""docs/protocol.md's HTTP sections (9 and 10) and /api/openapi.json describe the same endpoints,
parameters and statuses (issue 9: the OpenAPI document had fallen behind the prose)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

PROTOCOL = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
_HEADING = re.compile(r"^### `(GET|POST|DELETE|PUT|PATCH) ([^`?]+)(\?[^`]*)?`", re.M)
_STATUS = re.compile(r"\b([1-5]\d\d)\s+`[a-z_]+`")
_SUCCESS = re.compile(r"(?:`|← )(2\d\d)\b")


def _sections() -> tuple[str, str]:
    text = PROTOCOL.read_text()
    http = text[text.index("\n## 9. HTTP API") : text.index("\n## 11. ")]
    replay_intro = http[http.index("\n## 10. ") :]
    return http, replay_intro[: replay_intro.index("\n### ")]


def documented() -> dict[tuple[str, str], dict[str, set[str]]]:
    """(method, path) -> {"query": names, "path": names, "statuses": codes} from protocol.md."""
    http, replay_intro = _sections()
    common = set(_STATUS.findall(replay_intro))  # the access rules of every recording's routes
    out = {}
    heads = list(_HEADING.finditer(http))
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(http)
        body = http[m.end() : end].split("\n## ")[0]
        method, path, query = m.group(1), m.group(2), m.group(3) or ""
        statuses = set(_STATUS.findall(body)) | set(_SUCCESS.findall(body))
        if path.startswith("/api/recordings/{id}"):
            statuses |= common
        if not any(s.startswith("2") for s in statuses):
            statuses.add("200")
        out[(method, path)] = {
            "query": {q.split("=")[0] for q in query.lstrip("?").split("&") if q},
            "path": set(re.findall(r"\{(\w+)\}", path)),
            "statuses": statuses,
        }
    return out


def published(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, set[str]]]:
    out = {}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            params = op.get("parameters", [])
            out[(method.upper(), path)] = {
                "query": {p["name"] for p in params if p["in"] == "query"},
                "path": {p["name"] for p in params if p["in"] == "path"},
                "statuses": set(op["responses"]),
            }
    return out


async def test_protocol_md_and_openapi_agree(server):
    async with server.http.get(f"{server.base_url}/api/openapi.json") as r:
        assert r.status == 200
        doc = await r.json()
    docs, api = documented(), published(doc)
    assert len(docs) >= 15
    assert set(docs) == set(api), set(docs) ^ set(api)
    problems = []
    for key in sorted(docs):
        for what in ("query", "path", "statuses"):
            mine, theirs = docs[key][what], api[key][what]
            if mine != theirs:
                problems.append(
                    f"{key[0]} {key[1]} {what}: only in protocol.md {sorted(mine - theirs)}, "
                    f"only in OpenAPI {sorted(theirs - mine)}"
                )
    assert not problems, "\n".join(problems)
