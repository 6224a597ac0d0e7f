"""The Redis keys of cluster mode: one place that names everything a node reads or writes."""

from __future__ import annotations

K_INDEX = "cc:sessions"


def k_info(session_id: str) -> str:
    return f"cc:session:{session_id}"


def k_lease(session_id: str) -> str:
    return f"cc:lease:{session_id}"


def k_stream(session_id: str) -> str:
    return f"cc:events:{session_id}"


def k_epoch(session_id: str) -> str:
    return f"cc:epoch:{session_id}"


def k_inbox(node: str) -> str:
    return f"cc:inbox:{node}"


def k_alive(node: str) -> str:
    return f"cc:node:{node}"


def k_open(address: str) -> str:
    """Open websockets from one address: a hash, node id -> how many that node holds."""
    return f"cc:open:{address}"


def k_mints(session_id: str, address: str) -> str:
    """The bucket of new identities from one address on one session's link."""
    return f"cc:mint:{session_id}:{address}"


def k_link_mints(session_id: str) -> str:
    """The bucket of new identities on one session's link, from every address (taken in batches)."""
    return f"cc:mintlink:{session_id}"
