"""A daemon thread that runs blocking calls in order, for sinks that must not block the loop.

Unlike a ThreadPoolExecutor, its thread is a daemon: a call that never returns
(a hung user hook, a stdout reader that stopped reading) cannot hold up the
process at exit.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

__all__ = ["WorkerThread"]


class WorkerThread:
    def __init__(self, name: str) -> None:
        self._jobs: deque[tuple[Callable[[], Any] | None, Future[Any]]] = deque()
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        return self._put(fn)

    def stop(self) -> None:
        """Finish the calls already submitted, then end the thread."""
        self._put(None)

    def _put(self, fn: Callable[[], Any] | None) -> Future[Any]:
        fut: Future[Any] = Future()
        with self._cv:
            self._jobs.append((fn, fut))
            self._cv.notify()
        return fut

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._jobs:
                    self._cv.wait()
                fn, fut = self._jobs.popleft()
            if fn is None:
                fut.set_result(None)
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:  # noqa: BLE001  # handed to whoever awaits the future
                fut.set_exception(exc)
