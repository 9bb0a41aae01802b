"""Golden expected events: ``<fixture>.expected.json`` beside each fixture.

An expected file holds the event line minus what differs per run (``id``,
``received``, picture paths). Set ``LPRMETA_UPDATE_GOLDEN=1`` to (re)write
them, then read the diff: a golden file is only as good as its review.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lprmeta.envelope import Read
from lprmeta.events import Event

from .conftest import check_event


def stable(item: Read | Event) -> dict[str, Any]:
    """A parser's read (event, pictures to save, paths to fetch) or a published event."""
    read = item if isinstance(item, Read) else Read(item)
    line = check_event(read.event)
    del line["id"], line["received"]
    line["images"] = [{k: v for k, v in img.items() if k != "path"} for img in line["images"]]
    line["pictures"] = [{"role": p.role, "bytes": len(p.data)} for p in read.pictures]
    if read.picture_paths:  # announced, to be fetched (RTSP)
        line["picture_paths"] = [list(rp) for rp in read.picture_paths]
    return line


def _compare(got: Any, path: Path) -> None:
    if os.environ.get("LPRMETA_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(got, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
    expected = json.loads(path.read_text())
    assert got == expected


def assert_golden_list(events: list[Read] | list[Event], fixture: Path) -> None:
    """Compare every event a fixture gives with ``<fixture>.expected.json`` (a list)."""
    _compare([stable(e) for e in events], fixture.with_suffix(".expected.json"))


def assert_golden(event: Read | Event, fixture: Path, *, tag: str = "") -> None:
    """Compare with ``<fixture>[.<tag>].expected.json`` (a tag when one fixture feeds
    several transports)."""
    path = fixture.with_suffix(f".{tag}.expected.json" if tag else ".expected.json")
    _compare(stable(event), path)
