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

    def inc(self, name: str, camera: str = ANY_CAMERA, n: int = 1) -> int:
        key = (camera, name)
        self._counts[key] += n
        return self._counts[key]

    def get(self, name: str, camera: str = ANY_CAMERA) -> int:
        return self._counts[(camera, name)]

    def total(self, name: str) -> int:
        return sum(v for (_, n), v in self._counts.items() if n == name)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """``{camera: {counter: value}}``, a copy."""
        out: dict[str, dict[str, Any]] = {}
        for (camera, name), value in sorted(self._counts.items()):
            out.setdefault(camera, {})[name] = value
        return out
