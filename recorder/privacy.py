"""Learner names anonymised in a replay: each learner becomes "Learner N" in order of arrival."""

from __future__ import annotations

from typing import Any


class Aliases:
    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def learn(self, wire: dict[str, Any]) -> None:
        """Call for every event in order: participants get their alias when they first join."""
        if wire["type"] == "participant.joined" and wire["data"]["role"] == "learner":
            pid = wire["data"]["id"]
            if pid not in self.names:
                self.names[pid] = f"Learner {len(self.names) + 1}"

    def event(self, wire: dict[str, Any]) -> dict[str, Any]:
        data = wire["data"]
        if wire["type"] in ("participant.joined", "chat.message", "qa.asked") and data.get("name"):
            pid = data["id"] if wire["type"] == "participant.joined" else wire["actor"]
            alias = self.names.get(pid)
            if alias is not None:
                return {**wire, "data": {**data, "name": alias}}
        return wire

    def view(self, view: dict[str, Any]) -> dict[str, Any]:
        view = dict(view)
        view["participants"] = [self._named(p, p["id"]) for p in view["participants"]]
        view["chat"] = [self._named(m, m["author"]) for m in view["chat"]]
        view["questions"] = [self._named(q, q["author"]) for q in view["questions"]]
        return view

    def _named(self, item: dict[str, Any], pid: str | None) -> dict[str, Any]:
        alias = self.names.get(pid) if pid else None
        return {**item, "name": alias} if alias and item.get("name") else item
