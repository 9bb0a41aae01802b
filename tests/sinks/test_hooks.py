from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from lprmeta.bus import Bus
from lprmeta.errors import ConfigError
from lprmeta.events import Event, Kind, Source
from lprmeta.sinks import HookSink, resolve_hook
from lprmeta.stats import Stats

from . import sample_hooks


def ev(p: str) -> Event:
    return Event(kind=Kind.PLATE, camera="c", source=Source.TCP, plate=p)


@pytest.fixture(autouse=True)
def _reset() -> None:
    sample_hooks.SEEN_SYNC.clear()
    sample_hooks.SEEN_ASYNC.clear()
    sample_hooks.RELEASE.clear()


async def run_hooks(
    hooks: dict[str, Callable[[Event], Any]], plates: list[str], *, hook_timeout: float = 1.0
) -> Stats:
    stats = Stats()
    bus = Bus(dedup_window=0, stats=stats)
    tasks = []
    for name, fn in hooks.items():
        sink = HookSink(fn, name=name, timeout=hook_timeout, stats=stats)
        tasks.append(asyncio.create_task(sink.run(bus.subscribe(name))))
    for p in plates:
        bus.publish(ev(p))
    bus.close()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    return stats


def test_resolve_hook() -> None:
    assert resolve_hook("tests.sinks.sample_hooks:record_sync") is sample_hooks.record_sync
    with pytest.raises(ConfigError, match=r"hooks\[3\].target: cannot import 'nope_mod'"):
        resolve_hook("nope_mod:fn", key="hooks[3].target")
    with pytest.raises(ConfigError, match="has no attribute 'missing'"):
        resolve_hook("tests.sinks.sample_hooks:missing")
    with pytest.raises(ConfigError, match="is not callable"):
        resolve_hook("tests.sinks.sample_hooks:NOT_CALLABLE")


async def test_sync_and_async_hooks_see_every_event_in_order() -> None:
    stats = await run_hooks(
        {"sync": sample_hooks.slow_then_record, "async": sample_hooks.record_async},
        ["A", "B", "C"],
    )
    assert sample_hooks.SEEN_SYNC == ["A", "B", "C"]
    assert sample_hooks.SEEN_ASYNC == ["A", "B", "C"]
    assert stats.total("hook_calls:sync") == 3


async def test_raising_hook_is_logged_counted_and_isolated() -> None:
    with capture_logs() as logs:
        stats = await run_hooks(
            {"bad": sample_hooks.explode, "good": sample_hooks.record_sync}, ["A", "B"]
        )
    assert sample_hooks.SEEN_SYNC == ["A", "B"]
    assert stats.total("hook_errors:bad") == 2
    errors = [r for r in logs if r["event"] == "hook raised"]
    assert len(errors) == 2 and "hook failed on A" in str(errors[0]["error"])


@pytest.mark.parametrize("hang", [sample_hooks.hang_sync, sample_hooks.hang_async])
async def test_hanging_hook_times_out_and_never_blocks_others(hang: Any) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    stats = await run_hooks(
        {"hang": hang, "good": sample_hooks.record_sync}, ["A", "B"], hook_timeout=0.2
    )
    sample_hooks.RELEASE.set()
    assert sample_hooks.SEEN_SYNC == ["A", "B"]
    assert stats.total("hook_timeouts:hang") == 2
    assert loop.time() - start < 5
