"""The JSON lines sink: one event per line on stdout, UTF-8, flushed per batch.

Two ways to write, chosen by what stdout is:

* a pipe or a socket (``lprmeta run | consumer``, the usual case): through an
  asyncio write transport. Writes never block the event loop; a reader that
  falls behind fills the transport's buffer, and the sink then waits for it
  to drain while the bus queue absorbs the difference (counting overflow).
* anything else (a regular file, a terminal, a file object in a test): on a
  dedicated thread, since those can block and must not be switched to
  non-blocking mode (a terminal shares that mode with the user's shell).

When the reader goes away (EPIPE) the sink raises :class:`SinkError`; the
daemon reports it and exits non-zero rather than spinning.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import time
from functools import partial
from typing import BinaryIO

import orjson

from ..bus import Subscription
from ..errors import SinkError
from ..events import Event
from ..log import get_logger, log_counted
from ..stats import Stats
from ._worker import WorkerThread

__all__ = ["JsonlSink", "encode_line"]

# Events written per write()+flush() when the queue has a backlog.
_BATCH = 256
# Wait for a slow reader once this much is waiting in the transport's buffer.
_HIGH_WATER = 1024 * 1024
# Under load, one write every _LINGER seconds at most. A write is a system call that
# wakes the reader: at 750 HTTP POSTs/s, writing each line as it came was a fifth of
# the daemon's CPU (sampled with py-spy). After a quiet spell a line goes out at once;
# only a line that follows the previous write closer than this waits out the rest of
# it, and goes with whatever arrived meanwhile. Latency grows by at most this.
_LINGER = 0.002


def encode_line(event: Event) -> bytes:
    """One JSON line: UTF-8 (non-ASCII as is), compact, newline-terminated.

    orjson writes exactly what ``json.dumps(..., ensure_ascii=False,
    separators=(",", ":"))`` writes for these values, at a fraction of the cost
    (measured: 13.7 -> 5.4 us a line, most of it building the dict); a float
    that is not finite becomes null, which is valid JSON (``json`` writes NaN).
    What orjson refuses (an integer beyond 64 bits in a camera's raw fields,
    found by fuzzing) is made representable instead: it is never an error.
    """
    data = event.to_json()
    try:
        return orjson.dumps(data, default=str, option=orjson.OPT_APPEND_NEWLINE)
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps(_representable(data), default=str, option=orjson.OPT_APPEND_NEWLINE)


def _representable(value: object) -> object:
    """A copy orjson can write: integers beyond 64 bits become strings."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, dict):
        return {str(k): _representable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_representable(v) for v in value]
    return value


class _PipeProtocol(asyncio.Protocol):
    """Flow control and loss for a write-only pipe: the transport pauses us above its
    high-water mark and tells us when the reader has gone."""

    def __init__(self) -> None:
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.lost: BaseException | None = None
        self.closed = False

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.closed = True
        self.lost = exc
        self._can_write.set()

    async def drain(self) -> None:
        await self._can_write.wait()


def _is_pipe_or_socket(stream: BinaryIO) -> bool:
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError, AttributeError):  # no descriptor (a test's BytesIO)
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class JsonlSink:
    name = "stdout"

    def __init__(self, stream: BinaryIO | None = None, *, stats: Stats | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer
        self._log = get_logger("lprmeta.sinks.jsonl")
        self.stats = stats if stats is not None else Stats()
        self.written = 0
        self._last_write = 0.0

    async def run(self, sub: Subscription) -> None:
        if _is_pipe_or_socket(self._stream):
            await self._run_transport(sub)
        else:
            await self._run_thread(sub)

    async def _batch(self, sub: Subscription) -> bytes | None:
        event = await sub.get()
        if event is None:
            return None
        wait = self._last_write + _LINGER - time.monotonic()
        if wait > 0 and sub.qsize() < _BATCH:
            await asyncio.sleep(wait)
        batch = [self._encode(event)]
        while len(batch) < _BATCH and (more := sub.get_nowait()) is not None:
            batch.append(self._encode(more))
        self._last_write = time.monotonic()
        return b"".join(batch)

    def _encode(self, event: Event) -> bytes:
        """One line; an event that cannot be written is counted and logged, and never
        ends the sink (which would silence every camera)."""
        try:
            return encode_line(event)
        except Exception as exc:  # noqa: BLE001  # whatever it is, the others must go out
            n = self.stats.inc("unencodable:stdout", event.camera)
            log_counted(
                self._log,
                n,
                "error",
                "event could not be written as JSON; skipped",
                id=event.id,
                camera=event.camera,
                error=f"{type(exc).__name__}: {str(exc)[:200]}",
                skipped=n,
            )
            return b""

    async def _run_transport(self, sub: Subscription) -> None:
        loop = asyncio.get_running_loop()
        # A duplicate descriptor: the transport closes it, never the process's stdout.
        fd = os.dup(self._stream.fileno())
        pipe = os.fdopen(fd, "wb", buffering=0)
        transport, protocol = await loop.connect_write_pipe(_PipeProtocol, pipe)
        transport.set_write_buffer_limits(high=_HIGH_WATER)
        try:
            while (data := await self._batch(sub)) is not None:
                if protocol.closed:
                    raise SinkError(
                        f"stdout is closed by its reader ({protocol.lost}); cannot write events"
                    )
                transport.write(data)
                self.written += data.count(b"\n")
                await protocol.drain()  # returns at once unless the reader is behind
            transport.set_write_buffer_limits(high=0)  # pauses us until all is written
            await protocol.drain()
        finally:
            if not protocol.closed:
                os.set_blocking(fd, True)  # the mode belongs to stdout's description too
            transport.close()

    async def _run_thread(self, sub: Subscription) -> None:
        writer = WorkerThread("lprmeta-stdout")
        try:
            while (data := await self._batch(sub)) is not None:
                try:
                    await asyncio.wrap_future(writer.submit(partial(self._write, data)))
                except (BrokenPipeError, ValueError) as exc:
                    # ValueError: the stream was closed under us ("I/O operation on closed file").
                    raise SinkError(f"stdout is closed ({exc}); cannot write events") from exc
                except OSError as exc:
                    raise SinkError(f"cannot write events to stdout: {exc}") from exc
                self.written += data.count(b"\n")
        finally:
            writer.stop()

    def _write(self, data: bytes) -> None:
        self._stream.write(data)
        self._stream.flush()
