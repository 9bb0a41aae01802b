"""The save threads (``lprmeta.saving.Savers``): a key's jobs in order and one at a time,
keys independent, results handed back in batches, failures contained, a clean close."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lprmeta.saving import BATCH, Savers


class Recorder:
    """A job function that records what ran where, and can be held per key."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ran: list[tuple[str, int]] = []
        self.running: dict[str, int] = {}
        self.overlaps = 0
        self.held: dict[str, threading.Event] = {}
        self.threads: set[str] = set()

    def __call__(self, job: tuple[str, int]) -> int:
        key, n = job
        with self.lock:
            self.running[key] = self.running.get(key, 0) + 1
            if self.running[key] > 1:
                self.overlaps += 1
            self.threads.add(threading.current_thread().name)
        gate = self.held.get(key)
        if gate is not None:
            gate.wait(10)
        with self.lock:
            self.ran.append((key, n))
            self.running[key] -= 1
        if n < 0:
            raise ValueError(f"job {n} failed")
        return n * 10


async def test_a_keys_jobs_run_in_order_one_at_a_time_and_return_their_results() -> None:
    rec = Recorder()
    savers: Savers[tuple[str, int], int] = Savers(rec, workers=4)
    futures = [savers.submit(k, (k, n)) for n in range(200) for k in ("a", "b", "c")]
    results = await asyncio.wait_for(asyncio.gather(*futures), 10)
    assert results == [n * 10 for n in range(200) for _ in ("a", "b", "c")]
    for key in ("a", "b", "c"):
        assert [n for k, n in rec.ran if k == key] == list(range(200))
    assert rec.overlaps == 0  # never two jobs of one key at once
    assert savers.threads <= 4
    savers.close()


async def test_a_held_key_holds_one_thread_and_the_other_keys_go_on() -> None:
    rec = Recorder()
    rec.held["stuck"] = threading.Event()
    savers: Savers[tuple[str, int], int] = Savers(rec, workers=2)
    stuck = [savers.submit("stuck", ("stuck", n)) for n in range(3)]
    await asyncio.sleep(0.05)
    others = [savers.submit(k, (k, n)) for n in range(50) for k in ("x", "y")]
    assert len(await asyncio.wait_for(asyncio.gather(*others), 5)) == 100
    assert not any(f.done() for f in stuck)
    rec.held["stuck"].set()
    assert await asyncio.wait_for(asyncio.gather(*stuck), 5) == [0, 10, 20]
    savers.close()


async def test_two_keys_at_once_get_two_threads_even_if_the_first_stalls() -> None:
    """One idle thread, two keys submitted in one turn of the loop (before it wakes):
    the second key gets a thread of its own, not the one the first key holds."""
    rec = Recorder()
    rec.held["stuck"] = threading.Event()
    savers: Savers[tuple[str, int], int] = Savers(rec, workers=2)
    assert await asyncio.wait_for(savers.submit("warm", ("warm", 1)), 5) == 10
    await asyncio.sleep(0.05)  # its thread is idle now
    stuck = savers.submit("stuck", ("stuck", 1))
    free = savers.submit("free", ("free", 2))
    assert await asyncio.wait_for(free, 2) == 20
    assert savers.threads == 2
    rec.held["stuck"].set()
    assert await asyncio.wait_for(stuck, 5) == 10
    savers.close()


async def test_a_backlog_is_handed_back_in_batches_not_one_wake_up_per_job() -> None:
    rec = Recorder()
    rec.held["a"] = threading.Event()
    savers: Savers[tuple[str, int], int] = Savers(rec, workers=1)
    drains = 0
    real_drain = savers._drain

    def counting_drain() -> None:
        nonlocal drains
        drains += 1
        real_drain()

    savers._drain = counting_drain  # type: ignore[method-assign]
    futures = [savers.submit("a", ("a", n)) for n in range(10 * BATCH)]
    await asyncio.sleep(0.05)
    rec.held["a"].set()
    await asyncio.wait_for(asyncio.gather(*futures), 10)
    # One hand-back per batch at most (fewer when the loop was slower than the thread):
    # a wake-up per job would be 160.
    assert 1 <= drains <= 10 + 1
    savers.close()


async def test_lone_results_each_wake_the_loop_once_and_leave_no_timer() -> None:
    """Light load (a camera's save now and then): each result is delivered at once, and
    no look-again timer is left behind to wake the loop for nothing."""
    rec = Recorder()
    savers: Savers[tuple[str, int], int] = Savers(rec, workers=2)
    for n in range(5):
        assert await asyncio.wait_for(savers.submit("a", ("a", n)), 5) == n * 10
        assert savers._timer is None
    assert savers.wakeups == 5
    savers.close()


async def test_a_failing_job_fails_its_future_only() -> None:
    rec = Recorder()
    savers: Savers[tuple[str, int], int] = Savers(rec, workers=2)
    futures = [savers.submit("a", ("a", n)) for n in (1, -1, 2)]
    done = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 5)
    assert done[0] == 10 and done[2] == 20
    assert isinstance(done[1], ValueError) and "job -1 failed" in str(done[1])
    assert await asyncio.wait_for(savers.submit("a", ("a", 3)), 5) == 30  # the key goes on
    savers.close()


async def test_a_cancelled_waiter_drops_its_result_and_the_rest_are_delivered() -> None:
    rec = Recorder()
    rec.held["a"] = threading.Event()
    savers: Savers[tuple[str, int], int] = Savers(rec, workers=1)
    first = savers.submit("a", ("a", 1))
    second = savers.submit("a", ("a", 2))
    first.cancel()
    rec.held["a"].set()
    assert await asyncio.wait_for(second, 5) == 20
    assert first.cancelled()
    savers.close()


async def test_close_lets_the_threads_go_and_drops_jobs_not_started() -> None:
    rec = Recorder()
    rec.held["a"] = threading.Event()
    savers: Savers[tuple[str, int], int] = Savers(rec, workers=2)
    running = savers.submit("a", ("a", 1))
    queued = savers.submit("a", ("a", 2))
    idle = await asyncio.wait_for(savers.submit("b", ("b", 1)), 5)
    assert idle == 10
    await asyncio.sleep(0.05)
    savers.close()
    rec.held["a"].set()
    assert await asyncio.wait_for(running, 5) == 10  # the save that had started finishes
    for thread in savers._threads:  # the threads are the part's own: joined off the loop
        await asyncio.to_thread(thread.join, 5)
    assert not any(t.is_alive() for t in savers._threads)
    assert not queued.done()  # never started; the intake has cancelled its waiter by now
    assert ("a", 2) not in rec.ran
    with pytest.raises(RuntimeError, match="closed"):
        savers.submit("a", ("a", 3))


def test_at_least_one_thread() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Savers(lambda job: job, workers=0)


def _refuse_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The system refusing a thread (out of threads or memory): no real way to get there
    as root on this machine, so Thread.start is made to fail for the save threads."""
    real_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if self.name.startswith("lprmeta-save"):
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)


async def test_no_thread_at_all_is_an_error_for_the_caller_and_leaves_nothing_queued(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = Recorder()
    savers: Savers[tuple[str, int], int] = Savers(rec, workers=2)
    with monkeypatch.context() as m:
        _refuse_threads(m)
        with pytest.raises(RuntimeError, match="no thread"):
            savers.submit("a", ("a", 1))
    assert savers.start_failures == 1 and savers.threads == 0
    assert not savers._pending and not savers._ready
    assert await asyncio.wait_for(savers.submit("a", ("a", 2)), 5) == 20  # tried again
    savers.close()


async def test_a_refused_second_thread_leaves_the_key_to_the_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rec = Recorder()
    rec.held["slow"] = threading.Event()
    savers: Savers[tuple[str, int], int] = Savers(rec, workers=2)
    slow = savers.submit("slow", ("slow", 1))
    await asyncio.sleep(0.05)
    with monkeypatch.context() as m:
        _refuse_threads(m)
        other = savers.submit("other", ("other", 2))  # no error: a thread exists
    assert savers.start_failures == 1 and savers.threads == 1
    assert not other.done()
    rec.held["slow"].set()
    assert await asyncio.wait_for(asyncio.gather(slow, other), 5) == [10, 20]
    savers.close()
