"""The RTSP input: a camera's ONVIF metadata track, read with PyAV, pictures fetched in time.

Owns one camera's RTSP sessions, their renewal and reconnects, and the
hand-off of notifications to the intake; parsing is
:mod:`lprmeta.protocol.onvif`'s, fetching and saving pictures
:mod:`lprmeta.intake`'s.

How it works, and why (facts verified on this machine with PyAV 18 / FFmpeg 8):

* **One thread per session.** ``demux()`` blocks, and closing a container
  from another thread crashes the process; so each session's thread opens
  the container, demuxes with a short read timeout (a *tick*, so it can see
  its stop flag between packets), and closes the container itself. Whole
  documents go to the event loop with ``call_soon_threadsafe``; scene
  descriptions (``tt:VideoAnalytics``) are counted in the thread and never
  cross over.
* **Only the metadata track** is set up (``allowed_media_types=data``) over
  TCP: no video bandwidth, and ``open()`` does not wait for video to flow.
* **Learning the session timeout.** Before each connection the input does
  its own DESCRIBE/SETUP (:mod:`.rtsp_client`): it learns the timeout the
  server advertises and fails with a clear error when the password is wrong
  or the stream has no metadata track.
* **A quiet stream stays alive.** FFmpeg sends its RTSP keep-alive only when
  a packet arrives, so a camera that enforces its session timeout tears a
  quiet session down. After ``refresh`` seconds without a packet (by default
  0.4 x the advertised timeout) a new session is opened, and only once it
  plays is the old one stopped: make-before-break, so no notification is
  lost in between. A document that arrives on both during the overlap is
  recognised by its bytes and delivered once (``overlap_duplicates``).
* **A frozen server** (connections accepted, nothing answered) shows as a
  quiet stream whose renewal cannot open within ``open_timeout``: it is
  reported within ``timeout`` and reconnected with backoff.
* **A closed connection** ends ``demux()`` without an exception: reconnect.
* **Pictures** are the intake's (:mod:`lprmeta.intake`): each read is handed
  over with the picture paths it announces, and the intake fetches them.
* **Secrets**: FFmpeg needs the credentials in the URL, and its error texts
  quote that URL; every message that leaves this module is redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from ..config import CameraConfig, RtspConfig
from ..envelope import Read
from ..errors import (
    AuthenticationFailed,
    ConnectError,
    NoMetadataTrack,
    NotResponding,
    ProtocolError,
    TransportError,
)
from ..firmware import check_features, recommendation
from ..health import Health
from ..log import get_logger, log_counted, redact_text
from ..protocol.onvif import DocumentAssembler, document_events, has_notifications
from ..protocol.rtsp import strip_userinfo
from ..retry import Backoff, Outcome, StateLog, reconnect
from ..stats import Stats
from .onvif import DeviceInfo, device_information, query_onvif
from .rtsp_client import describe_stream

__all__ = ["RtspInput", "RtspSession"]

# Seconds a blocked demux waits for data before the thread looks at its stop flag.
# This is FFmpeg's socket timeout (its ``timeout`` option), which fires only when
# no byte arrives for that long. PyAV's own read timeout must not be used: it
# interrupts FFmpeg between the ``$`` of an interleaved frame and its header even
# when the bytes are there, FFmpeg answers EIO, and the session and its document
# are lost (seen here, ~1 read in 5 after a quiet gap). PyAV's timeout is used
# for opening only. The socket timeout applies to each reply while opening too,
# so it is generous for a slow camera.
TICK = 2.0
_DEDUP_SECONDS = 10.0


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
        try:
            while True:
                while items:
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
            if not busy:
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
        self.folded: dict[str, int] = {}

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
            self._resolve(self.opened, (_classify(exc), self._clean(exc)))
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
                            if has_notifications(doc):
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


def _classify(exc: BaseException) -> str:
    name = type(exc).__name__
    text = str(exc).lower()
    if "unauthorized" in name.lower() or "401" in text or "unauthorized" in text:
        return "auth"
    if name in ("ExitError", "TimeoutError") or "timed out" in text:
        return "timeout"
    return "connect"


def _with_credentials(url: str, user: str, password: str) -> str:
    """The URL FFmpeg needs: credentials percent-encoded into it."""
    if not user and not password:
        return url
    parts = urlsplit(url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


class RtspInput:
    def __init__(
        self,
        camera: CameraConfig,
        *,
        deliver: Callable[[Read], None],
        stats: Stats,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        features: list[str] | None = None,
        health: Health | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        assert camera.rtsp is not None
        self._sleep = sleep
        self.camera = camera
        self.cfg: RtspConfig = camera.rtsp
        self.name = f"rtsp:{camera.name}"
        self._deliver = deliver
        self.stats = stats
        self._now = now
        self._features = features or []
        self._user = self.cfg.username if self.cfg.username is not None else camera.username
        secret = self.cfg.password if self.cfg.password is not None else camera.password
        self._password = secret.get()
        self._secrets = [s for s in (self._password, quote(self._password, safe="")) if s]
        self._log = get_logger("lprmeta.inputs.rtsp", camera=camera.name)
        self._state = StateLog(
            self._log,
            (lambda state: health.set(camera.name, "rtsp", state)) if health else None,
        )
        self.backoff = Backoff(self.cfg.backoff_initial, self.cfg.backoff_max)
        self.connected = asyncio.Event()
        self.url: str | None = self.cfg.url
        self.device: DeviceInfo | None = None
        self.session_timeout: int | None = None
        self.refresh: float | None = None
        self._sessions: set[RtspSession] = set()
        self._pending: set[asyncio.Task[None]] = set()
        self._recent: OrderedDict[bytes, float] = OrderedDict()
        self._session_no = 0
        self._closing = False
        self._identified = False

    async def start(self) -> None:
        return None

    # ----------------------------------------------------------------- the loop

    async def run(self) -> None:
        try:
            await reconnect(
                self._stream,
                classify=self._classify,
                backoff=self.backoff,
                state=self._state,
                ended=self._attempt_ended,
                sleep=self._sleep,
            )
        finally:
            self._stop_sessions()

    def _classify(self, exc: Exception) -> Outcome | None:
        """What a failed connection means; None for what this input does not expect."""
        name = self.camera.name
        if isinstance(exc, AuthenticationFailed):
            self.stats.inc("auth_failures", name)
            return Outcome(
                "auth-failed",
                "camera refused the RTSP credentials; check cameras.username/password",
                level="error",
                at_least=self.cfg.auth_retry,
                fields={"reason": str(exc), "retry_in": self.cfg.auth_retry},
            )
        if isinstance(exc, NoMetadataTrack):
            fields = {"tracks": exc.tracks}
            return Outcome("no-metadata", str(exc), "error", self.cfg.backoff_max, fields)
        if isinstance(exc, NotResponding):
            self.stats.inc("not_responding", name)
            return Outcome(
                "not-responding",
                "camera's RTSP server is not responding (frozen?)",
                fields={"reason": str(exc)},
            )
        if isinstance(exc, TransportError | OSError):
            return Outcome(
                f"down:{type(exc).__name__}",
                "camera stream lost" if self.connected.is_set() else "cannot reach camera stream",
                fields={"reason": redact_text(str(exc), self._secrets)},
            )
        return None

    def _attempt_ended(self) -> None:
        self.connected.clear()
        self._stop_sessions()
        self.stats.inc("reconnects", self.camera.name)

    async def _stream(self) -> bool:
        """One connection (renewed while quiet) until it fails: it only ends by raising."""
        url = await self._resolve_url()
        info = await describe_stream(
            url, self._user, self._password, timeout=self.cfg.effective_open_timeout
        )
        self.session_timeout = info.session_timeout
        refresh = self.refresh = self.cfg.quiet_refresh(info.session_timeout)
        current = await self._open(url)
        self.backoff.connected()
        self.connected.set()
        self._state.change(
            "up",
            "camera stream playing",
            url=url,
            tracks=info.tracks,
            session_timeout=info.session_timeout,
            refresh=round(refresh, 2),
        )
        while True:
            quiet = time.monotonic() - current.last_activity
            wait = min(max(0.05, refresh - quiet), 5.0)
            await asyncio.wait({current.ended}, timeout=wait)
            self._fold(current)
            if current.ended.done():
                reason, message = current.ended.result()
                self.stats.inc("sessions_ended", self.camera.name)
                if reason == "error":
                    raise ConnectError(f"stream failed: {message}")
                raise ConnectError("the camera closed the stream")
            if time.monotonic() - current.last_activity >= refresh:
                current = await self._renew(url, current, refresh)

    async def _renew(self, url: str, current: RtspSession, refresh: float) -> RtspSession:
        """Make before break: the new session plays before the quiet one stops."""
        try:
            new = await self._open(url)
        except TransportError as exc:
            current.stop()
            if isinstance(exc, AuthenticationFailed):
                raise
            raise NotResponding(
                f"no packet for {refresh:g} s and a new session could not be opened: {exc}"
            ) from exc
        self.stats.inc("session_refreshes", self.camera.name)
        self._log.debug("quiet stream renewed", refresh=refresh)
        current.stop()
        return new

    async def _open(self, url: str) -> RtspSession:
        self._session_no += 1
        session = RtspSession(
            url=_with_credentials(url, self._user, self._password),
            secrets=self._secrets,
            loop=asyncio.get_running_loop(),
            on_document=self._on_document,
            open_timeout=self.cfg.effective_open_timeout,
            max_document=self.cfg.max_document,
            name=f"lprmeta-rtsp-{self.camera.name}-{self._session_no}",
        )
        self._sessions.add(session)
        session.ended.add_done_callback(lambda _f: self._ended(session))
        session.start()
        try:
            # PyAV's open timeout bounds av.open(); this only guards against a hang in it.
            async with asyncio.timeout(self.cfg.effective_open_timeout + 1.0):
                error = await asyncio.shield(session.opened)
        except TimeoutError as exc:
            session.stop()
            raise NotResponding(
                f"session did not start within {self.cfg.effective_open_timeout:g} s"
            ) from exc
        if error is None:
            return session
        kind, message = error
        if kind == "auth":
            raise AuthenticationFailed(f"the RTSP server refused the credentials ({message})")
        if kind == "timeout":
            raise NotResponding(f"session did not start: {message}")
        if kind == "no-track":
            raise NoMetadataTrack(message, tracks=[])
        raise ConnectError(f"session did not start: {message}")

    def _ended(self, session: RtspSession) -> None:
        self._sessions.discard(session)
        self._fold(session)

    def _fold(self, session: RtspSession) -> None:
        """Add what a session's thread counted to the camera's counters."""
        for name, value in (
            ("analytics_documents", session.analytics_documents),
            ("partial_documents", session.assembler.partial),
            ("oversize_documents", session.assembler.oversize),
        ):
            delta = value - session.folded.get(name, 0)
            if delta:
                session.folded[name] = value
                n = self.stats.inc(name, self.camera.name, delta)
                if name != "analytics_documents" and n == delta:  # first time: say it once
                    self._log.warning(f"{name.replace('_', ' ')} discarded", count=n)

    def _stop_sessions(self) -> None:
        for session in list(self._sessions):
            session.stop()

    # ----------------------------------------------------------------- camera identity

    async def _resolve_url(self) -> str:
        if self.url is not None:
            if not self._identified:
                self._identified = True
                task = asyncio.create_task(self._identify(), name=f"onvif:{self.camera.name}")
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
            return self.url
        info = await query_onvif(
            self.camera.host,
            self.camera.http_port,
            self.camera.username,
            self.camera.password.get(),
            timeout=max(5.0, self.cfg.effective_open_timeout),
        )
        self._identified = True
        self._note_device(info.device, info.notes)
        if info.stream_uri is None:
            raise ConnectError("the camera's ONVIF service offers no stream URI")
        self.url = strip_userinfo(info.stream_uri)  # our credentials, not the camera's echo
        return self.url

    async def _identify(self) -> None:
        """Model and firmware, once, when the stream URL is configured (best effort)."""
        try:
            device = await device_information(
                self.camera.host,
                self.camera.http_port,
                self.camera.username,
                self.camera.password.get(),
                timeout=10.0,
            )
        except TransportError as exc:
            self._log.debug("camera model unknown: ONVIF not available", reason=str(exc))
            return
        self._note_device(device, ())

    def _note_device(self, device: DeviceInfo | None, notes: tuple[str, ...]) -> None:
        self.device = device
        for note in notes:
            self._log.info(note)
        if device is None:
            return
        self._log.info(
            "camera identified",
            manufacturer=device.manufacturer,
            model=device.model,
            firmware=device.firmware,
        )
        for warning in check_features(device.model, device.firmware, self._features):
            self._log.warning("feature not supported by this camera", detail=warning)
        advice = recommendation(device.model, device.firmware)
        if advice:
            self._log.info(advice)

    # ----------------------------------------------------------------- documents

    def _on_document(self, session: RtspSession, doc: bytes) -> None:
        try:
            self._document(session, doc)
        except Exception as exc:  # noqa: BLE001  # one document of one camera, not the input
            n = self.stats.inc("document_failures", self.camera.name)
            log_counted(
                self._log,
                n,
                "error",
                "metadata document could not be handled; it is lost, the stream goes on",
                error=f"{type(exc).__name__}: {exc}",
                document_failures=n,
                exc_info=exc,
                step=1000,
            )

    def _document(self, session: RtspSession, doc: bytes) -> None:
        self._fold(session)  # a cut-short document is counted as the next one arrives
        now = time.monotonic()
        # Keyed by a digest, not the document: 1 MB documents at 32/s would otherwise hold
        # 320 MB here for the overlap window.
        key = hashlib.blake2b(doc, digest_size=16).digest()
        if key in self._recent and now - self._recent[key] < _DEDUP_SECONDS:
            self.stats.inc("overlap_duplicates", self.camera.name)
            return
        self._recent[key] = now
        self._recent.move_to_end(key)
        while self._recent and now - next(iter(self._recent.values())) > _DEDUP_SECONDS:
            self._recent.popitem(last=False)
        try:
            reads, parsed = document_events(
                doc, camera=self.camera.name, received=self._now(), max_size=self.cfg.max_document
            )
        except ProtocolError as exc:
            n = self.stats.inc("bad_documents", self.camera.name)
            log_counted(
                self._log, n, "warning", "bad metadata document", error=str(exc), bad_documents=n
            )
            return
        self.stats.inc("documents", self.camera.name)
        if parsed.analytics_frames:
            self.stats.inc("analytics_frames", self.camera.name, parsed.analytics_frames)
        if parsed.skipped_notifications:
            n = self.stats.inc(
                "skipped_notifications", self.camera.name, parsed.skipped_notifications
            )
            if n == parsed.skipped_notifications:  # the first time: say it once
                self._log.warning(
                    "document with more notifications than the limit; the rest not read",
                    skipped=parsed.skipped_notifications,
                )
        for read in reads:
            self._deliver(read)  # the intake fetches what it announces, saves, publishes

    # ----------------------------------------------------------------- shutdown

    async def aclose(self) -> None:
        """Stop the sessions (reads in flight are the intake's to finish)."""
        self._closing = True
        self._stop_sessions()
        for task in list(self._pending):  # identification, best effort
            task.cancel()
        # Session threads only hand documents over; each ends by itself within TICK
        # (closing its container, which sends TEARDOWN). Waiting a moment lets the
        # common case end cleanly without holding up a shutdown.
        ended = [s.ended for s in list(self._sessions)]
        if ended:
            await asyncio.wait(ended, timeout=0.5)
