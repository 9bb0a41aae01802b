"""The composition root: config -> bus, sinks, inputs, all in one TaskGroup.

Owns the lifecycle and nothing else; each input owns its own reconnects, each
sink its own failures. Shutdown order is what makes "nothing accepted is lost"
true: (1) inputs stop accepting and finish what they hold (an HTTP request in
flight, a picture being fetched), (2) the bus releases held events and ends
every subscription after what is queued, (3) sinks drain, within the shutdown
budget (5 s by default, what SIGTERM promises).

Library use::

    async with lprmeta.Daemon(config) as d:
        async for event in d.events():
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, BinaryIO, Protocol

from .bus import Bus, Subscription
from .config import Config
from .errors import ConfigError, ConfigProblem, SinkError, UsageError
from .events import Event
from .health import Health
from .lists import Matcher, on_lists
from .lists_files import ListFiles
from .log import REDACTOR, get_logger
from .metrics import MetricsServer
from .sinks import HookSink, JsonlSink, Sink, WebhookSink, resolve_hook
from .snapshots import PictureFetcher
from .stats import Stats
from .storage import ImageStore

__all__ = ["Daemon", "Input"]


class Input(Protocol):
    """One source of events. ``start`` binds or prepares (and may raise); ``run`` runs until
    cancelled and never raises for what a camera does; ``aclose`` finishes in-flight work."""

    name: str

    async def start(self) -> None: ...

    async def run(self) -> None: ...

    async def aclose(self) -> None: ...


Deliver = Callable[[Event], None]


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
    ) -> None:
        self.config = config
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
        self._stop = asyncio.Event()
        self._metrics = (
            MetricsServer(
                config.metrics, health=self.health, stats=self.stats, stopping=self._stop.is_set
            )
            if config.metrics is not None
            else None
        )
        self._started = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._api_subs = 0
        self._log = get_logger("lprmeta.daemon")
        REDACTOR.add(config.secrets())

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

    def deliver(self, event: Event) -> None:
        """Save the event's in-payload pictures, mark the lists its plate is on, then
        publish it. What inputs call."""
        if event.plate and self.matcher.lists:
            event = replace(event, matches=self.matcher.match(event.plate))
        saved = self.store.attach(event)
        self.health.saw_event(event.camera, event.source.value)
        if event.pictures:
            unsaved = sum(1 for ref in saved.images[-len(event.pictures) :] if ref.missing)
            if unsaved < len(event.pictures):
                self.stats.inc("pictures_saved", event.camera, len(event.pictures) - unsaved)
            if unsaved:
                n = self.stats.inc("pictures_unsaved", event.camera, unsaved)
                if n == unsaved or n % 100 < unsaved:  # the first time, then now and then
                    self._log.error(
                        "pictures could not be saved; events go out without them",
                        camera=event.camera,
                        reason=saved.images[-1].missing,
                        unsaved=n,
                    )
        self.bus.publish(saved)

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
            )
            mqtt.open()  # a spool that cannot be opened stops the start (ConfigError)
            sub = self._bus.subscribe(
                mqtt.name,
                maxsize=self.config.mqtt.buffer,
                accept=on_lists(self.config.mqtt.only_lists),
            )
            sinks.append((mqtt, sub))
        self._fetcher = PictureFetcher()
        await self._fetcher.__aenter__()
        self._inputs = self._build_inputs()
        self._runner = asyncio.create_task(self._main(sinks), name="lprmeta-daemon")
        started = asyncio.create_task(self._started.wait())
        await asyncio.wait({started, self._runner}, return_when=asyncio.FIRST_COMPLETED)
        if self._runner.done():
            started.cancel()
            self._runner.result()  # raises what stopped start-up
            raise UsageError("the daemon stopped during start-up")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        if self._runner is not None:
            await self._runner

    async def run(self) -> int:
        """Run until :meth:`stop` (or a fatal sink error). Returns the process exit code."""
        failures: tuple[BaseException, ...] = ()
        try:
            async with self:
                self._log.info(
                    "lprmeta running",
                    cameras=[c.name for c in self.config.cameras],
                    inputs=[i.name for i in self._inputs],
                )
                await self._stop.wait()
        except* SinkError as group:
            failures = group.exceptions
        for exc in failures:
            self._log.error("output failed; stopping", error=str(exc))
        self._log.info("lprmeta stopped", **self._summary())
        return 1 if failures else 0

    # ----------------------------------------------------------------- internals

    def _build_inputs(self) -> list[Input]:
        from .inputs.http import HttpInput  # noqa: PLC0415
        from .inputs.rtsp import RtspInput  # noqa: PLC0415
        from .inputs.tcp import TcpInput  # noqa: PLC0415  # inputs import the daemon's parts

        assert self._fetcher is not None
        inputs: list[Input] = []
        if self.config.http is not None:
            inputs.append(HttpInput(self.config, deliver=self.deliver, stats=self.stats))
        for cam in self.config.cameras:
            if cam.tcp is not None:
                inputs.append(
                    TcpInput(cam, deliver=self.deliver, stats=self.stats, health=self.health)
                )
            if cam.rtsp is not None:
                features = list(cam.tcp.register or ()) if cam.tcp is not None else []
                inputs.append(
                    RtspInput(
                        cam,
                        deliver=self.deliver,
                        stats=self.stats,
                        fetcher=self._fetcher,
                        features=features,
                        health=self.health,
                    )
                )
        return inputs

    async def _main(self, sinks: list[tuple[Sink, Subscription]]) -> None:
        try:
            await self._supervise(sinks)
        finally:
            if self._fetcher is not None:
                await self._fetcher.aclose()

    async def _supervise(self, sinks: list[tuple[Sink, Subscription]]) -> None:
        async with asyncio.TaskGroup() as tg:
            sink_tasks = [
                tg.create_task(self._run_sink(sink, sub), name=f"sink:{sink.name}")
                for sink, sub in sinks
            ]
            try:
                if self._metrics is not None:
                    await self._metrics.start()
                for inp in self._inputs:
                    await inp.start()
            except BaseException:
                self.bus.close()
                raise
            input_tasks = [
                tg.create_task(inp.run(), name=f"input:{inp.name}") for inp in self._inputs
            ]
            stats_task = tg.create_task(self._log_stats(), name="stats")
            gc_task = tg.create_task(_settle_gc(), name="gc")
            lists_task = tg.create_task(self._lists.watch(), name="lists")
            self._started.set()
            await self._stop.wait()
            deadline = time.monotonic() + self.shutdown_timeout
            stats_task.cancel()
            gc_task.cancel()
            lists_task.cancel()
            for task in input_tasks:
                task.cancel()
            if input_tasks:
                _, stuck = await asyncio.wait(input_tasks, timeout=self.shutdown_timeout / 3)
                for task in stuck:
                    self._log.error("input did not stop when asked", input=task.get_name())
            await self._close_inputs(deadline)
            self.bus.close()
            if self._metrics is not None:
                await self._metrics.aclose()
            remaining = max(0.1, deadline - time.monotonic())
            _, pending = (
                await asyncio.wait(sink_tasks, timeout=remaining) if sink_tasks else ((), ())
            )
            for task in pending:
                self._log.error("sink did not drain in time; cancelled", sink=task.get_name())
                task.cancel()

    async def _close_inputs(self, deadline: float) -> None:
        closers = [asyncio.create_task(inp.aclose()) for inp in self._inputs]
        if not closers:
            return
        _, pending = await asyncio.wait(
            closers, timeout=max(0.1, deadline - time.monotonic() - 1.0)
        )
        for task in pending:
            task.cancel()
        for task in closers:
            if task.done() and not task.cancelled() and task.exception() is not None:
                self._log.error("input failed to close", error=task.exception())

    async def _run_sink(self, sink: Sink, sub: Subscription) -> None:
        try:
            await sink.run(sub)
        except SinkError:
            self.stop()
            raise
        except Exception as exc:  # noqa: BLE001  # isolate a buggy sink
            # A sink bug must not take the others down; what it had queued is lost: say so.
            lost = sub.qsize()
            self.stats.inc(f"dropped:{sub.name}", n=lost)
            self._log.exception("sink failed", sink=sink.name, error=exc, lost=lost)
            sub.close()

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


async def _settle_gc() -> None:
    """Keep the cyclic GC off what start-up built (for cameras with ONVIF, zeep's WSDL
    object graph: a full collection over it took ~15 ms here, a pause in every event's
    path). Events are short-lived garbage, so the youngest generation is collected less
    often too. Frozen now, and again once cameras have been identified."""
    gc.set_threshold(10_000, 20, 20)
    gc.freeze()
    await asyncio.sleep(60)
    gc.freeze()


async def run_daemon(config: Config) -> int:
    """Run a daemon with SIGINT/SIGTERM wired to a graceful stop."""
    import signal  # noqa: PLC0415  # only the CLI path needs it

    daemon = Daemon(config)
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
