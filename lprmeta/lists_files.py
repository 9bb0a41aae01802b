"""Loading the configured lists, reloading list files when they change, and editing them.

Owns the file side of ``[[lists]]``; matching is :mod:`lprmeta.lists`'s. At
start a file that cannot be read is a configuration error (the daemon does not
start on half its lists); later, a file that disappears or breaks is logged
once and the list keeps its last good contents.

Files are read, parsed and written on a worker thread, never on the event loop
(a list of 100,000 plates takes a while to parse, and a disk can stall); only
the swap of the finished list happens on the loop. An edit (the web page's, or
``POST/DELETE /api/lists/{name}/plates``) rewrites the file atomically (a
temporary file beside it, flushed to disk, then renamed over it), keeps every
other line as it was (comments included), and is in force when the call
returns.
"""

from __future__ import annotations

import asyncio
import csv
import os
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from .config import ListConfig
from .errors import ConfigError, ConfigProblem
from .events import plate_key
from .lists import HEADERS, Entry, Matcher, PlateList, csv_line, read_csv
from .log import get_logger

__all__ = ["ListEditError", "ListFiles"]

RELOAD_INTERVAL = 2.0  # seconds between looks at the files' modification times
MAX_PLATE = 32  # characters of a plate added by an edit
MAX_LABEL = 200


class ListEditError(Exception):
    """An edit that cannot be made: ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class _Loaded:
    plates: PlateList
    file_entries: list[Entry]
    stamp: tuple[int, int] | None


class ListFiles:
    def __init__(self, lists: tuple[ListConfig, ...], matcher: Matcher) -> None:
        self.lists = lists
        self.matcher = matcher
        self._seen: dict[str, tuple[int, int] | None] = {}
        self._file_entries: dict[str, list[Entry]] = {}
        self._lock = asyncio.Lock()
        self._log = get_logger("lprmeta.lists")

    def config(self, name: str) -> ListConfig:
        for cfg in self.lists:
            if cfg.name == name:
                return cfg
        raise ListEditError(404, f"no list named {name!r}")

    def _load(self, cfg: ListConfig) -> _Loaded:
        """Read and parse one list (a worker thread's job, or the start's)."""
        stamp = _stamp(cfg.file) if cfg.file is not None else None
        file_entries = read_csv(cfg.file.read_text(encoding="utf-8-sig")) if cfg.file else []
        entries: list[str | tuple[str, str | None] | Entry] = [*cfg.plates, *file_entries]
        plates = PlateList.of(
            cfg.name,
            entries,
            tolerance=cfg.tolerance,
            lookalikes=cfg.lookalikes,
            cameras=cfg.cameras or None,
        )
        return _Loaded(plates, file_entries, stamp)

    def _install(self, cfg: ListConfig, loaded: _Loaded) -> None:
        self.matcher.replace(loaded.plates)
        self._file_entries[cfg.name] = loaded.file_entries
        self._seen[cfg.name] = loaded.stamp

    def load_all(self) -> None:
        problems: list[ConfigProblem] = []
        for i, cfg in enumerate(self.lists):
            try:
                self._install(cfg, self._load(cfg))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                problems.append(ConfigProblem(f"lists[{i}].file", f"cannot read: {exc}"))
        if problems:
            raise ConfigError(problems)
        for cfg in self.lists:
            self._log.info("list loaded", list=cfg.name, plates=len(self.matcher.lists[cfg.name]))

    def _changed(self) -> list[tuple[ListConfig, _Loaded | Exception]]:
        """The lists whose file changed since it was last read, read again (worker thread)."""
        out: list[tuple[ListConfig, _Loaded | Exception]] = []
        for cfg in self.lists:
            if cfg.file is None:
                continue
            stamp = _stamp(cfg.file)
            if stamp == self._seen.get(cfg.name):
                continue
            try:
                out.append((cfg, self._load(cfg)))
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                self._seen[cfg.name] = stamp  # said once, until the file changes again
                out.append((cfg, exc))
        return out

    async def reload_changed(self) -> list[str]:
        """Reload every list whose file changed; returns their names."""
        async with self._lock:
            changed = await asyncio.to_thread(self._changed)
            reloaded = []
            for cfg, result in changed:
                if isinstance(result, Exception):
                    self._log.error(
                        "list file unreadable; keeping its last contents",
                        list=cfg.name,
                        file=str(cfg.file),
                        error=str(result),
                    )
                    continue
                self._install(cfg, result)
                reloaded.append(cfg.name)
                self._log.info("list reloaded", list=cfg.name, plates=len(result.plates))
            return reloaded

    async def watch(self) -> None:
        if not any(cfg.file is not None for cfg in self.lists):
            return
        while True:
            await asyncio.sleep(RELOAD_INTERVAL)
            await self.reload_changed()

    # ----------------------------------------------------------------- the page's view

    def describe(self) -> list[dict[str, Any]]:
        """Every list with its settings and entries (``GET /api/lists``)."""
        today = date.today()
        out = []
        for cfg in self.lists:
            entries: list[dict[str, Any]] = [
                {**Entry(p).to_json(), "source": "config"} for p in cfg.plates
            ]
            entries += [
                {**e.to_json(), "source": "file", "expired": not e.live(today)}
                for e in self._file_entries.get(cfg.name, [])
            ]
            out.append(
                {
                    "name": cfg.name,
                    "file": str(cfg.file) if cfg.file is not None else None,
                    "editable": cfg.file is not None,
                    "cameras": list(cfg.cameras),
                    "tolerance": cfg.tolerance,
                    "lookalikes": cfg.lookalikes,
                    "entries": entries,
                }
            )
        return out

    # ----------------------------------------------------------------- edits

    async def add(self, name: str, entry: Entry) -> None:
        """Add ``entry`` to the list's file (or replace the line of the same plate)."""
        _check(entry)
        await self._edit(name, plate_key(entry.plate), entry)

    async def remove(self, name: str, plate: str) -> None:
        """Remove the plate's line from the list's file; 404 when it has none."""
        key = plate_key(plate)
        if not key:
            raise ListEditError(400, "plate has no letters or digits")
        await self._edit(name, key, None)

    async def _edit(self, name: str, key: str, entry: Entry | None) -> None:
        cfg = self.config(name)
        if cfg.file is None:
            raise ListEditError(409, "this list has no file (set file = ... to edit it here)")
        if entry is None and key in {plate_key(p) for p in cfg.plates}:
            raise ListEditError(409, "this plate is in the configuration file, not the list file")
        path = cfg.file
        async with self._lock:
            loaded = await asyncio.to_thread(_rewrite_and_load, self, cfg, path, key, entry)
            self._install(cfg, loaded)
        self._log.info(
            "list edited",
            list=name,
            added=entry.plate if entry is not None else None,
            removed=key if entry is None else None,
            plates=len(loaded.plates),
        )


def _check(entry: Entry) -> None:
    key = plate_key(entry.plate)
    if not key:
        raise ListEditError(400, "plate has no letters or digits")
    if len(entry.plate) > MAX_PLATE:
        raise ListEditError(400, f"plate longer than {MAX_PLATE} characters")
    if entry.label is not None and len(entry.label) > MAX_LABEL:
        raise ListEditError(400, f"label longer than {MAX_LABEL} characters")
    for text in (entry.plate, entry.label or ""):
        if any(ord(ch) < 32 or ch == "\x7f" for ch in text):
            raise ListEditError(400, "control characters are not allowed")


def _rewrite_and_load(
    files: ListFiles, cfg: ListConfig, path: Path, key: str, entry: Entry | None
) -> _Loaded:
    """The file with the plate's line replaced, added or removed, written atomically;
    then the list read back from it (worker thread)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        text = ""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    found = False
    for line in lines:
        row = next(csv.reader([line]), [])
        first = row[0].strip() if row else ""
        is_entry = first and not first.startswith("#") and first.casefold() not in HEADERS
        if is_entry and plate_key(first) == key:
            if entry is not None and not found:
                out.append(csv_line(entry))
            found = True
            continue
        out.append(line)
    if entry is None and not found:
        raise ListEditError(404, "no such plate in the list file")
    if entry is not None and not found:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        if not out:
            out.append("plate,label,expires\n")
        out.append(csv_line(entry))
    _write_atomically(path, "".join(out))
    return files._load(cfg)  # the same reader as a reload


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            Path(tmp).chmod(path.stat().st_mode & 0o777)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
