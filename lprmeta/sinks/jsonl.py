"""The JSON lines sink: one event per line on stdout, UTF-8, flushed per batch.

Writes happen on a dedicated thread: a reader that consumes stdout slowly
blocks that thread, never the event loop (inputs keep receiving and the bus
queue absorbs the difference, counting what overflows). When the reader goes
away (EPIPE) the sink raises :class:`SinkError`; the daemon reports it and
exits non-zero rather than spinning.
"""

from __future__ import annotations

import asyncio
import json
import sys
from functools import partial
from typing import BinaryIO

from ..bus import Subscription
from ..errors import SinkError
from ..events import Event
from ..log import get_logger
from ._worker import WorkerThread

__all__ = ["JsonlSink", "encode_line"]

# Events written per write()+flush() when the queue has a backlog.
_BATCH = 256


def encode_line(event: Event) -> bytes:
    return (
        json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
    ).encode("utf-8")


class JsonlSink:
    name = "stdout"

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer
        self._log = get_logger("lprmeta.sinks.jsonl")
        self.written = 0

    def _write(self, data: bytes) -> None:
        self._stream.write(data)
        self._stream.flush()

    async def run(self, sub: Subscription) -> None:
        writer = WorkerThread("lprmeta-stdout")
        try:
            while (event := await sub.get()) is not None:
                batch = [encode_line(event)]
                while len(batch) < _BATCH and (more := sub.get_nowait()) is not None:
                    batch.append(encode_line(more))
                try:
                    await asyncio.wrap_future(writer.submit(partial(self._write, b"".join(batch))))
                except (BrokenPipeError, ValueError) as exc:
                    # ValueError: the stream was closed under us ("I/O operation on closed file").
                    raise SinkError(f"stdout is closed ({exc}); cannot write events") from exc
                except OSError as exc:
                    raise SinkError(f"cannot write events to stdout: {exc}") from exc
                self.written += len(batch)
        finally:
            writer.stop()
