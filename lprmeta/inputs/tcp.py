"""The TCP input: connect to a camera's LPR port, log in, register, receive forever.

Owns one camera's connection and its reconnects; parsing is
:mod:`lprmeta.protocol.tcp`'s. Per the guide ("1. TCP Type") the NVR/VMS
connects to the camera, sends COMM_LOGIN_REQ, then COMM_REGISTE_REQ, and the
camera pushes COMM_RECOG_POST and the JSON posts on its own.

Failure handling, all per camera (one camera's trouble never reaches another):

* connect/login/register are bounded by ``connect_timeout``;
* a rejected login (401 and the like) is logged once as an error naming the
  camera and retried after ``login_retry`` (default 5 min), not in a loop;
* a camera that does not answer the registration, or refuses it, is logged and
  still listened to: recognition posts need no registration;
* the protocol has no heartbeat: the socket has TCP keepalive on, and a camera
  silent for ``idle_timeout`` is taken for dead and reconnected;
* bytes that are not packets are skipped and counted (``junk_bytes``); a
  packet that cannot be decoded is counted (``bad_packets``) and logged; a
  connection that drops mid-packet discards the partial packet
  (``partial_packets``): no half event is ever emitted;
* reconnects use jittered, capped exponential backoff, reset after a healthy
  session; state changes are logged once, not per retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from ..config import REGISTER_FEATURES, CameraConfig, TcpConfig
from ..envelope import Read
from ..errors import (
    ConnectError,
    IdleTimeout,
    LoginRejected,
    PacketTooLarge,
    ProtocolError,
    TransportError,
)
from ..health import Health
from ..log import get_logger, log_counted
from ..offload import Offload, is_heavy
from ..protocol.tcp import (
    COMM_LOGIN_REPLY,
    COMM_RECOG_POST,
    COMM_REGISTE_REPLY,
    NEED_DATA,
    Junk,
    Packet,
    PacketDecoder,
    Reply,
    decode_packet,
    encode_login,
    encode_register,
)
from ..retry import Backoff, Outcome, StateLog, reconnect
from ..stats import Stats

__all__ = ["TcpInput", "set_keepalive"]

_READ_SIZE = 256 * 1024


def set_keepalive(
    sock: socket.socket, *, idle: int = 30, interval: int = 10, count: int = 3
) -> None:
    """TCP keepalive: a dead peer is noticed after about idle + interval * count seconds."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", idle),
        ("TCP_KEEPINTVL", interval),
        ("TCP_KEEPCNT", count),
    ):
        opt = getattr(socket, name, None)
        if opt is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, opt, value)


class TcpInput:
    def __init__(
        self,
        camera: CameraConfig,
        *,
        deliver: Callable[[Read], None],
        stats: Stats,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        health: Health | None = None,
        offload: Offload | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        assert camera.tcp is not None
        self.offload = offload if offload is not None else Offload()
        self.camera = camera
        self.cfg: TcpConfig = camera.tcp
        self.name = f"tcp:{camera.name}"
        self._deliver = deliver
        self.stats = stats
        self._now = now
        self._log = get_logger("lprmeta.inputs.tcp", camera=camera.name)
        self._state = StateLog(
            self._log,
            (lambda state: health.set(camera.name, "tcp", state)) if health else None,
        )
        self.backoff = Backoff(self.cfg.backoff_initial, self.cfg.backoff_max)
        self._sleep = sleep
        self.connected = asyncio.Event()
        self.sessions = 0

    async def __aenter__(self) -> TcpInput:
        return self  # the connection is run()'s own: nothing is opened before it

    async def __aexit__(self, *exc: object) -> None:
        return None  # nor finished after: a packet is handed over whole or not at all

    # ---------------------------------------------------------------- the loop

    async def run(self) -> None:
        await reconnect(
            self._session,
            classify=self._classify,
            backoff=self.backoff,
            state=self._state,
            ended=self.connected.clear,
            retrying=lambda: self.stats.inc("reconnects", self.camera.name),
            sleep=self._sleep,
        )

    def _classify(self, exc: Exception) -> Outcome | None:
        """What a failed session means; None for what this input does not expect."""
        name = self.camera.name
        if isinstance(exc, LoginRejected):
            self.stats.inc("login_rejected", name)
            return Outcome(
                f"login-rejected:{exc.result}",
                "camera rejected the login; check cameras.username/password",
                level="error",
                at_least=self.cfg.login_retry,  # no tight loop against a wrong password
                fields={"result": exc.result, "retry_in": self.cfg.login_retry},
            )
        if isinstance(exc, TransportError | OSError):
            return Outcome(
                f"down:{type(exc).__name__}",
                "camera connection lost" if self.sessions else "cannot reach camera",
                fields={"reason": _reason(exc)},
            )
        if isinstance(exc, ProtocolError):
            # Oversize packets: the stream cannot be trusted any more; start afresh.
            self.stats.inc("reconnects_protocol", name)
            return Outcome(
                "down:protocol", "protocol error; reconnecting", fields={"reason": str(exc)}
            )
        return None

    async def _session(self) -> bool:
        cfg = self.cfg
        reader, writer = await self._connect()
        decoder = PacketDecoder(max_size=cfg.max_packet)
        try:
            await self._handshake(reader, writer, decoder)
            self.sessions += 1
            self.backoff.connected()
            self.connected.set()
            self._state.change("up", "camera connected", host=self.camera.host, port=cfg.port)
            await self._receive(reader, decoder)
        finally:
            writer.close()
            # Never suppress CancelledError here: it is how the daemon stops this input.
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1):
                    await writer.wait_closed()
        return False  # _receive ends only by raising; a session is never "done"

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        cfg = self.cfg
        try:
            async with asyncio.timeout(cfg.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self.camera.host, cfg.port, limit=_READ_SIZE
                )
        except TimeoutError as exc:
            raise ConnectError(f"connect timed out after {cfg.connect_timeout:g} s") from exc
        except OSError as exc:
            raise ConnectError(f"connect failed: {exc.strerror or exc}") from exc
        sock = writer.get_extra_info("socket")
        if sock is not None:
            set_keepalive(sock)
        return reader, writer

    async def check(self) -> Reply | None:
        """Connect, log in and register once, then hang up (``lprmeta probe``).

        Returns the registration reply (``None`` when the camera sent none);
        raises :class:`LoginRejected` or another :class:`TransportError`.
        """
        reader, writer = await self._connect()
        try:
            decoder = PacketDecoder(max_size=self.cfg.max_packet)
            return await self._handshake(reader, writer, decoder)
        finally:
            writer.transport.abort()

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, decoder: PacketDecoder
    ) -> Reply | None:
        cfg = self.cfg
        writer.write(encode_login(self.camera.username, self.camera.password.get()))
        await writer.drain()
        try:
            async with asyncio.timeout(cfg.connect_timeout):
                login = await self._await_reply(reader, decoder, COMM_LOGIN_REPLY)
        except TimeoutError as exc:
            raise ConnectError(f"no login reply within {cfg.connect_timeout:g} s") from exc
        if not login.ok:
            raise LoginRejected(
                f"login rejected ({login.result})", result=login.result, camera=self.camera.name
            )
        features = None if cfg.register_all else [REGISTER_FEATURES[f] for f in cfg.register or ()]
        writer.write(encode_register(features))
        await writer.drain()
        try:
            async with asyncio.timeout(cfg.connect_timeout):
                reg = await self._await_reply(reader, decoder, COMM_REGISTE_REPLY)
        except TimeoutError:
            self._log.warning("no registration reply; listening anyway (recognition needs none)")
            return None
        if not reg.ok:
            self.stats.inc("register_rejected", self.camera.name)
            self._log.warning(
                "camera refused the feature registration; listening anyway",
                result=reg.result,
                register=cfg.register or "all",
            )
        return reg

    async def _await_reply(
        self, reader: asyncio.StreamReader, decoder: PacketDecoder, command: int
    ) -> Reply:
        """Read until the reply to ``command``; anything the camera pushes meanwhile is handled."""
        while True:
            data = await reader.read(_READ_SIZE)
            if not data:
                raise ConnectError("camera closed the connection during login")
            decoder.feed(data)
            for result in await self._drain(decoder):
                if isinstance(result, Reply) and result.command == command:
                    return result

    async def _receive(self, reader: asyncio.StreamReader, decoder: PacketDecoder) -> None:
        idle = self.cfg.idle_timeout
        await self._drain(decoder)  # pushes that came with the registration reply
        while True:
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
                # cancellation that lands as the read completes, and the daemon's stop
                # would be lost.
                async with asyncio.timeout(idle):
                    data = await reader.read(_READ_SIZE)
            except TimeoutError as exc:
                self.stats.inc("idle_timeouts", self.camera.name)
                raise IdleTimeout(f"nothing received for {idle:g} s") from exc
            if not data:
                if decoder.buffered:
                    self.stats.inc("partial_packets", self.camera.name)
                    self._log.warning(
                        "connection closed mid-packet; partial packet discarded",
                        bytes=decoder.buffered,
                    )
                raise ConnectError("camera closed the connection")
            decoder.feed(data)
            await self._drain(decoder)

    async def _drain(self, decoder: PacketDecoder) -> list[Reply]:
        """Decode every complete packet buffered; deliver events, return replies."""
        replies: list[Reply] = []
        while True:
            try:
                item = decoder.next_event()
            except PacketTooLarge:
                self.stats.inc("oversize_packets", self.camera.name)
                raise
            except ProtocolError as exc:
                self._bad("framing error", exc)
                continue
            if item is NEED_DATA:
                return replies
            if isinstance(item, Junk):
                n = self.stats.inc("junk_bytes", self.camera.name, item.size)
                if n == item.size:  # first junk on this camera: say it once
                    self._log.warning(
                        "skipped bytes that are not a packet", bytes=item.size, offset=item.offset
                    )
                continue
            if not isinstance(item, Packet):
                continue
            try:
                parsed = None
                if item.command != COMM_RECOG_POST and is_heavy(item.data):
                    # 10^5 keys: parsed in the worker process, not on the loop.
                    parsed = await self.offload.json(item.data)
                result = decode_packet(
                    item, camera=self.camera.name, received=self._now(), parsed=parsed
                )
            except ProtocolError as exc:
                self._bad(f"bad {item.name} packet", exc)
                continue
            except Exception as exc:  # noqa: BLE001  # one packet, not the camera's connection
                # The parsers turn what a camera sends into problems of one field; reaching
                # here is a bug. The packet is lost (counted, logged once), the stream goes on.
                n = self.stats.inc("packet_failures", self.camera.name)
                log_counted(
                    self._log,
                    n,
                    "error",
                    "packet could not be handled; it is lost, the connection goes on",
                    packet=item.name,
                    error=f"{type(exc).__name__}: {exc}",
                    packet_failures=n,
                    exc_info=exc,
                    step=1000,
                )
                continue
            if isinstance(result, Reply):
                replies.append(result)
                continue
            self.stats.inc("packets", self.camera.name)
            self._deliver(result)

    def _bad(self, what: str, exc: ProtocolError) -> None:
        n = self.stats.inc("bad_packets", self.camera.name)
        log_counted(self._log, n, "warning", what, error=str(exc), bad_packets=n)


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__
    return f"{exc}" if cause is None or str(cause) in str(exc) else f"{exc} ({cause})"
