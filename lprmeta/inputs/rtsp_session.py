"""One RTSP session of the ONVIF metadata track, demuxed by PyAV in its own thread, and
the hand-off of whole documents from those threads to the event loop.

Owns the thread side of the RTSP input (:mod:`.rtsp` owns the sessions' renewal,
reconnects and what becomes of a document). Facts verified on this machine with
PyAV 18 / FFmpeg 8:

* **One thread per session.** ``demux()`` blocks, and closing a container
  from another thread crashes the process; so each session's thread opens
  the container, demuxes with a short read timeout (a *tick*, so it can see
  its stop flag between packets), and closes the container itself. Whole
  documents go to the event loop through the :class:`Inbox`; scene
  descriptions (``tt:VideoAnalytics``) are counted in the thread and never
  cross over.
* **Only the metadata track** is set up (``allowed_media_types=data``) over
  TCP: no video bandwidth, and ``open()`` does not wait for video to flow.
* **A closed connection** ends ``demux()`` without an exception.
* **Secrets**: FFmpeg needs the credentials in the URL, and its error texts
  quote that URL; every message that leaves this module is redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from ..log import get_logger, log_counted, redact_text
from ..protocol.onvif import DocumentAssembler, has_notifications
from ..protocol.scene import has_scene_plates

__all__ = ["TICK", "Inbox", "RtspSession", "classify_open_error", "inbox_for", "with_credentials"]

# Seconds a blocked demux waits for data before the thread looks at its stop flag.
# This is FFmpeg's socket timeout (its ``timeout`` option), which fires only when
# no byte arrives for that long. PyAV's own read timeout must not be used: it
# interrupts FFmpeg between the ``$`` of an interleaved frame and its header even
# when the bytes are there, FFmpeg answers EIO, and the session and its document
# are lost (seen here, ~1 read in 5 after a quiet gap). PyAV's timeout is used
# for opening only. The socket timeout applies to each reply while opening too,
# so it is generous for a slow camera.
TICK = 2.0
# Documents one drain of the inbox handles before it lets the loop's other work run
# (a plate document takes ~100 us: ~10 ms at most).
DRAIN_BATCH = 100


class Inbox:
    """Documents from every RTSP thread of one event loop, handed over in batches.

    Waking the event loop from a thread costs system calls and context switches
    (measured: most of the loop's CPU at 2,000 documents/s, more than parsing).
    So a thread wakes the loop only when no drain is scheduled, and a drain that
    found documents looks again after ``linger`` seconds instead of waiting to be
    woken: under load, threads never wake the loop and each look carries
    everything that arrived meanwhile; when a look finds nothing, the next
    document wakes the loop at once. Latency grows by at most ``linger``.

    No lock: the flag is cleared before the last look at the queue, so a document
    appended meanwhile is either taken now or finds the flag clear and wakes.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, *, linger: float = 0.002) -> None:
        self._loop = loop
        self.linger = linger
        self._items: deque[tuple[Callable[[RtspSession, bytes], None], RtspSession, bytes]] = (
            deque()
        )
        self._scheduled = False
        self.failures = 0

    def put(
        self, handler: Callable[[RtspSession, bytes], None], session: RtspSession, doc: bytes
    ) -> None:
        """From a session thread."""
        self._items.append((handler, session, doc))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        items = self._items
        busy = False
        taken = 0
        again = False
        try:
            while True:
                while items:
                    if taken >= DRAIN_BATCH:
                        # A backlog: the rest after the loop's other work (the sink
                        # writes what was parsed), not in one callback of unbounded length.
                        self._loop.call_soon(self._drain)
                        again = True
                        return
                    taken += 1
                    handler, session, doc = items.popleft()
                    busy = True
                    try:
                        handler(session, doc)
                    except Exception as exc:  # noqa: BLE001  # one document, not the inbox
                        # Handlers contain their own errors; this is the last line, so that
                        # no document can leave the flag set and silence every camera.
                        self.failures += 1
                        log_counted(
                            get_logger("lprmeta.inputs.rtsp"),
                            self.failures,
                            "error",
                            "RTSP document handler failed; the document is lost",
                            step=1000,
                            error=f"{type(exc).__name__}: {exc}",
                            failures=self.failures,
                            exc_info=exc,
                        )
                self._scheduled = False
                if not items:
                    break
                self._scheduled = True  # arrived between the last look and the flag
        finally:
            if again:
                pass  # scheduled again above; the flag stays set
            elif not busy:
                self._scheduled = False
            else:  # more are likely: look again shortly rather than be woken for each
                self._scheduled = True
                self._loop.call_later(self.linger, self._drain)


_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Inbox] = weakref.WeakKeyDictionary()


def inbox_for(loop: asyncio.AbstractEventLoop) -> Inbox:
    inbox = _inboxes.get(loop)
    if inbox is None:
        inbox = _inboxes[loop] = Inbox(loop)
    return inbox


def _no_wakeup_preemption() -> None:
    """This thread (a session's reader) as SCHED_BATCH: when its socket has data, it does
    not preempt the running thread (most often the event loop, holding the GIL) but takes
    its turn. Measured in the 200-stream run: the loop thread was preempted 1,100 times a
    second by readers that then found the GIL held and slept again; with this, its
    context switches went from 1,350 to 364 a second, and in 4 alternating runs each the
    daemon's CPU fell from 64.9% to 60.6% (median; lower in every pair) and the p99 from
    22.4 to 13.8 ms. The thread keeps nice 0 (the same share of the CPU over time); any
    user may set this policy; where the system has none, nothing changes."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:
        return
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, policy, os.sched_param(0))


class RtspSession(threading.Thread):
    """One RTSP session, demuxed by PyAV in this thread.

    ``opened`` resolves (on the event loop) once the session plays, with
    ``None`` or an error ``(kind, message)``; ``ended`` resolves when the
    thread is done, with ``(reason, message)``: reason ``"stopped"``,
    ``"closed"`` (the server ended the stream) or ``"error"``.
    """

    def __init__(
        self,
        *,
        url: str,
        secrets: list[str],
        loop: asyncio.AbstractEventLoop,
        on_document: Callable[[RtspSession, bytes], None],
        open_timeout: float,
        max_document: int,
        name: str,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._url = url
        self._secrets = secrets
        self._loop = loop
        self._inbox = inbox_for(loop)
        self._on_document = on_document
        self._open_timeout = open_timeout
        self._stop_flag = threading.Event()
        self.assembler = DocumentAssembler(max_size=max_document)
        self.opened: asyncio.Future[tuple[str, str] | None] = loop.create_future()
        self.ended: asyncio.Future[tuple[str, str | None]] = loop.create_future()
        self.opened_at = 0.0
        self.last_packet = 0.0
        self.packets = 0
        self.analytics_documents = 0
        # Set by the input while plates of the scene wait for their read: a frame that
        # deletes objects may end one, so it is handed over too (read across threads:
        # a bool).
        self.scene_deletes = False
        self.folded: dict[str, int] = {}
        self.folded_total = 0  # the sum of folded's counters: unchanged, nothing to fold

    @property
    def last_activity(self) -> float:
        return max(self.opened_at, self.last_packet)

    def stop(self) -> None:
        self._stop_flag.set()

    def _resolve(self, fut: asyncio.Future[Any], value: Any) -> None:
        def set_it() -> None:
            if not fut.done():
                fut.set_result(value)

        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self._loop.call_soon_threadsafe(set_it)

    def _clean(self, exc: BaseException) -> str:
        return redact_text(f"{type(exc).__name__}: {exc}", self._secrets)

    def run(self) -> None:
        import av  # noqa: PLC0415  # the thread is where FFmpeg lives

        _no_wakeup_preemption()
        try:
            container = av.open(
                self._url,
                options={
                    "rtsp_transport": "tcp",
                    "allowed_media_types": "data",
                    "timeout": str(int(TICK * 1_000_000)),  # microseconds
                },
                timeout=(self._open_timeout, None),
            )
        except Exception as exc:  # noqa: BLE001  # every failure is reported, typed, below
            self._resolve(self.opened, (classify_open_error(exc), self._clean(exc)))
            self._resolve(self.ended, ("error", self._clean(exc)))
            return
        reason, message = "stopped", None
        try:
            if not container.streams.data:
                self._resolve(self.opened, ("no-track", "the stream has no data track"))
                reason = "error"
                return
            stream = container.streams.data[0]
            self.opened_at = time.monotonic()
            self._resolve(self.opened, None)
            reason, message = self._demux(av, container, stream)
        finally:
            self.assembler.flush()
            with contextlib.suppress(Exception):  # closing a dead session may fail; it is over
                container.close()
            self._resolve(self.ended, (reason, message))

    def _demux(self, av: Any, container: Any, stream: Any) -> tuple[str, str | None]:
        stop = self._stop_flag
        feed, put, handler = self.assembler.feed, self._inbox.put, self._on_document
        while not stop.is_set():
            try:
                for packet in container.demux(stream):
                    if packet.size:
                        self.last_packet = time.monotonic()
                        self.packets += 1
                        for doc in feed(bytes(packet), packet.pts):
                            if has_notifications(doc) or has_scene_plates(
                                doc, deletes=self.scene_deletes
                            ):
                                put(handler, self, doc)
                            else:
                                self.analytics_documents += 1
                    if stop.is_set():
                        return "stopped", None
            except av.error.TimeoutError:
                continue  # a tick: no data for TICK seconds; look at the stop flag, wait on
            except RuntimeError:
                return "stopped", None  # the event loop is gone: we are shutting down
            except Exception as exc:  # noqa: BLE001  # reported, redacted
                return "error", self._clean(exc)
            else:
                return "closed", None  # demux() ends without an exception when the server hangs up
        return "stopped", None


def classify_open_error(exc: BaseException) -> str:
    name = type(exc).__name__
    text = str(exc).lower()
    if "unauthorized" in name.lower() or "401" in text or "unauthorized" in text:
        return "auth"
    if name in ("ExitError", "TimeoutError") or "timed out" in text:
        return "timeout"
    return "connect"


def with_credentials(url: str, user: str, password: str) -> str:
    """The URL FFmpeg needs: credentials percent-encoded into it."""
    if not user and not password:
        return url
    parts = urlsplit(url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))
