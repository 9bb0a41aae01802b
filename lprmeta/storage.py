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

import hashlib
import re
from datetime import UTC
from pathlib import Path

from .envelope import Picture
from .events import Event, ImageRef

__all__ = ["ImageStore", "picture_extension", "safe_part"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe_part(text: str, *, limit: int = 32) -> str:
    """``text`` reduced to ASCII letters, digits, ``_`` and ``-`` (never empty, never ``..``)."""
    cleaned = _UNSAFE.sub("", text)[:limit]
    return cleaned or "x"


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
        self._made: set[Path] = set()

    def path_for(self, event: Event, role: str, data: bytes) -> Path:
        when = event.received.astimezone(UTC)
        day = when.strftime("%Y-%m-%d")
        stamp = when.strftime("%H%M%S%f")[:9]
        plate = safe_part(event.plate, limit=16) if event.plate else "noplate"
        name = (
            f"{stamp}_{plate}_{safe_part(role, limit=16)}_{event.id[-10:]}."
            f"{picture_extension(data)}"
        )
        return self.root / safe_part(event.camera, limit=64) / day / name

    def save(self, event: Event, picture: Picture) -> ImageRef:
        """Write one picture; a failure gives an ImageRef marked missing with the reason."""
        digest = hashlib.sha256(picture.data).hexdigest()
        # Every part of the name went through safe_part: no separator, no "..", so the
        # path stays under root by construction (tests try hostile plates and names).
        path = self.path_for(event, picture.role, picture.data)
        try:
            if path.parent not in self._made:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._made.add(path.parent)
            tmp = path.with_suffix(path.suffix + ".part")
            with tmp.open("wb") as fh:
                fh.write(picture.data)
            tmp.replace(path)
        except OSError as exc:
            reason = f"save failed: {exc.strerror or exc}"
            return ImageRef(picture.role, None, len(picture.data), digest, missing=reason)
        return ImageRef(picture.role, str(path), len(picture.data), digest)
