"""The RTSP input: a camera's ONVIF metadata track, read with PyAV, pictures fetched in time.

Owns one camera's RTSP sessions' renewal and reconnects, the overlap dedup,
and the hand-off of reads to the intake; identifying the camera is
:mod:`.identity`'s; parsing is
:mod:`lprmeta.protocol.onvif`'s, fetching and saving pictures
:mod:`lprmeta.intake`'s.

How it works, and why (facts verified on this machine with PyAV 18 / FFmpeg 8):

* **Sessions** run in threads of their own (:mod:`.rtsp_session`: the demux
  thread and the hand-off of whole documents to the loop).
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
import hashlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from urllib.parse import quote

from ..config import CameraConfig, RtspConfig
from ..deadlines import Deadlines
from ..envelope import Read
from ..errors import (
    AuthenticationFailed,
    ConnectError,
    NoMetadataTrack,
    NotResponding,
    ProtocolError,
    TransportError,
)
from ..health import Health
from ..log import get_logger, log_counted, redact_text
from ..protocol.onvif import document_events
from ..protocol.scene import PlateTracker, Ready, SceneParse, scene_read
from ..retry import Backoff, Outcome, StateLog, credentials_refused, reconnect
from ..stats import Stats
from .identity import CameraIdentity
from .rtsp_client import describe_stream
from .rtsp_session import RtspSession, with_credentials

__all__ = ["RtspInput"]

_DEDUP_SECONDS = 10.0
# Digests of documents remembered at most (32 documents/s for the window is 320).
_MAX_RECENT_DOCUMENTS = 100_000
_OPEN_MARGIN = 0.25  # seconds past open_timeout before an open is given up


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
        self.identity = CameraIdentity(
            camera,
            features=features or [],
            log=self._log,
            timeout=self.cfg.effective_open_timeout,
            on_device=(
                (
                    lambda d: health.identify(
                        camera.name,
                        manufacturer=d.manufacturer,
                        model=d.model,
                        sw_version=d.firmware,
                        serial_number=d.serial,
                    )
                )
                if health is not None
                else None
            ),
        )
        self.session_timeout: int | None = None
        self.refresh: float | None = None
        self._sessions: set[RtspSession] = set()
        self._recent: Deadlines[bytes] = Deadlines()  # digest -> when it stops being a repeat
        self._session_no = 0
        self._closing = False
        # Profile M scene descriptions: one read per tracked object (protocol/scene.py).
        self._tracker = PlateTracker()
        self._tracker_timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> RtspInput:
        return self  # sessions are opened by run(), under the supervisor

    @property
    def url(self) -> str | None:
        """The stream URL: configured, or found through ONVIF."""
        return self.identity.url

    @url.setter
    def url(self, value: str | None) -> None:
        self.identity.url = value

    # ----------------------------------------------------------------- the loop

    async def run(self) -> None:
        try:
            await reconnect(
                self._stream,
                classify=self._classify,
                backoff=self.backoff,
                state=self._state,
                ended=self._attempt_ended,
                retrying=lambda: self.stats.inc("reconnects", self.camera.name),
                sleep=self._sleep,
            )
        finally:
            self._stop_sessions()

    def _classify(self, exc: Exception) -> Outcome | None:
        """What a failed connection means; None for what this input does not expect."""
        name = self.camera.name
        if isinstance(exc, AuthenticationFailed):
            self.stats.inc("auth_failures", name)
            return credentials_refused("RTSP", str(exc), self.cfg.auth_retry)
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

    async def _stream(self) -> bool:
        """One connection (renewed while quiet) until it fails: it only ends by raising."""
        url = await self.identity.stream_url()
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
            url=with_credentials(url, self._user, self._password),
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
            # PyAV's own timeout bounds each of av.open()'s socket operations, not the
            # whole open, and a frozen server was seen to take ~1.7 s of a 0.75 s open
            # timeout: this bounds the whole open close to what open_timeout promises
            # (a frozen camera is then noticed within rtsp.timeout, not a second after).
            async with asyncio.timeout(self.cfg.effective_open_timeout + _OPEN_MARGIN):
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
        assembler = session.assembler
        total = session.analytics_documents + assembler.partial + assembler.oversize
        if total == session.folded_total:
            return  # nearly every document: the counters only grow, so none has moved
        session.folded_total = total
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
        until = self._recent.get(key)
        if until is not None and now < until:
            self.stats.inc("overlap_duplicates", self.camera.name)
            return
        self._recent.remember(key, now + _DEDUP_SECONDS, _MAX_RECENT_DOCUMENTS)
        self._recent.expire(now)
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
        if parsed.scene.objects or parsed.scene.deleted:
            self._scene(parsed.scene)

    # ----------------------------------------------------------------- scene descriptions

    def _scene(self, scene: SceneParse) -> None:
        name = self.camera.name
        if scene.skipped_objects:
            n = self.stats.inc("scene_objects_skipped", name, scene.skipped_objects)
            if n == scene.skipped_objects:
                self._log.warning(
                    "scene description with more objects or elements than the limits; "
                    "the rest not read",
                    skipped=scene.skipped_objects,
                )
        odd = sum(o.out_of_range for o in scene.objects)
        if odd:
            n = self.stats.inc("scene_likelihood_out_of_range", name, odd)
            if n == odd:
                self._log.warning(
                    "plate likelihood outside 0-1 and 0-100; kept raw, not compared",
                    example=next(
                        o.items.get("LicensePlateInfo.PlateNumber@Likelihood")
                        for o in scene.objects
                        if o.out_of_range
                    ),
                )
        self.stats.inc("scene_plates", name, sum(1 for o in scene.objects if o.plate))
        loop = asyncio.get_running_loop()
        self._emit_scene(self._tracker.frame(scene, loop.time()))
        self._arm_tracker()

    def _emit_scene(self, ready: list[Ready]) -> None:
        for obj, frames, why in ready:
            self.stats.inc("scene_reads", self.camera.name)
            self._deliver(
                scene_read(
                    obj,
                    camera=self.camera.name,
                    received=self._now(),
                    frames=frames,
                    why=why,
                    max_picture=self.cfg.max_picture,
                )
            )

    def _arm_tracker(self) -> None:
        waiting = self._tracker.waiting > 0
        for session in self._sessions:
            session.scene_deletes = waiting
        due = self._tracker.next_due()
        if due is None or self._tracker_timer is not None:
            return
        loop = asyncio.get_running_loop()
        self._tracker_timer = loop.call_at(due, self._tracker_due)

    def _tracker_due(self) -> None:
        self._tracker_timer = None
        try:
            self._emit_scene(self._tracker.due(asyncio.get_running_loop().time()))
        finally:
            self._arm_tracker()

    # ----------------------------------------------------------------- shutdown

    async def __aexit__(self, *exc: object) -> None:
        """Stop the sessions (reads in flight are the intake's to finish)."""
        self._closing = True
        if self._tracker_timer is not None:
            self._tracker_timer.cancel()
            self._tracker_timer = None
        # Plates still waiting are read now: the stream ends, the cars were seen.
        self._emit_scene(self._tracker.flush(asyncio.get_running_loop().time()))
        self._stop_sessions()
        self.identity.close()
        # Session threads only hand documents over; each ends by itself within TICK
        # (closing its container, which sends TEARDOWN). Waiting a moment lets the
        # common case end cleanly without holding up a shutdown.
        ended = [s.ended for s in list(self._sessions)]
        if ended:
            await asyncio.wait(ended, timeout=0.5)
