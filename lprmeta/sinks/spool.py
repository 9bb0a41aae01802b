"""A disk queue of event lines for a sink whose far end can be away (MQTT, the store).

One append-only file of records (an event's JSON line each, ``\\n``-ended) and
beside it ``<file>.offset``: the byte offset of the first record not yet
acknowledged. ``peek`` gives that record, ``ack`` moves past it. Once every
record is acknowledged the file is emptied; while a backlog never empties, the
sent part is cut off once it passes :data:`COMPACT_AT`. A record is written
with one ``write`` and flushed to the OS (it survives the daemon dying, not the
machine losing power mid-write); a torn last record found at start-up is cut
off, counted and logged. Delivery is at least once: a record sent but not yet
acknowledged when the daemon stopped is sent again.

Bounded by ``limit`` records waiting; an append beyond it is refused (the
caller counts the drop). Synchronous, and not for the event loop: its owners
call it from one thread of their own (the MQTT sink's spool thread, the store's
writer), so a stalled disk never holds the loop. Not thread-safe: one thread
at a time.
"""

from __future__ import annotations

import contextlib
import os
from io import BufferedRandom
from pathlib import Path

__all__ = ["COMPACT_AT", "Spool"]

COMPACT_AT = 64 * 1024 * 1024
_OFFSET_WIDTH = 20
MAX_RECORD = 16 * 1024 * 1024  # an event line is far smaller; a longer "record" is damage


class Spool:
    def __init__(self, path: Path, limit: int, *, limit_bytes: int | None = None) -> None:
        self.path = path
        self.limit = limit
        self.limit_bytes = limit_bytes  # bytes waiting at most (None: only ``limit`` records)
        self.torn = 0  # bytes cut off a torn last record at start-up
        path.parent.mkdir(parents=True, exist_ok=True)
        self._offset_path = path.with_name(path.name + ".offset")
        self._file = path.open("a+b")  # held open for the spool's life
        self._offset = self._read_offset()
        self._cut_torn_tail()
        self.waiting = self._count_waiting()

    # ------------------------------------------------------------------ writing

    def append(self, record: bytes) -> bool:
        """Queue one record (ending in ``\\n``); False when ``limit`` records (or
        ``limit_bytes`` bytes) wait."""
        if self.waiting >= self.limit:
            return False
        size = self._file.seek(0, os.SEEK_END)
        if self.limit_bytes is not None and size - self._offset + len(record) > self.limit_bytes:
            return False
        try:
            self._file.write(record)
            self._file.flush()
        except OSError:
            # Disk full or the like: take back what part of it was written, so the next
            # record does not run on from half of this one.
            self._file = self._reopen_at(size)
            raise
        self.waiting += 1
        return True

    # ------------------------------------------------------------------ reading

    def peek(self) -> bytes | None:
        """The first record not acknowledged, or None when there is none."""
        while self.waiting:
            self._file.seek(self._offset)
            record = self._file.readline(MAX_RECORD)
            if record.endswith(b"\n"):
                return record
            # Longer than any record this process writes: damage; skip to the next line.
            length = len(record)
            while chunk := self._file.readline(1 << 20):  # in bounded pieces
                length += len(chunk)
                if chunk.endswith(b"\n"):
                    break
            self._advance(length)
        return None

    def ack(self) -> None:
        """The record :meth:`peek` gave has been delivered."""
        self._file.seek(self._offset)
        record = self._file.readline(MAX_RECORD)
        self._advance(len(record))

    def peek_many(self, n: int) -> list[bytes]:
        """Up to ``n`` records from the first not acknowledged, in order (a batch to
        write; a damaged record is skipped first, as :meth:`peek` does)."""
        if self.peek() is None:
            return []
        self._file.seek(self._offset)
        out: list[bytes] = []
        while len(out) < min(n, self.waiting):
            record = self._file.readline(MAX_RECORD)
            if not record.endswith(b"\n"):
                break  # damage: the next peek skips it
            out.append(record)
        return out

    def ack_many(self, records: list[bytes]) -> None:
        """The records :meth:`peek_many` gave (or their first ones) have been delivered."""
        if not records:
            return
        self._offset += sum(map(len, records)) - len(records[-1])
        self.waiting -= len(records) - 1
        self._advance(len(records[-1]))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- internals

    def _advance(self, n: int) -> None:
        self._offset += n
        self.waiting = max(0, self.waiting - 1)
        size = self._file.seek(0, os.SEEK_END)
        if self._offset >= size:
            self._file.truncate(0)
            self._offset = 0
            self.waiting = 0
        elif self._offset >= COMPACT_AT:
            self._compact()
        self._write_offset()

    def _compact(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("wb") as out:
            self._file.seek(self._offset)
            while chunk := self._file.read(1 << 20):
                out.write(chunk)
        tmp.replace(self.path)
        self._file.close()
        self._file = self.path.open("a+b")
        self._offset = 0

    def _reopen_at(self, size: int) -> BufferedRandom:
        with contextlib.suppress(OSError):
            self._file.close()  # its buffer may still hold the failed bytes: drop them
        os.truncate(self.path, size)
        return self.path.open("a+b")

    def _read_offset(self) -> int:
        try:
            text = self._offset_path.read_bytes().strip()
        except FileNotFoundError:
            return 0
        size = self._file.seek(0, os.SEEK_END)
        if not text.isdigit() or int(text) > size:
            return 0  # unreadable: send everything again (at least once)
        return int(text)

    def _write_offset(self) -> None:
        # Fixed width, written in place: one small write, never a half-new number.
        fd = os.open(self._offset_path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.pwrite(fd, str(self._offset).rjust(_OFFSET_WIDTH).encode() + b"\n", 0)
        finally:
            os.close(fd)

    def _cut_torn_tail(self) -> None:
        size = self._file.seek(0, os.SEEK_END)
        if size == 0:
            return
        back = min(size, MAX_RECORD)
        self._file.seek(size - back)
        tail = self._file.read(back)
        if tail.endswith(b"\n"):
            return
        keep = size - back + tail.rfind(b"\n") + 1 if b"\n" in tail else size - back
        self.torn = size - keep
        self._file.truncate(keep)
        self._offset = min(self._offset, keep)

    def _count_waiting(self) -> int:
        self._file.seek(self._offset)
        n = 0
        while chunk := self._file.read(1 << 20):
            n += chunk.count(b"\n")
        return n
