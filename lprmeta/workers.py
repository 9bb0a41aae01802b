"""Cameras spread over worker processes: ``lprmeta run --workers N`` (issue 17, item 4).

One process reads about 380 cameras at one read a second with pictures on one core
of this machine (``bench/scale_bench.py``); the rest of the per-event path (the bus,
the sinks, the store, the API) is a small share of it. So the work that grows with
cameras, and only that, moves to N worker processes:

* **a worker** (``python -m lprmeta.workers``) runs the TCP, RTSP and ONVIF-event
  inputs of its share of the cameras (cameras dealt round-robin in configuration
  order) and their intake: parsing, picture fetching, hashing and saving (to the
  one snapshot directory). Each finished event goes to the primary over the
  worker's stdout, framed (4-byte length, then a pickle: the worker is this
  program's own child, nothing else writes that pipe), with the worker's counters,
  supervised parts and transport states once a second;
* **the primary** (the process the user started) keeps everything there is one of:
  the HTTP port (pushing cameras), the plate lists, the bus (duplicates and the
  merge of a camera's transports, as without workers), every sink (one stdout
  stream), the store, the API and web page, ``/healthz`` and ``/metrics`` (the
  workers' counters, parts and camera states merged in).

Containment: a worker is one supervised part of the primary (``input:worker:K``).
If it exits, or says nothing for :data:`SILENCE` seconds (its loop stuck), it is
killed if need be, its cameras are marked down (``worker-exited``), its counters are
kept, and it is started again with the supervisor's backoff; the other workers and
the primary go on. A worker whose primary is gone (its pipe closed) stops.

Shutdown: the primary asks each worker to stop (SIGTERM); the worker stops its
inputs, lets the reads in flight finish briefly (pictures being fetched or saved go
out marked, as without workers), sends what it has and exits; the primary reads
until the pipe ends, then its bus and sinks drain as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import struct
import sys
import time
from collections.abc import Callable
from typing import Any, Final

from .config import CameraConfig, Config
from .events import Event
from .health import Health
from .log import get_logger, log_counted
from .stats import Stats

__all__ = ["SILENCE", "WorkerExited", "WorkerInput", "assign", "pulled"]

FRAME: Final = struct.Struct("!I")
MAX_FRAME: Final = 64 * 1024 * 1024  # an event is bounded far below (raw <= 256 KiB)
STATE_EVERY: Final = 1.0  # seconds between a worker's state messages
SILENCE: Final = 15.0  # a worker silent this long is stuck: killed and restarted
# Bytes of frames a worker may hold while the primary does not read (a stalled
# primary); past it, events are dropped, counted and logged, never held unbounded.
MAX_UNSENT: Final = 256 * 1024 * 1024
PULLED: Final = ("tcp", "rtsp", "onvif")


class WorkerExited(Exception):
    """A worker process ended (or was ended) while the primary still needed it."""


def pulled(cam: CameraConfig) -> bool:
    """Whether lprmeta connects to this camera (TCP, RTSP, ONVIF events): the inputs a
    worker runs. A push-only (HTTP) camera has nothing to spread."""
    return cam.tcp is not None or cam.rtsp is not None or cam.onvif_events is not None


def assign(cameras: tuple[CameraConfig, ...], workers: int) -> list[list[CameraConfig]]:
    """The cameras each of ``workers`` processes reads: dealt round-robin, in order."""
    out: list[list[CameraConfig]] = [[] for _ in range(workers)]
    for i, cam in enumerate(c for c in cameras if pulled(c)):
        out[i % workers].append(cam)
    return out


# ----------------------------------------------------------------------------- primary


class WorkerInput:
    """The primary's side of one worker: starts it, reads what it sends, restarts it
    (under the supervisor, like any input) when it ends."""

    camera = None

    def __init__(
        self,
        index: int,
        count: int,
        config: Config,
        *,
        publish: Callable[[Event, int], Any],
        stats: Stats,
        health: Health,
        stop_budget: float = 1.2,
        log_setup: tuple[str, str] = ("json", "info"),
    ) -> None:
        self.index = index
        self.count = count
        self.name = f"worker:{index + 1}"
        self.config = config
        self.cameras = assign(config.cameras, count)[index]
        self._publish = publish
        self.stats = stats
        self.health = health
        self.stop_budget = stop_budget
        self.log_setup = log_setup
        self.proc: asyncio.subprocess.Process | None = None
        self.started = 0  # processes started so far
        self.ready = asyncio.Event()  # the current process has said its first state
        self._log = get_logger("lprmeta.workers", worker=self.name)

    async def __aenter__(self) -> WorkerInput:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._kill()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def run(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "lprmeta.workers",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches the primary; it stops the workers
        )
        self.proc = proc
        self.started += 1
        self.ready.clear()
        assert proc.stdin is not None
        assert proc.stdout is not None
        start = (self.config, self.index, self.count, self.stop_budget, self.log_setup)
        proc.stdin.write(pickle.dumps(start, protocol=pickle.HIGHEST_PROTOCOL))
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()
        proc.stdin.close()
        self._log.info("worker started", pid=proc.pid, cameras=len(self.cameras))
        reader = proc.stdout
        try:
            while True:
                try:
                    async with asyncio.timeout(SILENCE):
                        message = await _read_frame(reader)
                except TimeoutError:
                    raise WorkerExited(
                        f"{self.name} said nothing for {SILENCE:g} s; killed"
                    ) from None
                if message is None:
                    code = await proc.wait()
                    raise WorkerExited(f"{self.name} exited with code {code}")
                self._handle(message)
        except asyncio.CancelledError:
            await self._drain(proc, reader)
            raise
        finally:
            await self._kill()
            self._worker_gone()

    async def _drain(self, proc: asyncio.subprocess.Process, reader: asyncio.StreamReader) -> None:
        """Shutdown: ask the worker to stop and take what it still sends, within budget."""
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(self.stop_budget + 0.5):
                while (message := await _read_frame(reader)) is not None:
                    self._handle(message)
        except (TimeoutError, WorkerExited) as exc:
            self._log.error("worker did not stop in time; killed", error=str(exc))

    async def _kill(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await proc.wait()

    def _worker_gone(self) -> None:
        """Its counters stay counted; its cameras are down until the next one says."""
        self.ready.clear()
        self.stats.retire(self.name)
        self.health.forget_remote(self.name)
        for cam in self.cameras:
            for transport in cam.transports & set(PULLED):
                self.health.set(cam.name, transport, "down:worker-exited")

    def _handle(self, message: tuple[Any, ...]) -> None:
        what = message[0]
        if what == "e":
            _, event, weight = message
            self._publish(event, weight)
        elif what == "t":
            _, camera, transport, state = message
            self.health.set(camera, transport, state)
        elif what == "i":
            _, camera, info = message
            self.health.identify(camera, **info)
        elif what == "s":
            _, counters, parts, transports = message
            self.stats.absorb(self.name, counters)
            self.health.absorb_remote(self.name, parts)
            for camera, states in transports.items():
                for transport, state in states.items():
                    self.health.set(camera, transport, state)
            self.ready.set()


async def _read_frame(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """One message, or None at the end of the pipe."""
    try:
        head = await reader.readexactly(FRAME.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise WorkerExited("worker pipe ended inside a frame") from None
        return None
    (size,) = FRAME.unpack(head)
    if size > MAX_FRAME:
        raise WorkerExited(f"worker sent a frame of {size} bytes (limit {MAX_FRAME})")
    try:
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise WorkerExited("worker pipe ended inside a frame") from None
    message = pickle.loads(body)  # noqa: S301  # our own child process, over its own pipe
    if not isinstance(message, tuple) or not message:
        raise WorkerExited(f"worker sent {type(message).__name__}, not a message")
    return message


# ----------------------------------------------------------------------------- worker


class _Uplink:
    """The worker's side of the pipe, as the intake's bus: ``publish`` frames an event.
    Never blocks: frames wait in the pipe transport's buffer (up to MAX_UNSENT)."""

    def __init__(self, transport: asyncio.WriteTransport, stats: Stats) -> None:
        self.transport = transport
        self.stats = stats
        self._log = get_logger("lprmeta.workers")

    def send(self, message: tuple[Any, ...]) -> None:
        if self.transport.is_closing():
            return  # the primary is gone: the worker is stopping
        body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.transport.write(FRAME.pack(len(body)) + body)

    def publish(self, event: Event, *, weight: int = 0) -> str | None:
        if self.transport.get_write_buffer_size() > MAX_UNSENT:
            n = self.stats.inc("dropped:worker-pipe", event.camera)
            log_counted(
                self._log,
                n,
                "error",
                "primary not reading; event dropped",
                camera=event.camera,
                id=event.id,
                dropped=n,
                step=1000,
            )
            return None
        self.send(("e", event, weight))
        return event.id

    async def flush(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.transport.get_write_buffer_size() and time.monotonic() < deadline:  # noqa: ASYNC110  # a transport has no "buffer empty" event
            await asyncio.sleep(0.01)


class _PipeGone(asyncio.Protocol):
    def __init__(self) -> None:
        self.lost = asyncio.Event()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set()


async def serve(config: Config, index: int, count: int, out_fd: int, stop_budget: float) -> int:
    """A worker's whole life: its cameras' inputs and intake, until SIGTERM or the
    primary's pipe closes."""
    from .daemon import camera_inputs  # noqa: PLC0415  # the daemon imports this module
    from .intake import Intake  # noqa: PLC0415
    from .lists import Matcher  # noqa: PLC0415
    from .offload import Offload  # noqa: PLC0415
    from .snapshots import PictureFetcher  # noqa: PLC0415
    from .storage import ImageStore  # noqa: PLC0415
    from .supervisor import Supervisor  # noqa: PLC0415
    from .watchdog import LoopWatchdog  # noqa: PLC0415

    cameras = assign(config.cameras, count)[index]
    loop = asyncio.get_running_loop()
    pipe = _PipeGone()
    transport, _ = await loop.connect_write_pipe(lambda: pipe, os.fdopen(out_fd, "wb", 0))
    stats = Stats()
    uplink = _Uplink(transport, stats)
    health = Health(cameras)
    health.on_transport_change(lambda cam, t: uplink.send(("t", cam, t, _state(health, cam, t))))
    health.on_identity(lambda cam: uplink.send(("i", cam, dict(health.devices.get(cam, {})))))
    supervisor = Supervisor(stats=stats)
    offload = Offload()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log = get_logger("lprmeta.workers")

    def state() -> tuple[Any, ...]:
        return (
            "s",
            stats.snapshot(),
            {n: p.to_json() for n, p in supervisor.parts.items()},
            {  # the transports this worker reads; a camera's HTTP is the primary's
                cam.name: {
                    t: _state(health, cam.name, t)
                    for t in health.transports[cam.name]
                    if t in PULLED
                }
                for cam in cameras
            },
        )

    async def report() -> None:
        while True:
            uplink.send(state())
            await asyncio.sleep(STATE_EVERY)

    async with PictureFetcher() as fetcher:
        intake = Intake(
            bus=uplink,  # type: ignore[arg-type]  # duck-typed: publish(event, weight=)
            stats=stats,
            cameras=cameras,
            store=ImageStore(config.output.snapshot_dir),
            matcher=Matcher(),  # lists are matched by the primary
            fetcher=fetcher,
        )
        inputs = [
            inp
            for cam in cameras
            for inp in camera_inputs(
                cam, intake=intake, stats=stats, health=health, offload=offload
            )
        ]
        watchdog = LoopWatchdog(stats=stats)
        async with contextlib.AsyncExitStack() as opened, asyncio.TaskGroup() as tg:
            for inp in inputs:
                await opened.enter_async_context(inp)
            tasks = []
            for inp in inputs:
                camera = str(getattr(getattr(inp, "camera", None), "name", "*"))
                part = supervisor.add(f"input:{inp.name}", "input", camera)
                tasks.append(tg.create_task(supervisor.run(part, inp.run)))
            for name, body in (("task:watchdog", watchdog.run), ("task:report", report)):
                tasks.append(tg.create_task(supervisor.run(supervisor.add(name, "task"), body)))
            log.info("worker running", cameras=[c.name for c in cameras], pid=os.getpid())
            stopping = asyncio.ensure_future(stop.wait())
            gone = asyncio.ensure_future(pipe.lost.wait())
            await asyncio.wait({stopping, gone}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            gone.cancel()
            deadline = time.monotonic() + stop_budget
            for task in tasks:
                task.cancel()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.1, stop_budget / 3)):
                    await opened.aclose()
            await intake.aclose(timeout=max(0.1, deadline - time.monotonic() - 0.3))
        offload.close()
    uplink.send(state())
    await uplink.flush(max(0.1, deadline - time.monotonic()))
    transport.close()
    return 0


def _state(health: Health, camera: str, transport: str) -> str:
    s = health.transports[camera][transport]
    return f"{s.state}:{s.reason}" if s.reason else s.state


def main() -> int:
    """``python -m lprmeta.workers``: started by the primary, never by hand. Its start
    message comes pickled on stdin; frames go out on the stdout it was given, and
    anything else that would print to stdout goes to stderr instead."""
    from .log import REDACTOR, configure_logging  # noqa: PLC0415

    out_fd = os.dup(1)
    os.dup2(2, 1)
    start = pickle.load(sys.stdin.buffer)  # noqa: S301  # from our own primary
    config, index, count, stop_budget, (fmt, level) = start
    configure_logging(fmt=fmt, level=level)
    REDACTOR.add(config.secrets())
    import structlog  # noqa: PLC0415

    structlog.contextvars.bind_contextvars(worker=f"worker:{index + 1}")
    try:
        return asyncio.run(serve(config, index, count, out_fd, stop_budget))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
