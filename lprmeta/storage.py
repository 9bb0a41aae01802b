"""Saving pictures under the snapshot directory.

Owns file naming and writing; does not fetch anything (``snapshots.py`` does)
and does not decide which pictures an event has (the parsers do).

File names are built from safe parts only: the camera name (validated by the
config, and sanitized again here because unknown HTTP senders get a generated
label), the date, the event id, the ASCII letters and digits of the plate, and
the picture's role. A plate such as ``../../etc/x`` therefore cannot leave the
snapshot directory; :meth:`ImageStore.save` checks the final path anyway.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import re
from datetime import UTC
from pathlib import Path

from .envelope import Picture
from .events import Event, ImageRef, format_time

__all__ = ["ImageStore", "picture_extension", "safe_part"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe_part(text: str, *, limit: int = 32) -> str:
    """``text`` reduced to ASCII letters, digits, ``_`` and ``-`` (never empty, never ``..``)."""
    cleaned = _UNSAFE.sub("", text)[:limit]
    return cleaned or "x"


# Camera names and roles repeat on every picture: reduced once each.
_safe_name = functools.lru_cache(maxsize=4096)(safe_part)


def picture_extension(data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    return "bin"


class ImageStore:
    """Writes pictures to ``root/<camera>/<YYYY-MM-DD>/<time>_<plate>_<role>_<id>.<ext>``."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._root = str(self.root)
        self._made: set[str] = set()

    def path_for(self, event: Event, role: str, data: bytes) -> Path:
        directory, name = self._place(event, role, data)
        return Path(directory, name)

    def _place(self, event: Event, role: str, data: bytes) -> tuple[str, str]:
        """(directory, file name), as strings: this runs per picture, and pathlib's
        joins cost more than the rest of the naming. The date and time are
        :func:`format_time`'s (which remembers its seconds; strftime took 4 us here)."""
        received = event.received
        if received.tzinfo is not UTC:
            received = received.astimezone(UTC)
        text = format_time(received)  # YYYY-MM-DDTHH:MM:SS.mmmZ
        assert text is not None
        stamp = f"{text[11:13]}{text[14:16]}{text[17:19]}{text[20:23]}"  # HHMMSSmmm
        plate = safe_part(event.plate, limit=16) if event.plate else "noplate"
        name = (
            f"{stamp}_{plate}_{_safe_name(role, limit=16)}_{event.id[-10:]}."
            f"{picture_extension(data)}"
        )
        return f"{self._root}/{_safe_name(event.camera, limit=64)}/{text[:10]}", name

    def save(self, event: Event, picture: Picture) -> ImageRef:
        """Write one picture; a failure gives an ImageRef marked missing with the reason."""
        data = picture.data
        digest = hashlib.sha256(data).hexdigest()
        # Every part of the name went through safe_part: no separator, no "..", so the
        # path stays under root by construction (tests try hostile plates and names).
        directory, name = self._place(event, picture.role, data)
        path = f"{directory}/{name}"
        try:
            try:
                _write_new(directory, path, data, made=self._made)
            except FileNotFoundError:  # its day's directory was removed meanwhile
                self._made.discard(directory)
                _write_new(directory, path, data, made=self._made)
        except OSError as exc:
            reason = f"save failed: {exc.strerror or exc}"
            return ImageRef(picture.role, None, len(data), digest, missing=reason)
        return ImageRef(picture.role, path, len(data), digest)


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
# A file without a name in its directory until it is linked there whole (Linux 3.11+:
# ext4, xfs, btrfs, tmpfs); linked through /proc/self/fd, which needs no privilege.
_UNNAMED_FILE = getattr(os, "O_TMPFILE", 0) | os.O_WRONLY | os.O_CLOEXEC
_UNNAMED = bool(getattr(os, "O_TMPFILE", 0)) and os.path.isdir("/proc/self/fd")  # noqa: PTH112
# What opening a directory with O_TMPFILE says where its file system cannot, and what
# linking one says where /proc or the file system will not: then the pictures are written
# as ".part" files and renamed, as before, for the rest of the process's life.
_NO_UNNAMED = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})
_NO_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EOPNOTSUPP})
# Directories known to exist: one a camera a day, so months unattended would grow the
# set for ever; past this many it starts again (a makedirs of an existing one is cheap).
_MADE_MAX = 4096


def _write_new(directory: str, path: str, data: bytes, *, made: set[str]) -> None:
    """``data`` as ``path``, appearing whole: a reader (the web page, a hook) never sees
    half a picture. Written into a file with no name yet, then linked as ``path``
    (``O_TMPFILE``): one directory entry made, none renamed, and a crash mid-write leaves
    nothing behind; where the file system cannot, written as ``.part`` and renamed.
    Plain system calls, no buffered file object: the creation itself is the cost."""
    global _UNNAMED  # noqa: PLW0603  # learnt once: the snapshot directory's file system
    if directory not in made:
        os.makedirs(directory, exist_ok=True)  # noqa: PTH103  # str paths: see above
        if len(made) >= _MADE_MAX:
            made.clear()
        made.add(directory)
    if _UNNAMED:
        try:
            fd = os.open(directory, _UNNAMED_FILE, 0o666)
        except OSError as exc:
            if exc.errno not in _NO_UNNAMED:
                raise
            _UNNAMED = False
        else:
            try:
                _write_linked(fd, path, data)
            except OSError as exc:
                if exc.errno not in _NO_LINK:
                    raise
                _UNNAMED = False
            else:
                return
    tmp = path + ".part"
    fd = os.open(tmp, _NEW_FILE, 0o666)
    try:
        _write_all(fd, data)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # noqa: PTH108
        raise
    os.close(fd)
    os.replace(tmp, path)  # noqa: PTH105


def _write_linked(fd: int, path: str, data: bytes) -> None:
    """``data`` into the unnamed file ``fd`` (closed here), then linked as ``path``; a
    file already there is replaced, as a rename would (linked beside it, renamed over)."""
    try:
        _write_all(fd, data)
        # linkat(2) following the /proc link to the file, which link(2) would not do (it
        # would link the symbolic link itself: EXDEV). os.link calls link(2) unless given
        # a directory descriptor; an absolute path ignores it, so fd itself serves.
        source = f"/proc/self/fd/{fd}"
        try:
            os.link(source, path, src_dir_fd=fd)
        except FileExistsError:
            tmp = path + ".part"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)  # noqa: PTH108  # a crash's leftover
            os.link(source, tmp, src_dir_fd=fd)
            os.replace(tmp, path)  # noqa: PTH105
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
