"""Python callback hooks: ``[[hooks]] target = "package.module:function"``.

A hook receives each :class:`~lprmeta.events.Event`. Coroutine functions are
awaited on the event loop; plain functions run on a thread of their own (one
per hook, so calls stay in order). Either way a call that raises is logged and
counted, and a call that takes longer than ``timeout`` is abandoned, logged and
counted; the hook then gets the next event. A hook never blocks another sink or
an input: it has its own bounded queue on the bus. A sync hook that hangs
forever keeps only its own (daemon) thread, which does not hold up exit.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ..bus import Subscription
from ..errors import ConfigError, ConfigProblem
from ..events import Event
from ..log import get_logger
from ..stats import Stats
from ._worker import WorkerThread

__all__ = ["HookSink", "resolve_hook"]

HookFn = Callable[[Event], Any]


def resolve_hook(target: str, *, key: str = "hooks[].target") -> HookFn:
    """Import ``package.module:attr.path``; a failure is a ConfigError naming ``key``."""
    module_name, _, attr_path = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is a config problem
        raise ConfigError(
            [ConfigProblem(key, f"cannot import {module_name!r}: {type(exc).__name__}: {exc}")]
        ) from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ConfigError(
                [ConfigProblem(key, f"{module_name!r} has no attribute {attr_path!r}")]
            ) from exc
    if not callable(obj):
        raise ConfigError([ConfigProblem(key, f"{target!r} is not callable")])
    return obj  # type: ignore[no-any-return]


class HookSink:
    def __init__(
        self, fn: HookFn, *, name: str, timeout: float = 5.0, stats: Stats | None = None
    ) -> None:
        self.fn = fn
        self.name = name
        self.timeout = timeout
        self.stats = stats if stats is not None else Stats()
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004  # async callable objects
        )
        self._log = get_logger("lprmeta.sinks.hooks", hook=name)

    async def run(self, sub: Subscription) -> None:
        thread = None if self._is_async else WorkerThread(f"lprmeta-hook-{self.name}")
        try:
            async for event in sub:
                await self._call(event, thread)
        finally:
            if thread is not None:
                thread.stop()

    async def _call(self, event: Event, thread: WorkerThread | None) -> None:
        fut: Future[Any] | None = None
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
            async with asyncio.timeout(self.timeout):
                if thread is None:
                    await self.fn(event)
                else:
                    fut = thread.submit(functools.partial(self.fn, event))
                    await asyncio.wrap_future(fut)
            self.stats.inc(f"hook_calls:{self.name}", event.camera)
        except TimeoutError:
            n = self.stats.inc(f"hook_timeouts:{self.name}", event.camera)
            self._log.error(
                "hook did not finish in time; skipped for this event",
                id=event.id,
                camera=event.camera,
                timeout=self.timeout,
                timeouts=n,
            )
        except Exception as exc:  # noqa: BLE001  # a user's hook may raise anything
            n = self.stats.inc(f"hook_errors:{self.name}", event.camera)
            self._log.error(
                "hook raised",
                id=event.id,
                camera=event.camera,
                error=exc,
                errors=n,
                exc_info=n == 1,
            )
