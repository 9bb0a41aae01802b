"""Counters for everything received, dropped, rejected or missing, per camera.

Owns nothing but numbers: inputs, the bus and sinks increment them; the daemon
logs them periodically and the library API (``Daemon.stats``) reads them. A
camera of ``"*"`` is for what belongs to no single camera (a sink's queue).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["ANY_CAMERA", "Stats"]

ANY_CAMERA = "*"


class Stats:
    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        # Worker processes' counters (``lprmeta run --workers``): their latest snapshot
        # each, read as part of this process's (get, total, snapshot).
        self._remote: dict[str, Counter[tuple[str, str]]] = {}

    def inc(self, name: str, camera: str = ANY_CAMERA, n: int = 1) -> int:
        """Add ``n``; returns this process's count (what "log it once" decides on)."""
        key = (camera, name)
        self._counts[key] += n
        return self._counts[key]

    def get(self, name: str, camera: str = ANY_CAMERA) -> int:
        key = (camera, name)
        return self._counts[key] + sum(r[key] for r in self._remote.values())

    def total(self, name: str) -> int:
        return sum(v for (_, n), v in self._all().items() if n == name)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """``{camera: {counter: value}}``, a copy."""
        out: dict[str, dict[str, Any]] = {}
        for (camera, name), value in sorted(self._all().items()):
            out.setdefault(camera, {})[name] = value
        return out

    def absorb(self, source: str, snapshot: dict[str, dict[str, int]]) -> None:
        """A worker's counters as it last reported them (they replace its previous ones)."""
        self._remote[source] = Counter(
            {(camera, name): v for camera, names in snapshot.items() for name, v in names.items()}
        )

    def retire(self, source: str) -> None:
        """A worker ended: what it counted stays counted (its successor starts at 0), so
        every counter only grows, as ``/metrics`` promises."""
        self._counts.update(self._remote.pop(source, Counter()))

    def _all(self) -> Counter[tuple[str, str]]:
        if not self._remote:
            return self._counts
        out = Counter(self._counts)
        for remote in self._remote.values():
            out.update(remote)
        return out
