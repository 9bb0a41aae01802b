"""Hooks used by the tests through `[[hooks]] target = "tests.sinks.sample_hooks:..."`."""

from __future__ import annotations

import asyncio
import threading
import time

from lprmeta.events import Event

SEEN_SYNC: list[str] = []
SEEN_ASYNC: list[str] = []
RELEASE = threading.Event()


def record_sync(event: Event) -> None:
    SEEN_SYNC.append(event.plate or "")


async def record_async(event: Event) -> None:
    await asyncio.sleep(0)
    SEEN_ASYNC.append(event.plate or "")


def explode(event: Event) -> None:
    raise RuntimeError(f"hook failed on {event.plate}")


def hang_sync(event: Event) -> None:
    # Blocks until the test releases it (or 60 s): a hook that hangs.
    RELEASE.wait(60)


async def hang_async(event: Event) -> None:
    await asyncio.sleep(3600)


def slow_then_record(event: Event) -> None:
    time.sleep(0.01)
    SEEN_SYNC.append(event.plate or "")


NOT_CALLABLE = 42
