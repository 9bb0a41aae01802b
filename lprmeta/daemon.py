"""The composition root: config -> intake, bus, sinks, inputs, all in one TaskGroup.

The only place that wires the parts together; owns their lifecycle and nothing
else. Inputs hand reads to the intake (:mod:`lprmeta.intake`), which puts events
on the bus; each input and sink reconnects itself (:mod:`lprmeta.retry`), and
every input, sink and background task runs under the supervisor
(:mod:`lprmeta.supervisor`), which contains what they did not expect. If the
whole cannot go on, :meth:`Daemon.run` returns 1 within seconds.

Shutdown order is what makes "nothing accepted is lost" true: (1) inputs stop
accepting and finish what they hold (an HTTP request in flight), (2) the intake
finishes the reads in flight (pictures being fetched or saved), (3) the bus
releases held events and ends every subscription after what is queued, (4)
sinks drain, within the shutdown budget (5 s by default, what SIGTERM promises).

Library use::

    async with lprmeta.Daemon(config) as d:
        async for event in d.events():
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
import time
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

from .bus import Bus, Subscription
from .config import CameraConfig, Config
from .envelope import Read
from .errors import ConfigError, ConfigProblem, SinkError, UsageError
from .events import Event
from .health import Health
from .intake import Intake
from .lists import Matcher, on_lists
from .lists_files import ListFiles
from .log import REDACTOR, get_logger, log_counted
from .metrics import MetricsServer
from .offload import Offload
from .sinks import HookSink, JsonlSink, Sink, WebhookSink, resolve_hook
from .snapshots import PictureFetcher
from .stats import Stats
from .storage import ImageStore
from .supervisor import Supervisor
from .watchdog import LoopWatchdog, sd_notify, systemd_watchdog_interval

__all__ = ["Daemon", "Input"]


class Input(Protocol):
    """One source of reads, an async context manager (aiomqtt's lifecycle): entering binds
    or prepares (and may raise: the daemon does not start); ``run`` runs until cancelled,
    under the supervisor; leaving finishes the work in flight (an HTTP request, ...)."""

    name: str

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def run(self) -> None: ...


def resolve_hooks(config: Config) -> list[tuple[str, Callable[[Event], Any]]]:
    """Import every configured hook; one ConfigError listing every hook that fails."""
    problems: list[ConfigProblem] = []
    out: list[tuple[str, Callable[[Event], Any]]] = []
    for i, hook in enumerate(config.hooks):
        try:
            out.append((hook.target, resolve_hook(hook.target, key=f"hooks[{i}].target")))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return out


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        stdout: BinaryIO | None = None,
        shutdown_timeout: float = 4.5,
        stats_interval: float = 300.0,
        systemd: bool = False,
        workers: int = 0,
    ) -> None:
        """``systemd``: speak sd_notify (READY, WATCHDOG pings from the loop, STOPPING)
        when the service manager asks for it (``lprmeta run`` does; an application that
        embeds the daemon keeps its own readiness). ``workers``: read the cameras that
        lprmeta connects to in that many worker processes (:mod:`lprmeta.workers`); 0
        reads them in this one."""
        if workers < 0:
            raise UsageError("workers must be 0 or more")
        self.config = config
        self.workers = workers
        self.stats = Stats()
        self.store = ImageStore(config.output.snapshot_dir)
        self.matcher = Matcher()
        self.health = Health(config.cameras)
        self.shutdown_timeout = shutdown_timeout
        self.stats_interval = stats_interval
        self._stdout = stdout
        self._bus: Bus | None = None
        self._inputs: list[Input] = []
        self._fetcher: PictureFetcher | None = None
        self._intake: Intake | None = None
        self._stop = asyncio.Event()
        self._metrics = (
            MetricsServer(
                config.metrics, health=self.health, stats=self.stats, stopping=self._stop.is_set
            )
            if config.metrics is not None
            else None
        )
        self.history: Any = None  # the StoreSink, with [store] (SQLAlchemy only then)
        self._api: Any = None
        self._started = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._api_subs = 0
        self._log = get_logger("lprmeta.daemon")
        REDACTOR.add(config.secrets())
        # Sink errors that mean "the output is gone" (stdout's reader left) end the daemon;
        # everything else a part raises is contained and the part restarted.
        self.supervisor = Supervisor(stats=self.stats, fatal=(SinkError,))
        self.health.supervisor = self.supervisor
        self._systemd = systemd
        self.watchdog = LoopWatchdog(
            stats=self.stats, notify_every=systemd_watchdog_interval() if systemd else None
        )
        self._problem_cameras: set[str] = set()
        self.offload = Offload()
        self._loop_errors_seen: dict[str, int] = {}

    # ----------------------------------------------------------------- public API

    @property
    def bus(self) -> Bus:
        if self._bus is None:
            raise UsageError("the daemon is not running; use `async with Daemon(...)`")
        return self._bus

    @property
    def inputs(self) -> list[Input]:
        return list(self._inputs)

    def input(self, name: str) -> Input:
        for inp in self._inputs:
            if inp.name == name:
                return inp
        raise KeyError(name)

    def events(self, *, maxsize: int = 10_000) -> Subscription:
        """A new subscription to every event from now on; iterate it with ``async for``."""
        self._api_subs += 1
        return self.bus.subscribe(f"api-{self._api_subs}", maxsize=maxsize)

    @property
    def intake(self) -> Intake:
        if self._intake is None:
            raise UsageError("the daemon is not running; use `async with Daemon(...)`")
        return self._intake

    def deliver(self, read: Read | Event) -> None:
        """Hand a read (or a finished event) to the intake: its pictures are completed and
        saved off the loop, its plate matched to the lists, and it goes on the bus."""
        self.intake.put(read if isinstance(read, Read) else Read(read))

    def stop(self) -> None:
        """Ask the daemon to shut down (safe to call from a signal handler)."""
        self._stop.set()

    async def __aenter__(self) -> Daemon:
        if self._runner is not None:
            raise UsageError("a Daemon can be entered once")
        hooks = resolve_hooks(self.config)
        self._lists = ListFiles(self.config.lists, self.matcher)
        self._lists.load_all()  # a list file that cannot be read is a ConfigError
        self._bus = Bus(
            dedup_window=self.config.bus.dedup_window,
            merge_wait=self.config.bus.merge_wait,
            transports={c.name: c.transports for c in self.config.cameras},
            stats=self.stats,
            queue_bytes=self.config.output.queue_bytes,
        )
        sinks: list[tuple[Sink, Subscription]] = []
        if self.config.output.stdout:
            sinks.append(
                (
                    JsonlSink(self._stdout, stats=self.stats),
                    self._bus.subscribe("stdout", maxsize=self.config.output.queue_size),
                )
            )
        for (target, fn), hook in zip(hooks, self.config.hooks, strict=True):
            sink = HookSink(fn, name=target, timeout=hook.timeout, stats=self.stats)
            sub = self._bus.subscribe(
                f"hook:{target}", maxsize=hook.queue_size, accept=on_lists(hook.only_lists)
            )
            sinks.append((sink, sub))
        for i, hook_cfg in enumerate(self.config.webhooks):
            webhook = WebhookSink(hook_cfg, index=i, stats=self.stats)
            sub = self._bus.subscribe(
                webhook.name, maxsize=hook_cfg.queue_size, accept=on_lists(hook_cfg.only_lists)
            )
            sinks.append((webhook, sub))
        if self.config.mqtt is not None:
            from .sinks.mqtt import MqttSink  # noqa: PLC0415  # aiomqtt only when configured

            mqtt = MqttSink(
                self.config.mqtt,
                cameras=[c.name for c in self.config.cameras],
                health=self.health,
                stats=self.stats,
                transports={c.name: c.transports for c in self.config.cameras},
            )
            mqtt.open()  # a spool that cannot be opened stops the start (ConfigError)
            sub = self._bus.subscribe(
                mqtt.name,
                maxsize=self.config.mqtt.buffer,
                accept=on_lists(self.config.mqtt.only_lists),
            )
            sinks.append((mqtt, sub))
        if self.config.store.enabled:
            from .store.sink import StoreSink  # noqa: PLC0415  # SQLAlchemy only when configured

            history = StoreSink(
                self.config.store,
                stats=self.stats,
                health=self.health,
                snapshot_root=self.config.output.snapshot_dir,
            )
            await history.aopen()  # a schema from a newer lprmeta stops the start
            self.history = history
            sub = self._bus.subscribe(
                history.name,
                maxsize=max(10_000, self.config.output.queue_size),
                on_drop=history.dropped,
            )
            sinks.append((history, sub))
            if self.config.api is not None:
                from .api import ApiServer  # noqa: PLC0415

                self._api = ApiServer(
                    self.config.api,
                    store=history,
                    health=self.health,
                    stats=self.stats,
                    lists=self._lists,
                    stopping=self._stop.is_set,
                )
        try:
            self._fetcher = PictureFetcher()
            await self._fetcher.__aenter__()
            self._intake = Intake(
                bus=self._bus,
                stats=self.stats,
                cameras=self.config.cameras,
                store=self.store,
                matcher=self.matcher,
                health=self.health,
                fetcher=self._fetcher,
            )
            self._intake.durable = self.history
            self._inputs = self._build_inputs()
        except BaseException:
            if self.history is not None:  # its writer thread and database connections
                await asyncio.to_thread(self.history.close)
            raise
        self._runner = asyncio.create_task(self._main(sinks), name="lprmeta-daemon")
        started = asyncio.create_task(self._started.wait())
        await asyncio.wait({started, self._runner}, return_when=asyncio.FIRST_COMPLETED)
        if self._runner.done():
            started.cancel()
            try:
                self._runner.result()
            except BaseExceptionGroup as group:  # the TaskGroup's: say what stopped start-up
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
            raise UsageError("the daemon stopped during start-up")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        if self._runner is not None:
            await self._runner

    async def run(self) -> int:
        """Run until :meth:`stop`, or until the whole cannot go on (a fatal sink error, a
        failure of the composition itself). Returns the process exit code: non-zero in
        the second case, within seconds, so that a service manager restarts it."""
        # Start-up problems propagate as they are: a bad configuration is exit 2 (not
        # restarted by systemd), a port in use a clear "cannot start".
        await self.__aenter__()
        assert self._runner is not None
        self._log.info(
            "lprmeta running",
            cameras=[c.name for c in self.config.cameras],
            inputs=[i.name for i in self._inputs],
        )
        stopping = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({stopping, self._runner}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if self._systemd:
                sd_notify("STOPPING=1")
        failures: tuple[BaseException, ...] = ()
        try:
            await self.__aexit__(None, None, None)
        except* Exception as group:  # noqa: BLE001  # whatever ended the whole: exit non-zero
            failures = group.exceptions
        for exc in failures:
            if isinstance(exc, SinkError):
                self._log.error("output failed; stopping", error=str(exc))
            else:
                self._log.error(
                    "lprmeta cannot go on; exiting so that it is restarted",
                    error=f"{type(exc).__name__}: {exc}",
                    exc_info=exc,
                )
        self._log.info("lprmeta stopped", **self._summary())
        return 1 if failures else 0

    # ----------------------------------------------------------------- internals

    def _build_inputs(self) -> list[Input]:
        from .inputs.http import HttpInput  # noqa: PLC0415  # inputs import the daemon's parts

        intake = self.intake
        inputs: list[Input] = []
        if self.config.http is not None:
            # Descriptors are kept for cameras, pictures, sinks and the store: the HTTP
            # connection cap never lets pushes take the ones a camera needs.
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            spare = soft - 128 - 16 * len(self.config.cameras)
            cap = max(16, min(self.config.http.max_connections, spare))
            inputs.append(
                HttpInput(
                    self.config,
                    submit=intake.submit,
                    stats=self.stats,
                    offload=self.offload,
                    max_connections=cap,
                )
            )
        if self.workers:
            from .log import logging_setup  # noqa: PLC0415
            from .workers import WorkerInput  # noqa: PLC0415

            return inputs + [
                WorkerInput(
                    i,
                    self.workers,
                    self.config,
                    publish=intake.publish_finished,
                    stats=self.stats,
                    health=self.health,
                    stop_budget=max(0.5, self.shutdown_timeout / 3 - 0.5),
                    log_setup=logging_setup(),
                )
                for i in range(self.workers)
            ]
        for cam in self.config.cameras:
            inputs += camera_inputs(
                cam, intake=intake, stats=self.stats, health=self.health, offload=self.offload
            )
        return inputs

    async def _main(self, sinks: list[tuple[Sink, Subscription]]) -> None:
        try:
            await self._supervise(sinks)
        finally:
            self.offload.close()
            if self._fetcher is not None:
                await self._fetcher.aclose()
            if self.history is not None:
                await asyncio.to_thread(self.history.close)

    async def _supervise(self, sinks: list[tuple[Sink, Subscription]]) -> None:
        sup = self.supervisor
        loop = asyncio.get_running_loop()
        previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        try:
            # Inputs' contexts outlive the TaskGroup: on the way out, their tasks end first.
            async with contextlib.AsyncExitStack() as opened, asyncio.TaskGroup() as tg:

                def part(name: str, kind: str, body: Any, camera: str = "*") -> asyncio.Task[None]:
                    p = sup.add(name, kind, camera)
                    return tg.create_task(sup.run(p, body), name=name)

                sink_tasks = [
                    part(f"sink:{sink.name}", "sink", _bind(self._run_sink, sink, sub))
                    for sink, sub in sinks
                ]
                try:
                    if self._metrics is not None:
                        await self._metrics.start()
                    if self._api is not None:
                        await self._api.start()
                    for inp in self._inputs:
                        await opened.enter_async_context(inp)
                except BaseException:
                    self.bus.close()
                    raise
                input_tasks = [
                    part(f"input:{inp.name}", "input", inp.run, _camera_of(inp))
                    for inp in self._inputs
                ]
                background = [
                    part("task:stats", "task", self._log_stats),
                    part("task:gc", "task", _settle_gc),
                    part("task:lists", "task", self._lists.watch),
                    part("task:watchdog", "task", self.watchdog.run),
                ]
                if self.history is not None:
                    background.append(part("task:retention", "task", self.history.retention_loop))
                else:  # no store: the snapshot directory obeys the same keep_days and budget
                    from .snapshot_retention import SnapshotRetention  # noqa: PLC0415

                    store_cfg = self.config.store
                    tidy = SnapshotRetention(
                        self.config.output.snapshot_dir,
                        keep_days=store_cfg.keep_days,
                        max_bytes=store_cfg.max_pictures_bytes,
                        stats=self.stats,
                        interval=store_cfg.retention_interval,
                    )
                    background.append(part("task:retention", "task", tidy.run))
                self._started.set()
                if self._systemd:  # before the watchdog's first ping: nothing ran in between
                    sd_notify("READY=1")
                await self._stop.wait()
                deadline = time.monotonic() + self.shutdown_timeout
                for task in (*background, *input_tasks):
                    task.cancel()
                if input_tasks:
                    _, stuck = await asyncio.wait(input_tasks, timeout=self.shutdown_timeout / 3)
                    for task in stuck:
                        self._log.error("input did not stop when asked", input=task.get_name())
                await self._close_inputs(opened, deadline)
                # Reads in flight (pictures being fetched or saved) reach the bus first.
                await self.intake.aclose(
                    timeout=max(0.1, min(2.0, deadline - time.monotonic() - 1.5))
                )
                self.bus.close()
                if self._metrics is not None:
                    await self._metrics.aclose()
                if self._api is not None:
                    await self._api.aclose()
                remaining = max(0.1, deadline - time.monotonic())
                _, pending = (
                    await asyncio.wait(sink_tasks, timeout=remaining) if sink_tasks else ((), ())
                )
                for task in pending:
                    self._log.error("sink did not drain in time; cancelled", sink=task.get_name())
                    task.cancel()
        finally:
            loop.set_exception_handler(previous_handler)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """What asyncio reports outside any task (a callback that raised, accept() out of
        descriptors): counted, and logged once per kind of message, not once per time."""
        message = str(context.get("message", "unhandled error in the event loop"))
        exc = context.get("exception")
        key = f"{message}:{type(exc).__name__}" if exc is not None else message
        n = self.stats.inc("loop_errors")
        seen = self._loop_errors_seen.get(key, 0) + 1
        self._loop_errors_seen[key] = seen
        log_counted(
            self._log,
            seen,
            "error",
            "event loop error",
            message=message,
            error=f"{type(exc).__name__}: {exc}" if exc is not None else None,
            times=seen,
            loop_errors=n,
            step=1000,
        )

    async def _close_inputs(self, opened: contextlib.AsyncExitStack, deadline: float) -> None:
        """Leave every input's context (their work in flight finishes), within the budget."""
        try:
            async with asyncio.timeout(max(0.1, deadline - time.monotonic() - 1.0)):
                await opened.aclose()
        except TimeoutError:
            self._log.error("inputs did not finish their work in flight in time")
        except Exception as exc:  # noqa: BLE001  # closing one must not stop the shutdown
            self._log.error("input failed to close", error=f"{type(exc).__name__}: {exc}")

    async def _run_sink(self, sink: Sink, sub: Subscription) -> None:
        """One run of a sink over its subscription. What it raises goes to the supervisor,
        which restarts it on the same queue (nothing queued is lost); a SinkError (the
        output is gone for good) stops the daemon."""
        try:
            await sink.run(sub)
        except SinkError:
            self.stop()
            raise

    def _summary(self) -> dict[str, Any]:
        snap = self.stats.snapshot()
        return {
            "received": self.stats.total("received"),
            "emitted": self.stats.total("emitted"),
            "counters": snap,
        }

    async def _log_stats(self) -> None:
        last: dict[str, dict[str, int]] = {}
        while True:
            await asyncio.sleep(self.stats_interval)
            snap = self.stats.snapshot()
            if snap != last:
                self._log.info("counters", counters=snap)
                last = snap


def camera_inputs(
    cam: CameraConfig,
    *,
    intake: Intake,
    stats: Stats,
    health: Health | None = None,
    offload: Offload | None = None,
) -> list[Input]:
    """The inputs that connect to one camera (TCP, RTSP, ONVIF events), handing their
    reads to ``intake``: how ``run`` builds them, and ``probe`` too."""
    from .inputs.pullpoint import PullPointInput  # noqa: PLC0415
    from .inputs.rtsp import RtspInput  # noqa: PLC0415
    from .inputs.tcp import TcpInput  # noqa: PLC0415  # inputs import the daemon's parts

    out: list[Input] = []
    if cam.tcp is not None:
        out.append(TcpInput(cam, deliver=intake.put, stats=stats, health=health, offload=offload))
    if cam.rtsp is not None:
        features = list(cam.tcp.register or ()) if cam.tcp is not None else []
        out.append(
            RtspInput(cam, deliver=intake.put, stats=stats, features=features, health=health)
        )
    if cam.onvif_events is not None:
        out.append(PullPointInput(cam, deliver=intake.put, stats=stats, health=health))
    return out


def _bind(fn: Any, *args: Any) -> Any:
    async def bound() -> None:
        await fn(*args)

    return bound


def _camera_of(inp: Input) -> str:
    camera = getattr(inp, "camera", None)
    return str(getattr(camera, "name", "*"))


def raise_descriptor_limit(want: int = 65_536) -> int:
    """Raise the soft descriptor limit towards the hard one (cameras, pictures and HTTP
    connections each take one); returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return int(soft)


async def _settle_gc() -> None:
    """Keep the cyclic GC off what start-up built (for cameras with ONVIF, zeep's WSDL
    object graph: a full collection over it took ~15 ms here, a pause in every event's
    path). Events are short-lived garbage, so the youngest generation is collected less
    often too. Frozen now, and again once cameras have been identified."""
    gc.set_threshold(10_000, 20, 20)
    gc.freeze()
    await asyncio.sleep(60)
    gc.freeze()


async def run_daemon(config: Config, *, workers: int = 0) -> int:
    """Run a daemon with SIGINT/SIGTERM wired to a graceful stop."""
    import signal  # noqa: PLC0415  # only the CLI path needs it

    raise_descriptor_limit()
    daemon = Daemon(config, systemd=True, workers=workers)
    loop = asyncio.get_running_loop()
    signals_seen = 0

    def on_signal(signame: str) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            daemon._log.info("stopping", signal=signame)
            daemon.stop()
        else:
            daemon._log.warning("second signal; exiting now", signal=signame)
            raise SystemExit(130)

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal, sig.name)
    return await daemon.run()
