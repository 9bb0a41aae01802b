"""Loading the configured lists, and reloading list files when they change.

Owns the file side of ``[[lists]]``; matching is :mod:`lprmeta.lists`'s. At
start a file that cannot be read is a configuration error (the daemon does not
start on half its lists); later, a file that disappears or breaks is logged
once and the list keeps its last good contents.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from .config import ListConfig
from .errors import ConfigError, ConfigProblem
from .lists import Matcher, PlateList, read_csv
from .log import get_logger

__all__ = ["ListFiles"]

RELOAD_INTERVAL = 2.0  # seconds between looks at the files' modification times


class ListFiles:
    def __init__(self, lists: tuple[ListConfig, ...], matcher: Matcher) -> None:
        self.lists = lists
        self.matcher = matcher
        self._seen: dict[str, tuple[int, int] | None] = {}
        self._log = get_logger("lprmeta.lists")

    def _build(self, cfg: ListConfig) -> PlateList:
        entries: list[str | tuple[str, str | None]] = list(cfg.plates)
        if cfg.file is not None:
            entries += read_csv(cfg.file.read_text(encoding="utf-8-sig"))
        return PlateList.of(cfg.name, entries, tolerance=cfg.tolerance, lookalikes=cfg.lookalikes)

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def load_all(self) -> None:
        problems: list[ConfigProblem] = []
        for i, cfg in enumerate(self.lists):
            try:
                self.matcher.replace(self._build(cfg))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                problems.append(ConfigProblem(f"lists[{i}].file", f"cannot read: {exc}"))
            if cfg.file is not None:
                self._seen[cfg.name] = self._stamp(cfg.file)
        if problems:
            raise ConfigError(problems)
        for cfg in self.lists:
            self._log.info("list loaded", list=cfg.name, plates=len(self.matcher.lists[cfg.name]))

    def reload_changed(self) -> list[str]:
        """Reload every list whose file changed; returns their names."""
        reloaded = []
        for cfg in self.lists:
            if cfg.file is None:
                continue
            stamp = self._stamp(cfg.file)
            if stamp == self._seen.get(cfg.name):
                continue
            self._seen[cfg.name] = stamp
            try:
                plates = self._build(cfg)
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                self._log.error(
                    "list file unreadable; keeping its last contents",
                    list=cfg.name,
                    file=str(cfg.file),
                    error=str(exc),
                )
                continue
            self.matcher.replace(plates)
            reloaded.append(cfg.name)
            self._log.info("list reloaded", list=cfg.name, plates=len(plates))
        return reloaded

    async def watch(self) -> None:
        if not any(cfg.file is not None for cfg in self.lists):
            return
        while True:
            await asyncio.sleep(RELOAD_INTERVAL)
            self.reload_changed()
