"""Counting what a stage had to leave out, so that nothing is dropped silently."""

from __future__ import annotations

from typing import Any

FIRST_IDS_KEPT = 5


class SkipLog:
    """Skipped utterances by reason: a count and the first few ids, for logs and metrics."""

    def __init__(self, existing: dict[str, Any] | None = None):
        self._counts: dict[str, int] = {}
        self._first_ids: dict[str, list[str]] = {}
        for reason, entry in (existing or {}).items():
            self._counts[reason] = entry["count"]
            self._first_ids[reason] = list(entry["first_ids"])

    def add(self, reason: str, utterance_id: str) -> None:
        self._counts[reason] = self._counts.get(reason, 0) + 1
        ids = self._first_ids.setdefault(reason, [])
        if len(ids) < FIRST_IDS_KEPT:
            ids.append(utterance_id)

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {
            reason: {"count": self._counts[reason], "first_ids": self._first_ids[reason]}
            for reason in sorted(self._counts)
        }

    def summary(self) -> str:
        """One line per reason, for the log."""
        return "\n".join(
            f"  skipped {entry['count']}: {reason} (first: {', '.join(entry['first_ids'])})"
            for reason, entry in self.as_dict().items()
        )
