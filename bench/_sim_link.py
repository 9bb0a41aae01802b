"""The simulator side of a benchmark's link to its simulator process: JSON lines to the
benchmark on stdout, go/stop lines from it on stdin."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable


def say(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def stdin_reader() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def wait_for_go(
    reader: asyncio.StreamReader, status: Callable[[], dict[str, object]]
) -> None:
    """Report ``status()`` every second until the benchmark says go (a line on stdin)."""
    go = asyncio.create_task(reader.readline())
    while not go.done():
        say(status())
        await asyncio.wait({go}, timeout=1.0)


@contextlib.asynccontextmanager
async def sent_log() -> AsyncIterator[list[list[object]]]:
    """A list the cameras append ``[id, time, ...]`` to; sent as ``{"sent": [...]}`` batches
    every 0.5 s, and the rest at the end."""
    log: list[list[object]] = []

    async def flush() -> None:
        while True:
            await asyncio.sleep(0.5)
            if log:
                batch = log[:]
                del log[:]
                say({"sent": batch})

    flusher = asyncio.create_task(flush())
    try:
        yield log
        await asyncio.sleep(0.6)
    finally:
        flusher.cancel()
        if log:
            say({"sent": log})
