"""The event loop's watchdog, and systemd's (``Type=notify`` with ``WatchdogSec``).

Owns two things:

* **Stall detection.** A task on the loop beats every ``interval``; a thread
  watches the beat. When the loop has not beaten for ``threshold`` seconds
  (250 ms by default) the thread logs, once per stall, what the loop thread
  is running (its stack, innermost frames, no locals) and the stall is
  counted (``loop_stalls``, and its length when it ends). A stall is a bug:
  no request, packet or document is meant to hold the loop past 50 ms.
* **sd_notify.** Under systemd (``NOTIFY_SOCKET`` set) the daemon says
  ``READY=1`` once started, ``WATCHDOG=1`` from the loop itself every half
  ``WATCHDOG_USEC``, and ``STOPPING=1`` at shutdown; a wedged loop stops
  the pings and systemd restarts the process. No dependency: it is one
  datagram on a Unix socket.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable

from .log import get_logger
from .stats import Stats

__all__ = ["LoopWatchdog", "sd_notify", "systemd_watchdog_interval"]


def sd_notify(message: str, *, env: dict[str, str] | None = None) -> bool:
    """Send ``message`` to systemd's notification socket; False when there is none."""
    path = (env if env is not None else os.environ).get("NOTIFY_SOCKET")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def systemd_watchdog_interval(env: dict[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), or None."""
    e = env if env is not None else os.environ
    usec = e.get("WATCHDOG_USEC")
    pid = e.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 1e6 / 2


class LoopWatchdog:
    def __init__(
        self,
        *,
        stats: Stats,
        threshold: float = 0.25,
        interval: float = 0.05,
        notify: Callable[[str], bool] = sd_notify,
        notify_every: float | None = None,
    ) -> None:
        self.stats = stats
        self.threshold = threshold
        self.interval = interval
        self._notify = notify
        self._notify_every = notify_every
        self._beat = time.monotonic()
        self._loop_thread: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stalls: list[float] = []  # ended stalls, folded into stats on the loop
        self.stalls = 0
        self.longest = 0.0
        self._log = get_logger("lprmeta.watchdog")

    async def run(self) -> None:
        """The beat (on the loop) and, under systemd, the watchdog pings."""
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        if self._thread is None:
            # A fresh flag per run: a run restarted by the supervisor watches again (the
            # last run set the old one on its way out).
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._watch, args=(self._stop,), name="lprmeta-watchdog", daemon=True
            )
            self._thread.start()
        last_ping = 0.0
        try:
            while True:
                now = time.monotonic()
                self._beat = now
                with self._lock:
                    ended, self._stalls = self._stalls, []
                for seconds in ended:
                    self.stats.inc("loop_stalls")
                    self.stats.inc("loop_stall_ms", n=int(seconds * 1000))
                if self._notify_every is not None and now - last_ping >= self._notify_every:
                    self._notify("WATCHDOG=1")
                    last_ping = now
                await asyncio.sleep(self.interval)
        finally:
            self._stop.set()
            self._thread = None

    def _watch(self, stop: threading.Event) -> None:
        stalled_since: float | None = None
        while not stop.wait(self.interval):
            beat = self._beat
            late = time.monotonic() - beat
            if late > self.threshold and stalled_since != beat:
                stalled_since = beat
                self._report(late)
            elif late <= self.threshold and stalled_since is not None:
                # The loop beat again: the stall is over; how long it lasted.
                length = self._beat - stalled_since
                stalled_since = None
                self.longest = max(self.longest, length)
                with self._lock:
                    self._stalls.append(length)
                self._log.warning("event loop ran again", stalled_ms=round(length * 1000))

    def _report(self, late: float) -> None:
        self.stalls += 1
        frame = sys._current_frames().get(self._loop_thread or -1)
        stack: list[str] = []
        if frame is not None:
            summary = traceback.extract_stack(frame, limit=12)
            stack = [f"{f.filename}:{f.lineno} {f.name}" for f in summary]
        self._log.warning(
            "event loop stalled: nothing else runs until it returns",
            stalled_ms=round(late * 1000),
            threshold_ms=round(self.threshold * 1000),
            running=stack[-6:],
            stalls=self.stalls,
        )
