"""MQTT: each event as JSON to ``<prefix>/<camera>/<kind>``, with availability topics.

Topics (``prefix`` defaults to ``lprmeta``)::

    <prefix>/<camera>/<kind>             the event's JSON line (qos, retain as configured)
    <prefix>/<camera>/<kind>/<role>      with pictures = "binary": each saved JPEG, sent
                                         just before its event
    <prefix>/<camera>/status             "online" / "offline", retained: the camera's
                                         transports that lprmeta connects to are all up
    <prefix>/_daemon/<client_id>/status  "online" / "offline", retained, and the
                                         broker's last will: this daemon is running

A camera's retained status cannot say when the daemon that wrote it died (a
last will covers one topic), so a consumer takes both: Home Assistant's
``availability_mode: all``. Several daemons, each with its own cameras and
``client_id``, can share a broker; camera names must then be unique across them.

While the broker is away, events wait in the sink's queue (``buffer`` events;
what does not fit is dropped and counted as ``dropped:mqtt``), or with
``spool`` in a file that also survives a restart of the daemon. They go out in
order once a broker (``host``, then each ``failover`` in turn) takes a
connection again. An event is acknowledged (QoS 1 or 2) before the next is sent;
one that was in flight when the connection broke is sent again (at least once).
Counted per camera: ``mqtt_sent``; at shutdown, what could not be sent is
counted as ``mqtt_unsent`` (or left in the spool for the next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import ssl
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiomqtt
import orjson

from ..bus import Subscription
from ..config import MqttConfig
from ..errors import ConfigError, ConfigProblem
from ..events import Event
from ..health import Health
from ..log import get_logger, log_counted
from ..retry import Backoff, Outcome, StateLog, reconnect
from ..stats import Stats
from .ha import Discovery
from .jsonl import encode_line
from .spool import Spool

_T = TypeVar("_T")

__all__ = ["MqttSink", "default_client_id"]

ONLINE = b"online"
OFFLINE = b"offline"
MAX_PICTURE = 32 * 1024 * 1024
DISCOVERY_LISTEN = 2.0  # seconds at most to learn the discovery configs published before


def default_client_id() -> str:
    host = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in socket.gethostname())
    return f"lprmeta-{host or 'host'}"


@dataclass(frozen=True, slots=True)
class _Item:
    camera: str
    kind: str
    line: bytes
    pictures: tuple[tuple[str, str], ...]  # (role, path) of each saved picture


def _item_of_event(event: Event) -> _Item:
    pictures = tuple((i.role, i.path) for i in event.images if i.path is not None)
    return _Item(event.camera, event.kind.value, encode_line(event), pictures)


def _item_of_line(line: bytes) -> _Item:
    data = orjson.loads(line)
    images = data.get("images") or []
    pictures = tuple(
        (str(i["role"]), str(i["path"])) for i in images if isinstance(i, dict) and i.get("path")
    )
    return _Item(str(data["camera"]), str(data["kind"]), line, pictures)


class _Ended(Exception):
    """The bus has closed and everything queued has been sent."""


class _MemoryBacklog:
    """The bus subscription is the buffer; ``peek`` holds one event until ``ack``."""

    def __init__(self, sub: Subscription) -> None:
        self._sub = sub
        self._head: _Item | None = None

    async def peek(self) -> _Item:
        if self._head is None:
            event = self._sub.get_nowait()
            if event is None:
                event = await self._sub.get()
            if event is None:
                raise _Ended
            self._head = _item_of_event(event)
        return self._head

    def ready(self) -> bool:
        return self._head is not None or self._sub.qsize() > 0

    def ack(self) -> None:
        self._head = None

    def left(self) -> int:
        return self._sub.qsize() + (self._head is not None)


class _SpoolBacklog:
    """A feeder moves events from the subscription to the spool file as they come.

    Every touch of the file (append, peek, ack) runs on one thread of its own, in the
    order it was asked for: a disk that stalls stalls the MQTT backlog, never the
    event loop (and so never a camera). Events that queued meanwhile are appended in
    one go."""

    BATCH = 256  # events appended in one trip to the spool's thread at most

    def __init__(self, spool: Spool, sub: Subscription, stats: Stats, name: str) -> None:
        self._spool = spool
        self._sub = sub
        self._stats = stats
        self._name = name
        self._more = asyncio.Event()
        self._fed_all = False
        self._disk = ThreadPoolExecutor(1, thread_name_prefix="lprmeta-mqtt-spool")
        self._log = get_logger("lprmeta.sinks.mqtt")

    async def _on_disk(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._disk, fn, *args)

    def _append_all(self, lines: list[bytes]) -> list[str | None]:
        """Each line appended, or why not (the spool's thread)."""
        out: list[str | None] = []
        for line in lines:
            try:
                kept = self._spool.append(line)
                out.append(None if kept else "MQTT spool full, event dropped")
            except OSError as exc:  # disk full, I/O error: this event is lost, say so
                out.append(f"MQTT spool cannot be written ({exc.strerror}), event dropped")
        return out

    async def feed(self) -> None:
        try:
            while True:
                event = self._sub.get_nowait()
                if event is None:
                    event = await self._sub.get()
                if event is None:
                    break
                events = [event]
                while len(events) < self.BATCH and (more := self._sub.get_nowait()) is not None:
                    events.append(more)
                refused = await self._on_disk(self._append_all, [encode_line(e) for e in events])
                for event, why in zip(events, refused, strict=True):
                    if why is not None:
                        n = self._stats.inc(f"dropped:{self._name}", event.camera)
                        log_counted(
                            self._log, n, "error", why, camera=event.camera, dropped=n, step=1000
                        )
                self._more.set()
        finally:
            self._fed_all = True
            self._more.set()

    async def peek(self) -> _Item:
        while True:
            line = await self._on_disk(self._spool.peek)
            if line is not None:
                try:
                    return _item_of_line(line)
                except (ValueError, KeyError, TypeError):
                    self._stats.inc(f"mqtt_spool_damaged:{self._name}")
                    self._log.error("damaged record in the MQTT spool skipped")
                    await self._on_disk(self._spool.ack)
                    continue
            if self._fed_all:
                raise _Ended
            self._more.clear()
            if self._spool.waiting:  # appended between the peek and the clear
                continue
            await self._more.wait()

    def ready(self) -> bool:
        return self._spool.waiting > 0

    def ack(self) -> None:
        # On the spool's thread after everything asked before it, before every peek after
        # it: the next peek sees the record after this one.
        self._disk.submit(self._ack)

    def _ack(self) -> None:
        try:
            self._spool.ack()
        except OSError as exc:
            n = self._stats.inc(f"mqtt_spool_errors:{self._name}")
            log_counted(self._log, n, "error", "MQTT spool offset not written", error=str(exc))

    def left(self) -> int:
        return self._spool.waiting

    async def close(self) -> None:
        """Close the file once everything asked of it is done."""
        await self._on_disk(self._spool.close)
        self._disk.shutdown(wait=False)


class MqttSink:
    name = "mqtt"

    def __init__(
        self,
        cfg: MqttConfig,
        *,
        cameras: list[str],
        health: Health | None = None,
        stats: Stats | None = None,
        transports: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.cfg = cfg
        self.client_id = cfg.client_id or default_client_id()
        self.stats = stats if stats is not None else Stats()
        self.health = health
        self.daemon_topic = f"{cfg.prefix}/_daemon/{self.client_id}/status"
        self._cameras = cameras
        self._dirty: set[str] = set()  # cameras whose status is to be (re)published
        self._dirty_event = asyncio.Event()
        self._brokers = [(cfg.host, cfg.port), *cfg.failover]
        self._spool: Spool | None = None
        # Reset as soon as a broker took us: a broker that restarts is retried promptly.
        self._backoff = Backoff(self.cfg.backoff_initial, self.cfg.backoff_max, healthy_after=0)
        self._attempts = 0
        self._log = get_logger("lprmeta.sinks.mqtt", client_id=self.client_id)
        self._states = StateLog(
            self._log,
            (lambda s: health.set_sink(self.name, s.partition(":")[0])) if health else None,
        )
        # Home Assistant discovery (on by default): devices, entities and their states.
        self.discovery = (
            Discovery(
                prefix=cfg.prefix,
                discovery_prefix=cfg.discovery_prefix,
                client_id=self.client_id,
                daemon_topic=self.daemon_topic,
                cameras={c: frozenset((transports or {}).get(c, ())) for c in cameras},
                picture=cfg.discovery_picture,
            )
            if cfg.discovery
            else None
        )
        self._links: set[tuple[str, str]] = set()  # (camera, transport) to (re)publish
        self._rediscover: set[str] = set()  # cameras whose device info came in
        self._today: dict[str, tuple[date, int, int]] = {}  # camera: day, reads, missing
        if health is not None:
            health.on_change(self._camera_changed)
            health.on_transport_change(self._transport_changed)
            health.on_identity(self._identified)
            health.set_sink(self.name, "connecting")

    def topic(self, camera: str, kind: str) -> str:
        return f"{self.cfg.prefix}/{camera}/{kind}"

    def open(self) -> None:
        """Open the spool file, if any (at start-up: a spool that cannot be opened is a
        configuration error, not a surprise at the first event)."""
        if self.cfg.spool is None or self._spool is not None:
            return
        try:
            self._spool = Spool(self.cfg.spool, self.cfg.buffer)
        except OSError as exc:
            raise ConfigError(
                [
                    ConfigProblem(
                        "mqtt.spool", f"cannot open {str(self.cfg.spool)!r}: {exc.strerror}"
                    )
                ]
            ) from exc
        if self._spool.torn:
            self._log.error(
                "torn record at the end of the MQTT spool cut off", bytes=self._spool.torn
            )
        if self._spool.waiting:
            self._log.info("sending events left in the MQTT spool", events=self._spool.waiting)

    async def run(self, sub: Subscription) -> None:
        await asyncio.to_thread(self.open)  # a long spool is counted at start: disk work
        spool = self._spool
        feeder: asyncio.Task[None] | None = None
        backlog: _MemoryBacklog | _SpoolBacklog
        spool_backlog: _SpoolBacklog | None = None
        if spool is not None:
            spool_backlog = _SpoolBacklog(spool, sub, self.stats, self.name)
            feeder = asyncio.create_task(spool_backlog.feed(), name="mqtt-spool-feeder")
            backlog = spool_backlog
        else:
            backlog = _MemoryBacklog(sub)
        try:
            await self._deliver_all(backlog)
        except asyncio.CancelledError:
            left = backlog.left()
            if spool is not None and left:
                self._log.warning("stopping; events kept in the MQTT spool", events=left)
            elif left:
                self.stats.inc(f"mqtt_unsent:{self.name}", n=left)
                self._log.error("stopping with events not sent to MQTT", unsent=left)
            raise
        finally:
            if feeder is not None:
                feeder.cancel()
                await asyncio.gather(feeder, return_exceptions=True)
            if spool_backlog is not None:
                await spool_backlog.close()
                self._spool = None

    # ------------------------------------------------------------- connection

    def _client(self, host: str, port: int, tls: ssl.SSLContext | None) -> aiomqtt.Client:
        return aiomqtt.Client(
            host,
            port,
            username=self.cfg.username or None,
            password=self.cfg.password.get() or None,
            identifier=self.client_id,
            will=aiomqtt.Will(self.daemon_topic, OFFLINE, qos=1, retain=True),
            keepalive=self.cfg.keepalive,
            timeout=max(10.0, float(self.cfg.keepalive)),
            tls_context=tls,
            clean_session=True,
            # Small messages one after another: without this, a message written while
            # the broker has not yet acknowledged the one before at the TCP level waits
            # for its delayed ACK (40 ms on Linux): 23 events/s with Home Assistant's
            # states after each event, 1,223 with it (measured against mosquitto).
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
        )

    async def _deliver_all(self, backlog: _MemoryBacklog | _SpoolBacklog) -> None:
        """Connect (the brokers in turn), publish until the backlog ends; the lifecycle is
        the one every connection has (lprmeta.retry)."""
        await reconnect(
            functools.partial(self._attempt, backlog),
            classify=self._classify,
            backoff=self._backoff,
            state=self._states,
        )

    async def _attempt(self, backlog: _MemoryBacklog | _SpoolBacklog) -> bool:
        host, port = self._brokers[self._attempts % len(self._brokers)]
        self._attempts += 1
        tls: _TlsContext | None = None
        try:
            tls = _TlsContext.for_config(self.cfg) if self.cfg.tls else None
            async with self._client(host, port, tls) as client:
                self._backoff.connected()
                self._states.change("up", "connected to MQTT broker", host=host, port=port)
                return await self._session(client, backlog)
        except* (aiomqtt.MqttError, OSError) as group:  # OSError: TLS, a bad CA file
            raise _BrokerDown(host, port, _first(group)) from None
        finally:
            if tls is not None:
                tls.close_sockets()

    def _classify(self, exc: Exception) -> Outcome | None:
        if not isinstance(exc, _BrokerDown):
            return None
        if self._states.state == "up":
            self.stats.inc(f"mqtt_disconnects:{self.name}")
        error = str(exc.error) or type(exc.error).__name__
        # One state per broker and reason: each different reason is said once.
        return Outcome(
            f"down:{exc.host}:{exc.port}:{error}",
            "cannot connect to MQTT broker; events wait",
            fields={"host": exc.host, "port": exc.port, "error": error},
        )

    async def _session(
        self, client: aiomqtt.Client, backlog: _MemoryBacklog | _SpoolBacklog
    ) -> bool:
        """Publish until the backlog ends (True) or the connection breaks (raises)."""
        await client.publish(self.daemon_topic, ONLINE, qos=1, retain=True)
        if self.discovery is not None:
            await self._announce(client, self.discovery)
            self._links.update(
                (c, t) for c, ts in self.discovery.cameras.items() for t in sorted(ts)
            )
        self._dirty.update(self._cameras)
        self._dirty_event.set()
        try:
            async with asyncio.TaskGroup() as tg:
                watcher = tg.create_task(self._watch(client))
                pump = tg.create_task(self._pump(client, backlog))
                await asyncio.wait({pump})
                watcher.cancel()
        except asyncio.CancelledError:
            # Stopped before the backlog drained: still say "offline" (a clean
            # disconnect sends no last will), if the broker answers quickly.
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(0.5):
                    await self._goodbye(client)
            raise
        await self._goodbye(client)
        return True

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        """Raises MqttError when the connection is lost (cancelling the pump with it)."""
        async for _ in client.messages:
            pass

    async def _pump(self, client: aiomqtt.Client, backlog: _MemoryBacklog | _SpoolBacklog) -> None:
        while True:
            await self._publish_statuses(client)
            try:
                if backlog.ready():
                    item = await backlog.peek()
                else:  # wait for an event, or for a camera's status to change
                    peek = asyncio.ensure_future(backlog.peek())
                    woken = asyncio.ensure_future(self._dirty_event.wait())
                    try:
                        await asyncio.wait({peek, woken}, return_when=asyncio.FIRST_COMPLETED)
                    finally:  # also when the connection breaks while waiting
                        woken.cancel()
                        if not peek.done():
                            peek.cancel()
                    if not peek.done() or peek.cancelled():
                        continue  # woken for a status change
                    item = peek.result()
            except _Ended:
                return
            await self._publish(client, item)
            backlog.ack()
            self.stats.inc(f"mqtt_sent:{self.name}", item.camera)

    async def _publish(self, client: aiomqtt.Client, item: _Item) -> None:
        cfg = self.cfg
        if cfg.pictures == "binary":
            for role, path in item.pictures:
                data = _read_picture(path)
                if data is None:
                    self.stats.inc(f"mqtt_picture_missing:{self.name}", item.camera)
                    continue
                topic = f"{self.topic(item.camera, item.kind)}/{role}"
                await client.publish(topic, data, qos=cfg.qos, retain=cfg.retain)
        if self.discovery is not None:
            await self._publish_ha(client, self.discovery, item)
        await client.publish(
            self.topic(item.camera, item.kind),
            item.line.rstrip(b"\n"),
            qos=cfg.qos,
            retain=cfg.retain,
        )

    # ------------------------------------------------------------ Home Assistant

    async def _announce(self, client: aiomqtt.Client, ha: Discovery) -> None:
        """Publish every discovery config (retained), and clear the ones this daemon
        published before for cameras it no longer has (empty retained payloads)."""
        configs = ha.configs(self.health.devices if self.health is not None else None)
        before: set[str] = set()
        await client.subscribe(ha.config_filter, qos=1)
        try:  # the broker sends the retained configs at once; a quiet moment ends them
            async with asyncio.timeout(DISCOVERY_LISTEN):
                while True:
                    message = await asyncio.wait_for(anext(aiter(client.messages)), 0.5)
                    if message.payload:
                        before.add(str(message.topic))
        except TimeoutError:
            pass
        await client.unsubscribe(ha.config_filter)
        gone = sorted(before - configs.keys())
        for topic in gone:
            await client.publish(topic, b"", qos=1, retain=True)
        if gone:
            self._log.info("Home Assistant entities of removed cameras cleared", configs=len(gone))
        for topic, body in configs.items():
            await client.publish(topic, orjson.dumps(body), qos=1, retain=True)

    async def _publish_ha(self, client: aiomqtt.Client, ha: Discovery, item: _Item) -> None:
        """The event entity's message and the states behind it (last plate, counters,
        picture), just before the event itself.

        All at QoS 0, written one after another without a round trip each: the event
        line that follows is acknowledged (QoS 1), and the broker reads a connection in
        order, so its acknowledgement says these arrived too; if it never comes, the
        whole item, these included, is sent again. (Home Assistant subscribes at QoS 0
        by default anyway.) One acknowledged round trip per event, as without discovery:
        awaiting one per message made it five (204 events/s against 1,489)."""
        data = orjson.loads(item.line)
        camera = item.camera
        event = orjson.dumps(ha.event_payload(data), default=str)
        await client.publish(ha.state(camera, "event"), event, qos=0, retain=False)
        today = datetime.now().astimezone().date()
        day, reads, missing = self._today.get(camera, (today, 0, 0))
        if day != today:
            reads = missing = 0
        reads += item.kind == "plate"
        missing += sum(1 for i in data.get("images") or () if i.get("missing"))
        self._today[camera] = (today, reads, missing)
        states: list[tuple[str, bytes]] = []
        if item.kind == "plate" and data.get("plate"):
            attributes = orjson.dumps(ha.attributes(data), default=str)
            states.append((ha.state(camera, "last_plate"), attributes))
        today_counts = orjson.dumps({"reads": reads, "pictures_missing": missing})
        states.append((ha.state(camera, "today"), today_counts))
        path = ha.picture_path(data)
        if path is not None:
            picture = await asyncio.to_thread(_read_picture, path)  # the disk, off the loop
            if picture is not None:
                states.append((ha.state(camera, "picture"), picture))
        for topic, payload in states:
            await client.publish(topic, payload, qos=0, retain=True)

    # ------------------------------------------------------------ availability

    def _camera_changed(self, camera: str) -> None:
        self._dirty.add(camera)
        self._dirty_event.set()

    def _identified(self, camera: str) -> None:
        if self.discovery is not None:
            self._rediscover.add(camera)
            self._dirty_event.set()

    def _transport_changed(self, camera: str, transport: str) -> None:
        if self.discovery is not None:
            self._links.add((camera, transport))
            self._dirty_event.set()

    async def _publish_statuses(self, client: aiomqtt.Client) -> None:
        while self._dirty:
            camera = min(self._dirty)
            self._dirty.discard(camera)  # before the await: a change meanwhile re-adds it
            available = self.health is None or self.health.available(camera)
            await client.publish(
                f"{self.cfg.prefix}/{camera}/status",
                ONLINE if available else OFFLINE,
                qos=1,
                retain=True,
            )
        while self._rediscover and self.discovery is not None and self.health is not None:
            camera = self._rediscover.pop()
            known = self.health.devices.get(camera, {})
            for topic, body in self.discovery.camera_configs(camera, known).items():
                await client.publish(topic, orjson.dumps(body), qos=1, retain=True)
        while self._links and self.discovery is not None:
            camera, transport = link = min(self._links)
            self._links.discard(link)
            state = self.health.transports.get(camera, {}).get(transport) if self.health else None
            await client.publish(
                self.discovery.state(camera, f"connected/{transport}"),
                b"ON" if state is not None and state.state == "up" else b"OFF",
                qos=1,
                retain=True,
            )
        self._dirty_event.clear()

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """A clean stop: every camera and the daemon itself go offline (no last will
        is sent for a clean disconnect)."""
        for camera in self._cameras:
            await client.publish(f"{self.cfg.prefix}/{camera}/status", OFFLINE, qos=1, retain=True)
        await client.publish(self.daemon_topic, OFFLINE, qos=1, retain=True)


class _TlsContext(ssl.SSLContext):
    """Closes the TLS sockets it made once a connection attempt is over: paho-mqtt 2.2
    leaves the socket of a failed handshake (an untrusted broker) open until the
    garbage collector finds it, one per retry."""

    sockets: list[ssl.SSLSocket]

    @classmethod
    def for_config(cls, cfg: MqttConfig) -> _TlsContext:
        ctx = cls(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and the host name
        ctx.sockets = []
        if cfg.ca_file is not None:
            ctx.load_verify_locations(cafile=str(cfg.ca_file))
        else:
            ctx.load_default_certs()
        return ctx

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        sock = super().wrap_socket(*args, **kwargs)
        self.sockets.append(sock)
        return sock

    def close_sockets(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


class _BrokerDown(Exception):  # a state, not an error of ours
    def __init__(self, host: str, port: int, error: BaseException) -> None:
        super().__init__(f"{host}:{port}: {error}")
        self.host = host
        self.port = port
        self.error = error


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _read_picture(path: str) -> bytes | None:
    try:
        with Path(path).open("rb") as f:
            data = f.read(MAX_PICTURE + 1)
    except OSError:
        return None
    return data if len(data) <= MAX_PICTURE else None
