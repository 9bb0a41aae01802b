"""The stdout sink's batching: a line after a quiet spell goes at once; a line right
after a write waits out the rest of ``_LINGER`` and goes with what came meanwhile."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from lprmeta.bus import Bus
from lprmeta.events import Event, Kind, Source
from lprmeta.sinks import jsonl
from lprmeta.sinks.jsonl import JsonlSink


def plate(p: str) -> Event:
    return Event(kind=Kind.PLATE, camera="c", source=Source.TCP, plate=p)


def plates(batch: bytes | None) -> list[str]:
    assert batch is not None
    return [orjson.loads(line)["plate"] for line in batch.splitlines()]


async def test_a_line_after_a_quiet_spell_is_not_held(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def no_sleep(delay: float) -> None:
        slept.append(delay)

    monkeypatch.setattr(jsonl.asyncio, "sleep", no_sleep)
    bus = Bus(dedup_window=0)
    sub = bus.subscribe("stdout")
    sink = JsonlSink()
    bus.publish(plate("QUIET1"))
    assert plates(await sink._batch(sub)) == ["QUIET1"]
    assert slept == []  # first write: at once


async def test_lines_close_after_a_write_go_together(monkeypatch: pytest.MonkeyPatch) -> None:
    bus = Bus(dedup_window=0)
    sub = bus.subscribe("stdout")
    slept: list[float] = []

    async def sleep_while_more_arrive(delay: float) -> None:
        slept.append(delay)
        bus.publish(plate("BURST2"))  # arrive while the first waits
        bus.publish(plate("BURST3"))

    monkeypatch.setattr(jsonl.asyncio, "sleep", sleep_while_more_arrive)
    sink = JsonlSink()
    sink._last_write = time.monotonic()  # a write just went out
    bus.publish(plate("BURST1"))
    assert plates(await sink._batch(sub)) == ["BURST1", "BURST2", "BURST3"]
    assert len(slept) == 1
    assert 0 < slept[0] <= jsonl._LINGER


async def test_a_full_batch_is_not_held(monkeypatch: pytest.MonkeyPatch) -> None:
    async def must_not_sleep(delay: Any) -> None:
        raise AssertionError("a full batch waited")

    monkeypatch.setattr(jsonl.asyncio, "sleep", must_not_sleep)
    bus = Bus(dedup_window=0)
    sub = bus.subscribe("stdout")
    sink = JsonlSink()
    sink._last_write = time.monotonic()
    for i in range(jsonl._BATCH + 1):
        bus.publish(plate(f"FULL{i}"))
    assert len(plates(await sink._batch(sub))) == jsonl._BATCH
