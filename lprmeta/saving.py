"""Picture saves, off the event loop, with as few thread wake-ups as the load allows.

Owns the threads that write pictures and the hand-offs between them and the event
loop; does not know what a save is (the intake passes it) or when a camera is too far
behind (the intake counts its bytes).

Why not ``loop.run_in_executor``: a save handed to a thread pool and its result handed
back cost two wake-ups (a futex for the pool's thread, the self-pipe for the loop), and
on this machine each costs 20-40 us of CPU: as much as hashing a 50 KB picture. Here:

* **Order and containment per camera.** A camera's saves run one at a time, in the
  order they were submitted, on whichever thread takes the camera; a camera whose
  directory stalls holds one thread, never the others (as the per-camera lock did).
* **A thread that is busy is not woken.** Submitting wakes a thread only when one is
  idle (a token in a ``SimpleQueue``, put after the lock is let go: a woken thread never
  finds the lock still held by its waker); a thread that finishes a batch takes the next
  ready camera without sleeping. It takes up to :data:`BATCH` saves of one camera at once.
* **The loop is woken once per batch of results, not once per save.** Results go into
  a deque; a thread wakes the loop only when no drain is scheduled, and a drain that
  found more than one result (a sign of load) looks again after ``linger`` instead of
  waiting to be woken (the RTSP inbox's pattern; no lock: the flag is cleared before the
  drain's look at the deque). Under load the threads never wake the loop, and a result
  waits ``linger`` at most; a lone result costs one wake-up, as before.

Threads are started on demand (up to ``workers``) and are daemon threads: a save stuck
on a dead disk must not keep the process from exiting (its unnamed file goes with the
process; where pictures are written as ``.part`` files, that file stays).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

__all__ = ["BATCH", "Savers"]

# Saves of one camera one thread takes at a time: then it looks for another camera, so
# a camera with a backlog does not keep a thread from the others for long.
BATCH: Final = 16

_J = TypeVar("_J")
_R = TypeVar("_R")


class _Job(Generic[_J, _R]):
    __slots__ = ("future", "job")

    def __init__(self, job: _J, future: asyncio.Future[_R]) -> None:
        self.job = job
        self.future = future


class Savers(Generic[_J, _R]):
    """``submit(key, job)`` -> a future of ``work(job)``, run on one of ``workers`` threads,
    jobs of one key in order and one at a time."""

    def __init__(
        self,
        work: Callable[[_J], _R],
        *,
        workers: int = 4,
        name: str = "save",
        linger: float = 0.001,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._work = work
        self._workers = workers
        self._name = name
        # Under _lock (held for a few lines, never while waiting): the jobs waiting per
        # key; the keys with jobs that no thread has (each at most once); the keys a
        # thread is working on; the threads waiting for a token, and the tokens on their
        # way to them.
        self._lock = threading.Lock()
        self._pending: dict[str, deque[_Job[_J, _R]]] = {}
        self._ready: deque[str] = deque()
        self._busy: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._started = 0  # threads made, for their names
        self._idle = 0
        self._waking = 0
        self._closed = False
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        # Results for the loop (the deque's appends and pops need no lock).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: deque[tuple[asyncio.Future[_R], Any, bool]] = deque()
        self._scheduled = False
        self._timer: asyncio.TimerHandle | None = None  # the drain's next look, if any
        self.linger = linger
        self.wakeups = 0  # times a thread woke the loop (tests, and to see the batching work)
        self.start_failures = 0  # threads the system refused to start

    @property
    def threads(self) -> int:
        return len(self._threads)

    def submit(self, key: str, job: _J) -> asyncio.Future[_R]:
        """On the event loop. The future is resolved on the loop; cancelling it does not
        take the job back (a save that started finishes; its result is dropped)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        if self._closed:
            raise RuntimeError("savers closed")
        future: asyncio.Future[_R] = loop.create_future()
        with self._lock:
            jobs = self._pending.get(key)
            if jobs is None:
                jobs = self._pending[key] = deque()
            jobs.append(_Job(job, future))
            if len(jobs) == 1 and key not in self._busy:
                self._ready.append(key)
            action = self._dispatch()
        if not self._act(action) and not self._threads:
            # No thread at all to run it: the caller is told (the read goes out with its
            # pictures marked), and the job is not left queued for nobody.
            with self._lock:
                jobs = self._pending.get(key)
                if jobs and jobs[-1].future is future:
                    jobs.pop()
                    if not jobs:
                        del self._pending[key]
                        if key in self._ready:
                            self._ready.remove(key)
            raise RuntimeError("no thread could be started to save pictures")
        return future

    def _dispatch(self) -> threading.Thread | bool:
        """Under the lock: what a ready key needs: True (wake an idle thread: none is woken
        twice), a new thread to start (as far as ``workers`` allow), or False (enough
        threads are waking, or every thread is busy and the first to finish takes it)."""
        if len(self._ready) <= self._waking:
            return False
        if self._idle > self._waking:
            self._waking += 1
            return True
        if len(self._threads) >= self._workers:
            return False
        self._started += 1
        thread = threading.Thread(
            target=self._run, name=f"lprmeta-{self._name}-{self._started}", daemon=True
        )
        self._threads.append(thread)
        return thread

    def _act(self, action: threading.Thread | bool) -> bool:
        """Outside the lock: do what :meth:`_dispatch` said. False when a thread was
        needed and the system refused one (it is forgotten, so the next submit tries
        again; the threads that exist take the key in turn)."""
        if action is True:
            self._tokens.put(None)
        elif isinstance(action, threading.Thread):
            try:
                action.start()
            except RuntimeError:  # "can't start new thread": out of threads or memory
                with self._lock:
                    self._threads.remove(action)
                self.start_failures += 1
                return False
        return True

    def close(self) -> None:
        """Idle threads end; a thread in a save ends after it. Jobs not started are not
        run (their futures stay pending: the intake has cancelled what waits for them)."""
        with self._lock:
            self._closed = True
            self._pending.clear()
            self._ready.clear()
            idle = self._idle
        for _ in range(idle):
            self._tokens.put(None)

    # ----------------------------------------------------------------- threads

    def _run(self) -> None:
        lock = self._lock
        while True:
            with lock:
                if not self._ready:
                    if self._closed:
                        return
                    self._idle += 1
                    key = None
                else:
                    key = self._ready.popleft()
                    jobs = self._pending[key]
                    batch = [jobs.popleft() for _ in range(min(len(jobs), BATCH))]
                    self._busy.add(key)
                    action = self._dispatch()  # other keys ready: a thread for them too
            if key is None:
                self._tokens.get()  # a token: a key is ready (or closing)
                with lock:
                    self._idle -= 1
                    self._waking = max(0, self._waking - 1)
                continue
            self._act(action)
            results: list[tuple[asyncio.Future[_R], Any, bool]] = []
            for item in batch:
                try:
                    results.append((item.future, self._work(item.job), True))
                except BaseException as exc:  # noqa: BLE001  # the waiting read handles it
                    results.append((item.future, exc, False))
            self._hand_back(results)
            with lock:
                self._busy.discard(key)
                left = self._pending.get(key)
                if left:
                    self._ready.append(key)  # at the end: the other cameras first
                elif left is not None:
                    del self._pending[key]

    def _hand_back(self, results: list[tuple[asyncio.Future[_R], Any, bool]]) -> None:
        self._done.extend(results)
        if not self._scheduled:
            self._scheduled = True
            self.wakeups += 1
            loop = self._loop
            assert loop is not None
            try:
                loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # the loop is closed: nobody waits any more
                self._scheduled = False

    # ----------------------------------------------------------------- the loop

    def _drain(self) -> None:
        self._scheduled = False  # before the look: a result added meanwhile schedules again
        done = self._done
        found = 0
        while done:
            future, value, ok = done.popleft()
            found += 1
            if future.done():
                continue  # its read was cut short (shutdown)
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        if found < 2:
            return  # no sign of load: the next result wakes the loop at once
        # More are likely: look again shortly rather than be woken for each (one such
        # look at a time, whichever drain found results).
        self._scheduled = True
        if self._timer is None:
            assert self._loop is not None
            self._timer = self._loop.call_later(self.linger, self._look_again)

    def _look_again(self) -> None:
        self._timer = None
        self._drain()
