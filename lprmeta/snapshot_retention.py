"""Retention of the snapshot directory when there is no store (``[store] enabled =
false``): the same ``keep_days`` and ``max_pictures_bytes`` as the store's.

The directory is ``<camera>/<YYYY-MM-DD>/<HHMMSSmmm>_...``: the names say when
a picture was taken, so no database is needed. A pass (on a worker thread, never
on the event loop) removes every day directory older than ``keep_days``, the
files of the boundary day older than the cut, and while the pictures take more
than the budget, the oldest files first (day by day, in name order). The size
of a day that is over (not today's) is measured once and remembered. A pass
removes at most :data:`MAX_FILES` files; the next comes soon when there is more.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from .log import get_logger
from .stats import Stats

__all__ = ["MAX_FILES", "SnapshotRetention"]

MAX_FILES = 5000
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class SnapshotPass:
    removed: int = 0
    bytes_removed: int = 0
    forced: int = 0
    more: bool = False


class SnapshotRetention:
    def __init__(
        self,
        root: Path,
        *,
        keep_days: float,
        max_bytes: int | None,
        stats: Stats,
        interval: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.keep_days = keep_days
        self.max_bytes = max_bytes
        self.stats = stats
        self.interval = interval
        self.clock = clock
        self._sizes: dict[Path, int] = {}  # bytes in a day directory that is over
        self._forced_said = False
        self._log = get_logger("lprmeta.retention")

    async def run(self) -> None:
        while True:
            result = await asyncio.to_thread(self.pass_once)
            await asyncio.sleep(0.05 if result.more else self.interval)

    def _days(self) -> list[tuple[date, Path]]:
        out: list[tuple[date, Path]] = []
        with contextlib.suppress(FileNotFoundError):
            for camera in os.scandir(self.root):
                if not camera.is_dir(follow_symlinks=False):
                    continue
                for day in os.scandir(camera.path):
                    if day.is_dir(follow_symlinks=False) and _DAY.match(day.name):
                        with contextlib.suppress(ValueError):
                            out.append((date.fromisoformat(day.name), Path(day.path)))
        return sorted(out)

    def _size(self, day_dir: Path, today: date, day: date) -> int:
        cached = self._sizes.get(day_dir)
        if cached is not None:
            return cached
        total = 0
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(day_dir):
                with contextlib.suppress(FileNotFoundError):
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
        if day < today:
            self._sizes[day_dir] = total
        return total

    def pass_once(self) -> SnapshotPass:
        r = SnapshotPass()
        now = datetime.fromtimestamp(self.clock(), UTC)
        cut = now - timedelta(days=self.keep_days)
        days = self._days()
        for day, day_dir in days:
            if r.removed >= MAX_FILES:
                r.more = True
                break
            if day < cut.date():
                self._remove(day_dir, r, lambda _p: True, forced=False)
            elif day == cut.date():
                cut_name = cut.strftime("%H%M%S%f")[:9]

                def older(path: Path, c: str = cut_name) -> bool:
                    return path.name[:9] < c

                self._remove(day_dir, r, older, forced=False)
        if self.max_bytes is not None:
            # The same listing: a day directory the age rule emptied measures 0.
            total = sum(self._size(d, now.date(), day) for day, d in days)
            budget = total - self.max_bytes
            for _day, day_dir in days:
                if budget <= 0 or r.removed >= MAX_FILES:
                    break
                before = r.bytes_removed
                self._remove(day_dir, r, lambda _p: True, forced=True, cut=cut, limit=budget)
                budget -= r.bytes_removed - before
            r.more = r.more or (budget > 0 and r.removed >= MAX_FILES)
        for name, n in (
            ("retention_pictures_removed", r.removed),
            ("retention_bytes_removed", r.bytes_removed),
            ("retention_forced", r.forced),
        ):
            if n:
                self.stats.inc(name, "*", n)
        return r

    def _remove(
        self,
        day_dir: Path,
        r: SnapshotPass,
        which: Callable[[Path], bool],
        *,
        forced: bool,
        cut: datetime | None = None,
        limit: int | None = None,
    ) -> None:
        try:
            names = sorted(e.name for e in os.scandir(day_dir) if e.is_file(follow_symlinks=False))
        except FileNotFoundError:
            return
        freed = 0
        for name in names:
            if r.removed >= MAX_FILES or (limit is not None and freed >= limit):
                break
            path = day_dir / name
            if not which(path):
                continue
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            freed += size
            r.removed += 1
            r.bytes_removed += size
            if day_dir in self._sizes:
                self._sizes[day_dir] -= size
            if forced and cut is not None and _taken(day_dir, name) >= cut:
                r.forced += 1
                if not self._forced_said:
                    self._forced_said = True
                    self._log.warning(
                        "disk budget forces removing pictures younger than keep_days",
                        max_pictures_bytes=self.max_bytes,
                        keep_days=self.keep_days,
                    )
        with contextlib.suppress(OSError):
            day_dir.rmdir()  # only once empty
            self._sizes.pop(day_dir, None)


def _taken(day_dir: Path, name: str) -> datetime:
    """When a picture was taken, from its directory and name (start of day if unclear)."""
    day = datetime.fromisoformat(day_dir.name).replace(tzinfo=UTC)
    stamp = name[:9]
    if stamp.isdigit():
        with contextlib.suppress(ValueError):
            return day.replace(
                hour=int(stamp[:2]),
                minute=int(stamp[2:4]),
                second=int(stamp[4:6]),
                microsecond=int(stamp[6:9]) * 1000,
            )
    return day
