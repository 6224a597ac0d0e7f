"""Where a recording lives on disk. Ids are checked before they touch the file system."""

from __future__ import annotations

import re
from pathlib import Path

_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def valid_id(session_id: object) -> bool:
    return isinstance(session_id, str) and bool(_ID.fullmatch(session_id))


def recording_dir(root: Path, session_id: str) -> Path:
    if not valid_id(session_id):
        raise ValueError(f"not a session id: {session_id!r}")
    return root / session_id


def events_path(root: Path, session_id: str) -> Path:
    return recording_dir(root, session_id) / "events.log"


def snapshots_path(root: Path, session_id: str) -> Path:
    return recording_dir(root, session_id) / "snapshots.log"


def index_path(root: Path, session_id: str) -> Path:
    return recording_dir(root, session_id) / "index.cache"
