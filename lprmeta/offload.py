"""Parsing a pathological body off the event loop, in a worker process.

Owns the decision "is this body too structured to parse on the loop?" and the
worker that parses it; does not know what the body means.

orjson parses a camera's body (a few dozen keys and two base64 pictures) in
microseconds, but a body of 10^6 keys takes it 360 ms, and it holds the GIL
throughout: no thread of this process can run meanwhile, so a thread would not
help. A body with more than :data:`HEAVY_SEPARATORS` separators is therefore
parsed in a worker process, which also cuts every object to the normaliser's
key limit, so what comes back is small. Ordinary bodies never pay for it.

The worker is started on first use (``spawn``: a fork of a process with RTSP
threads could inherit a held lock), runs one body at a time with a deadline,
and is replaced if it dies or overruns.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Final

from .errors import PayloadError
from .protocol.jsonpost import MAX_KEYS, MAX_LIST_ITEMS
from .protocol.longjson import parse_cutting_pictures
from .protocol.values import check_depth, lenient_json

__all__ = [
    "HEAVY_BYTES",
    "HEAVY_SEPARATORS",
    "Offload",
    "bounded_json",
    "is_heavy",
    "parse_on_loop",
]

HEAVY_BYTES: Final = 64 * 1024
# orjson takes about 1 ms per 1,000 keys here: 5,000 keeps the loop well under 50 ms.
HEAVY_SEPARATORS: Final = 5_000


def is_heavy(data: bytes | bytearray) -> bool:
    """Too structured to parse on the loop: over HEAVY_BYTES and more than
    HEAVY_SEPARATORS commas. The commas are looked for with ``find`` (memchr, which
    skips a picture's base64 at memory speed) and counted only up to the limit:
    ``bytes.count`` compares byte by byte, 100 us of the loop for every ordinary body
    with two pictures (measured), where this takes 14 us; a body at the limit costs
    ~3 ms, one past it no more (it goes to the worker)."""
    if len(data) <= HEAVY_BYTES:
        return False
    find = data.find
    at = find(b",")
    for _ in range(HEAVY_SEPARATORS):
        if at < 0:
            return False
        at = find(b",", at + 1)
    return at >= 0


def parse_on_loop(data: bytes) -> tuple[Any] | None:
    """``(value,)``: the body parsed here, on the loop; ``None`` when it is for the worker.
    A camera's body (fields and pictures) is parsed with its pictures cut out and decoded
    from its bytes (:mod:`.protocol.longjson`), without is_heavy() reading all of it."""
    parsed = parse_cutting_pictures(data)
    if parsed is not None:
        return (check_depth(parsed[0]),)
    if is_heavy(data):
        return None
    return (lenient_json(data),)


def bounded_json(data: bytes) -> tuple[Any, list[str]]:
    """Parse (leniently) and cut every object to MAX_KEYS keys and every list to
    MAX_LIST_ITEMS items; says what was cut. Runs in the worker."""
    problems: list[str] = []

    def cut(value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) > MAX_KEYS:
                problems.append(f"{len(value)} keys; the first {MAX_KEYS} were read and kept")
                value = dict(itertools.islice(value.items(), MAX_KEYS))
            return {k: cut(v) for k, v in value.items()}
        if isinstance(value, list):
            if len(value) > MAX_LIST_ITEMS:
                problems.append(f"a list of {len(value)} items; the first {MAX_LIST_ITEMS} kept")
                value = value[:MAX_LIST_ITEMS]
            return [cut(v) for v in value]
        return value

    return cut(lenient_json(data)), problems


class Offload:
    def __init__(self, *, timeout: float = 20.0) -> None:
        self.timeout = timeout
        self._pool: ProcessPoolExecutor | None = None
        self._one = asyncio.Lock()
        self.used = 0

    async def json(self, data: bytes) -> tuple[Any, list[str]]:
        """The body parsed: on the loop when ordinary, in the worker when heavy.
        Raises :class:`PayloadError` for what is not JSON, or took over ``timeout``."""
        parsed = parse_on_loop(data)
        if parsed is not None:
            return parsed[0], []
        async with self._one:  # one heavy body at a time: its memory is bounded too
            self.used += 1
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn")
                )
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.timeout):
                    return await loop.run_in_executor(self._pool, bounded_json, data)
            except TimeoutError as exc:
                self._reset()
                raise PayloadError(f"body not parsed within {self.timeout:g} s") from exc
            except BrokenProcessPool as exc:
                self._reset()
                raise PayloadError("the parser's worker process died on this body") from exc

    def _reset(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.kill()
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._reset()
