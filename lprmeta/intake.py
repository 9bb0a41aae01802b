"""One path for every read: from "an input has a read" to "the bus has an event".

Owns, for every transport alike: completing the pictures (fetching what an RTSP
notification announces; the bytes HTTP and TCP carry were decoded by their
parsers), saving them **off the event loop** (a pool of threads: a disk that
takes seconds stalls no other camera), the plate lists, the health registry,
the count of values a parser could not read, and the hand-off to the bus.
Inputs only read wire bytes and hand over a :class:`~lprmeta.envelope.Read`.

Order: a camera's events reach the bus in the order its reads arrived (a read
waits for the one before it of the same camera); cameras never wait for each
other. A read with nothing to save or fetch, and nothing of its camera still
in flight, is published at once, without a task.

Pictures (vendor guide, "3. RTSP Type"): a notification names a picture that
the camera keeps only among its 10 latest; the fetch starts at once, fetches
run side by side (``fetch_concurrency`` per camera), and the event waits at
most ``picture_deadline``, then goes out with each missing picture marked and
the reason given (``evicted: ...`` when enough newer pictures were announced).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterable
from typing import Protocol

from .bus import Bus
from .config import CameraConfig, OnvifEventsConfig, RtspConfig
from .envelope import Picture, Read
from .errors import ForbiddenPictureURL, SnapshotError, StoreUnavailable
from .events import Event, ImageRef, replaced
from .health import Health
from .lists import Matcher
from .log import get_logger, log_counted, redact_text
from .saving import Savers
from .snapshots import CameraWeb, PictureFetcher
from .stats import Stats
from .storage import ImageStore

__all__ = ["KEPT_PICTURES", "CameraPictures", "Intake"]

KEPT_PICTURES = 10  # "Only 10 latest images are available for download"
# Bytes of one camera's pictures waiting to be saved; past this (a disk that has stalled
# for that camera) a read's pictures are marked missing and the read goes out, so memory
# stays bounded and the camera's lines keep coming. A burst is not a stall: 120 uploads
# of 100 KB at once are 12 MB.
MAX_WAITING_BYTES_PER_CAMERA = 64 * 1024 * 1024


class CameraPictures:
    """Fetching the pictures one RTSP camera announces."""

    def __init__(self, camera: CameraConfig, fetcher: PictureFetcher, stats: Stats) -> None:
        cfg = camera.rtsp or camera.onvif_events  # the metadata track's, else PullPoint's
        assert cfg is not None
        self.camera = camera
        self.cfg: RtspConfig | OnvifEventsConfig = cfg
        self.stats = stats
        self._fetcher = fetcher
        self.web = CameraWeb(
            camera.name,
            camera.host,
            camera.http_port,
            camera.username,
            camera.password.get(),
            max_picture=self.cfg.max_picture,
        )
        password = (self.cfg.password or camera.password).get()
        self._secrets = [password] if password else []
        self._slots = asyncio.Semaphore(self.cfg.fetch_concurrency)
        self.announced = 0
        self._log = get_logger("lprmeta.intake", camera=camera.name)

    def describe_url(self, path: str) -> str:
        try:
            return str(self.web.url_for(path))
        except ForbiddenPictureURL:
            return redact_text(path, self._secrets)

    def without(self, paths: Iterable[tuple[str, str]], reason: str) -> list[ImageRef]:
        return [
            ImageRef(role, None, None, None, missing=reason, url=self.describe_url(path))
            for role, path in paths
        ]

    async def fetch_all(
        self, paths: tuple[tuple[str, str], ...], arrived: float
    ) -> tuple[list[Picture], list[ImageRef]]:
        """Every announced picture, side by side, within the deadline from ``arrived``."""
        if not self.cfg.pictures:
            return [], self.without(paths, "not fetched (rtsp.pictures = false)")
        self.announced += len(paths)
        seq = self.announced
        deadline = arrived + self.cfg.picture_deadline
        results = await asyncio.gather(*(self._fetch(r, p, seq, deadline) for r, p in paths))
        return (
            [r for r in results if isinstance(r, Picture)],
            [r for r in results if isinstance(r, ImageRef)],
        )

    async def _fetch(self, role: str, path: str, seq: int, deadline: float) -> Picture | ImageRef:
        url = self.describe_url(path)
        name = self.camera.name
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                async with self._slots:
                    left = max(0.01, deadline - time.monotonic())
                    data = await self._fetcher.fetch(self.web, path, timeout=left)
        except ForbiddenPictureURL as exc:
            if self.stats.inc("pictures_refused", name) == 1:
                self._log.warning("picture URL refused (not the camera's host)", error=str(exc))
            return ImageRef(role, None, None, None, missing=exc.reason, url=url)
        except (SnapshotError, TimeoutError) as exc:
            reason = (
                exc.reason
                if isinstance(exc, SnapshotError)
                else f"not fetched within {self.cfg.picture_deadline:g} s"
            )
            newer = self.announced - seq
            if newer >= KEPT_PICTURES and ("404" in reason or "within" in reason):
                reason = (
                    f"evicted: {newer} newer pictures were announced before it could be fetched "
                    f"(the camera keeps the {KEPT_PICTURES} latest; {reason})"
                )
            n = self.stats.inc("pictures_missing", name)
            log_counted(
                self._log, n, "warning", "picture missing", path=path, reason=reason, missing=n
            )
            return ImageRef(role, None, None, None, missing=reason, url=url)
        self.stats.inc("pictures_fetched", name)
        return Picture(role, data)


class Durable(Protocol):
    """Where an HTTP push's event must be kept before the push is answered (the store)."""

    @property
    def commit_timeout(self) -> float: ...

    def expect(self, event_id: str) -> asyncio.Future[None]: ...


class Intake:
    def __init__(
        self,
        *,
        bus: Bus,
        stats: Stats,
        cameras: Iterable[CameraConfig] = (),
        store: ImageStore | None = None,
        matcher: Matcher | None = None,
        health: Health | None = None,
        fetcher: PictureFetcher | None = None,
        save_workers: int = 4,
    ) -> None:
        """``store`` None: pictures are hashed, not saved (``lprmeta probe``)."""
        self.bus = bus
        self.stats = stats
        self.store = store
        self.matcher = matcher if matcher is not None else Matcher()
        self.health = health
        self._fetcher = fetcher
        self._cameras = {c.name: c for c in cameras}
        self._pictures: dict[str, CameraPictures] = {}
        # One save at a time per camera: a camera whose disk stalls holds one thread, never
        # all of them (its reads go out in order anyway); the others keep theirs.
        self._savers: Savers[tuple[Event, list[Picture]], list[ImageRef]] = Savers(
            self._save_all, workers=save_workers, name="save"
        )
        self._waiting: dict[str, int] = {}  # bytes of pictures waiting, per camera
        self._tails: dict[str, asyncio.Future[Event]] = {}
        # With a store: what an HTTP push waits for before its 200 (the event committed).
        self.durable: Durable | None = None
        self._awaited: set[str] = set()
        self._commits: dict[str, asyncio.Future[None]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._problem_cameras: set[str] = set()
        self._log = get_logger("lprmeta.intake")

    # ----------------------------------------------------------------- the way in

    def put(self, read: Read) -> None:
        """Hand over a read (TCP, RTSP: nobody waits for an answer)."""
        if not read.pictures and not read.picture_paths and read.event.camera not in self._tails:
            self._publish(read.event, read.weight)  # _start's fast path, without its future
            return
        self._start(read)

    async def submit(self, read: Read) -> Event:
        """Hand over a read and wait until its event is on the bus (HTTP answers then);
        with a store, until it is committed to the store or its spool too (raises
        StoreUnavailable when it could not be, within the store's commit timeout)."""
        durable = self.durable
        if durable is None:
            return await asyncio.shield(self._start(read))
        key = read.event.id
        self._awaited.add(key)
        try:
            event = await asyncio.shield(self._start(read))
            commit = self._commits.pop(key, None)
            if commit is not None:
                try:
                    async with asyncio.timeout(durable.commit_timeout):
                        await asyncio.shield(commit)
                except TimeoutError:
                    self.stats.inc("store_commit_timeouts", event.camera)
                    raise StoreUnavailable(
                        f"not committed to the store within {durable.commit_timeout:g} s"
                    ) from None
            return event
        finally:
            self._awaited.discard(key)
            self._commits.pop(key, None)

    def _start(self, read: Read) -> asyncio.Future[Event]:
        loop = asyncio.get_running_loop()
        camera = read.event.camera
        tail = self._tails.get(camera)
        done: asyncio.Future[Event] = loop.create_future()
        if not read.pictures and not read.picture_paths and tail is None:
            done.set_result(self._publish(read.event, read.weight))  # the common fast path
            return done
        self._tails[camera] = done
        task = loop.create_task(self._complete(read, tail, done, time.monotonic()))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return done

    # ----------------------------------------------------------------- pictures

    def pictures_for(self, camera: str) -> CameraPictures | None:
        pics = self._pictures.get(camera)
        if pics is None:
            cam = self._cameras.get(camera)
            if cam is None or (cam.rtsp or cam.onvif_events) is None or self._fetcher is None:
                return None
            pics = self._pictures[camera] = CameraPictures(cam, self._fetcher, self.stats)
        return pics

    async def _complete(
        self,
        read: Read,
        tail: asyncio.Future[Event] | None,
        done: asyncio.Future[Event],
        arrived: float,
    ) -> None:
        event = read.event
        images = list(event.images)
        unfetched = read.picture_paths
        unsaved = list(read.pictures)
        try:
            if unfetched:
                pics = self.pictures_for(event.camera)
                if pics is None:
                    images += _missing(unfetched, "no picture source for this camera")
                else:
                    fetched, missing = await pics.fetch_all(unfetched, arrived)
                    unsaved += fetched
                    images += missing
                unfetched = ()
            if unsaved:
                images += await self._save_in_turn(event, unsaved)
                unsaved = []
            if tail is not None:
                await asyncio.shield(tail)  # the camera's read before this one goes out first
        except asyncio.CancelledError:
            # Shutdown cut it short: the read goes out all the same, pictures marked.
            images += _missing(unfetched, "daemon stopped before it was fetched")
            images += _missing(_roles(unsaved), "daemon stopped before it was saved")
            self._finish(event, images, read.weight, done)
            raise
        except Exception as exc:  # noqa: BLE001  # a bug here must not lose the read
            self._log.exception("picture handling failed; the read goes out without them")
            images += _missing(unfetched, f"not fetched: {type(exc).__name__}")
            images += _missing(_roles(unsaved), f"not saved: {type(exc).__name__}")
        self._finish(event, images, read.weight, done)

    def _finish(
        self, event: Event, images: list[ImageRef], weight: int, done: asyncio.Future[Event]
    ) -> None:
        published = self._publish(replaced(event, images=tuple(images)), weight)
        if not done.done():
            done.set_result(published)
        if self._tails.get(event.camera) is done:
            del self._tails[event.camera]

    async def _save_in_turn(self, event: Event, pictures: list[Picture]) -> list[ImageRef]:
        """Save in a save thread, one save at a time per camera, at most
        MAX_WAITING_BYTES_PER_CAMERA of a camera's pictures waiting."""
        camera = event.camera
        size = sum(len(p.data) for p in pictures)
        waiting = self._waiting.get(camera, 0)
        if waiting and waiting + size > MAX_WAITING_BYTES_PER_CAMERA:
            n = self.stats.inc("pictures_unsaved", camera, len(pictures))
            reason = f"not saved: {waiting} bytes of this camera's pictures still wait for the disk"
            log_counted(
                self._log,
                n,
                "error",
                "picture saves far behind; pictures dropped",
                camera=camera,
                waiting=waiting,
                unsaved=n,
                added=len(pictures),
            )
            return _missing(_roles(pictures), reason)
        self._waiting[camera] = waiting + size
        try:
            refs = await self._savers.submit(camera, (event, pictures))
        finally:
            self._waiting[camera] -= size
        return self._count_saved(camera, refs)

    def _save_all(self, job: tuple[Event, list[Picture]]) -> list[ImageRef]:
        """In a save thread: write (or, without a store, only hash) each picture."""
        event, pictures = job
        if self.store is None:
            return [
                ImageRef(p.role, None, len(p.data), hashlib.sha256(p.data).hexdigest())
                for p in pictures
            ]
        return [self.store.save(event, p) for p in pictures]

    def _count_saved(self, camera: str, refs: list[ImageRef]) -> list[ImageRef]:
        unsaved = [r for r in refs if r.missing]
        if len(unsaved) < len(refs) and self.store is not None:
            self.stats.inc("pictures_saved", camera, len(refs) - len(unsaved))
        if unsaved:
            n = self.stats.inc("pictures_unsaved", camera, len(unsaved))
            log_counted(
                self._log,
                n,
                "error",
                "pictures could not be saved; events go out without them",
                camera=camera,
                reason=unsaved[-1].missing,
                unsaved=n,
                added=len(unsaved),
            )
        return refs

    # ----------------------------------------------------------------- the way out

    def _publish(self, event: Event, weight: int) -> Event:
        problems = event.details.get("problems")
        if problems:
            # A value the parser could not read: the read goes out with the problem named
            # in details.problems and the value kept raw. Counted; said once per camera.
            n = self.stats.inc("parse_problems", event.camera, len(problems))
            if event.camera not in self._problem_cameras:
                self._problem_cameras.add(event.camera)
                self._log.warning(
                    "camera sent values that could not be read; kept raw, events still go out",
                    camera=event.camera,
                    problems=problems[:5],
                    parse_problems=n,
                )
        return self.publish_finished(event, weight)

    def publish_finished(self, event: Event, weight: int = 0) -> Event:
        """An event whose pictures are done (here, or by a worker process of
        ``lprmeta run --workers``, which counted its problems): matched to the plate
        lists and put on the bus."""
        if event.plate and self.matcher.lists:
            event = replaced(event, matches=self.matcher.match(event.plate, event.camera))
        if self.health is not None:
            self.health.saw_event(event.camera, event.source._value_)
        out = self.bus.publish(event, weight=weight)
        if out is not None and self.durable is not None and event.id in self._awaited:
            self._commits[event.id] = self.durable.expect(out)
        return event

    # ----------------------------------------------------------------- shutdown

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def aclose(self, timeout: float = 2.0) -> None:
        """Let reads in flight finish (briefly), then cut them short: their events still go
        out, with the pictures marked missing. Then the save threads are let go."""
        if self._pending:
            _, late = await asyncio.wait(set(self._pending), timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        self._savers.close()


def _roles(pictures: Iterable[Picture]) -> list[tuple[str, str]]:
    return [(p.role, "") for p in pictures]


def _missing(paths: Iterable[tuple[str, str]], reason: str) -> list[ImageRef]:
    return [ImageRef(role, None, None, None, missing=reason) for role, _ in paths]
