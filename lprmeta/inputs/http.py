"""The HTTP receiver: cameras POST JSON (or GET with the plate in the URL) to us.

Owns the aiohttp server, credentials, limits, and which camera a request
belongs to; parsing is :mod:`lprmeta.protocol.http`'s.

* Which camera: the request path (``/lpr/<name>`` or ``cameras.http.path``,
  longest match; the GET shape without ``?`` glues parameters onto it), else
  the source address matched to a camera's ``host``, else the body's
  ``device`` field matched to a camera name; an unknown sender is accepted and
  labelled ``http-<address>``, never lost.
* Replies: 200 only once the event is on the bus; a value that could not be
  read or a picture that is not valid base64 does not cost the read: the
  reply is 200 and lists them in ``problems`` (the picture is marked
  missing). A rejected request gets a 4xx whose body says why, is counted
  (``http_rejected:<status>``) and emits nothing: 400 malformed JSON, 401
  credentials, 413 body too large, 408 body too slow, 415 content type;
  503 (with Retry-After) when the receiver is at its connection or
  body-memory budget.
* Budgets, so that no sender can starve the others: at most
  ``max_connections`` connections (more are answered 503 and closed at
  once, keeping descriptors for cameras and pictures; at most
  ``max_connections_per_address`` from one address), at most
  ``max_reads_per_address`` bodies read at once from one address (the others
  wait their turn within ``read_timeout``), and at
  most ``max_body_memory`` bytes of bodies held at once (gzip bodies count
  inflated, as they stream). A trickling body holds only what it has sent,
  so slow senders cannot fill the receiver.
* A body too structured to parse on the loop (10^6 keys) is parsed in a
  worker process (:mod:`lprmeta.offload`).
* Credentials: HTTP Basic, as the camera's web UI offers; compared in
  constant time (``hmac.compare_digest`` on both parts).
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from aiohttp import http_exceptions, web

from ..config import CameraConfig, Config, HttpConfig
from ..envelope import Read
from ..errors import ListenError, PayloadError, StoreUnavailable
from ..events import Event
from ..log import get_logger, log_counted
from ..offload import Offload
from ..protocol.auth import check_basic
from ..protocol.http import (
    device_of,
    parse_get,
    parse_get_params,
    parse_post,
    split_target,
)
from ..stats import Stats
from ..storage import safe_part
from ..vocabulary import expect_object

__all__ = ["HttpInput"]

MAX_UNKNOWN_SENDERS = 256  # unconfigured senders labelled each by address; then "http-other"
_JSON_TYPES = {"application/json", "text/json", "text/plain", "application/octet-stream", ""}
_FORM = "application/x-www-form-urlencoded"


_INFLATE_STEP = 256 * 1024  # inflated bytes per step (~0.3 ms of the loop)
# A camera's body (base64 pictures, JSON) compresses a few-fold at most; one that expands
# over 100-fold past its first MiB is a bomb: refused then, not after max_body of work.
_MAX_RATIO = 100
_RATIO_AFTER = 1024 * 1024


def _inflater(encoding: str) -> Any:
    """A zlib inflater for the body's Content-Encoding (None: not compressed); another
    encoding is refused (415) before a byte of the body is read."""
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        return None
    if enc in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if enc == "deflate":  # zlib-wrapped (RFC 9110); a gzip header is accepted too
        return zlib.decompressobj(32 + zlib.MAX_WBITS)
    raise _Reject(415, f"content encoding {encoding!r} not accepted; gzip, deflate or none")


class _Turns:
    """Per address, at most ``limit`` holders at once; the others wait in order. An
    address's semaphore exists only while someone holds or waits for it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._by_peer: dict[str, tuple[asyncio.Semaphore, int]] = {}

    def reading(self, peer: str) -> int:
        entry = self._by_peer.get(peer)
        return min(entry[1], self.limit) if entry else 0

    def waiting(self, peer: str) -> int:
        entry = self._by_peer.get(peer)
        return max(0, entry[1] - self.limit) if entry else 0

    @contextlib.asynccontextmanager
    async def slot(self, peer: str) -> AsyncIterator[None]:
        sem, users = self._by_peer.get(peer) or (asyncio.Semaphore(self.limit), 0)
        self._by_peer[peer] = (sem, users + 1)
        try:
            async with sem:
                yield
        finally:
            sem, users = self._by_peer[peer]
            if users == 1:
                del self._by_peer[peer]
            else:
                self._by_peer[peer] = (sem, users - 1)


class _Gather:
    """A body's chunks as they arrive, whole at the end. A body in a few chunks (a 134 KB
    camera POST arrives in one to three) is joined once, or not copied at all, instead of
    grown in a bytearray and copied out of it: two copies, most of the 10% of the loop's
    time that ``_read_body``'s own lines took at 1,000 POSTs/s (py-spy ``--gil``).
    Past :data:`_FEW` chunks they go into a bytearray: a sender trickling a byte at a time
    must not cost an object per byte against a budget that counts bytes."""

    __slots__ = ("_buf", "_parts", "size")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._buf: bytearray | None = None
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._buf is not None:
            self._buf += chunk
        elif len(self._parts) < _FEW:
            self._parts.append(chunk)
        else:
            self._buf = bytearray().join(self._parts)
            self._buf += chunk
            self._parts = []

    def take(self) -> bytes:
        if self._buf is not None:
            return bytes(self._buf)
        parts = self._parts
        return parts[0] if len(parts) == 1 else b"".join(parts)


_FEW = 16


class _Reject(Exception):  # a reply, not an error
    def __init__(self, status: int, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


class ByteBudget:
    """Bytes held at once, across requests; taking never waits (waiting while holding
    could deadlock readers against each other): a request that does not fit is told
    to come back (503)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0

    def take(self, n: int) -> bool:
        if self.held + n > self.limit:
            return False
        self.held += n
        self.peak = max(self.peak, self.held)
        return True

    def give(self, n: int) -> None:
        self.held -= n


_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
)


class _Gate(asyncio.Protocol):
    """Admits a connection once its peer is known: under the caps it is handed to aiohttp
    (``set_protocol``, before any byte is read); over them it gets a short 503 and is
    closed at once, so its descriptor is free again."""

    def __init__(self, site: _CappedSite) -> None:
        self._site = site

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        refused = self._site.refusal(peer[0] if peer else "unknown")
        if refused is None:
            server = self._site.server
            inner = server()
            transport.set_protocol(inner)
            inner.connection_made(transport)
            return
        body = b'{"result":"503","error":"%s"}' % refused.encode()
        transport.write(_BUSY % (len(body), body))
        transport.close()


class _CappedSite(web.TCPSite):
    """aiohttp's TCP site with a cap on open connections, in all and per address."""

    def __init__(
        self,
        runner: web.ServerRunner,
        *args: Any,
        cap: int,
        per_address: int,
        on_refuse: Callable[[str, str], None],
        **kw: Any,
    ) -> None:
        super().__init__(runner, *args, **kw)
        self._cap = cap
        self._per_address = per_address
        self._on_refuse = on_refuse

    @property
    def server(self) -> web.Server:
        server = self._runner.server
        assert isinstance(server, web.Server)
        return server

    def refusal(self, peer: str) -> str | None:
        """Why a new connection from ``peer`` is refused, or None to admit it."""
        connections = self.server.connections
        if len(connections) >= self._cap:
            why = f"too many connections (cap {self._cap})"
        elif sum(1 for h in connections if _peer(h) == peer) >= self._per_address:
            why = f"too many connections from one address (cap {self._per_address})"
        else:
            return None
        self._on_refuse(peer, why)
        return why

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Gate(self), self._host, self._port, backlog=self._backlog
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port


def _reply(
    obj: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON reply (orjson: ``web.json_response``'s json.dumps was 4 us of the 6 it took)."""
    return web.Response(
        body=orjson.dumps(obj),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


def _peer(handler: Any) -> str | None:
    transport = getattr(handler, "transport", None)
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if peer else None


class HttpInput:
    def __init__(
        self,
        config: Config,
        *,
        submit: Callable[[Read], Awaitable[Event]],
        stats: Stats,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        offload: Offload | None = None,
        max_connections: int | None = None,
    ) -> None:
        assert config.http is not None
        self.cfg: HttpConfig = config.http
        self.cameras = config.cameras
        self.name = "http"
        self._submit = submit
        self.stats = stats
        self._now = now
        self._log = get_logger("lprmeta.inputs.http")
        self._by_path = sorted(
            ((c.http.path.rstrip("/") or "/", c) for c in config.cameras),
            key=lambda pc: len(pc[0]),
            reverse=True,
        )
        self._by_host: dict[str, CameraConfig] = {}
        for cam in config.cameras:
            self._by_host.setdefault(cam.host, cam)
        self._by_name = {c.name.casefold(): c for c in config.cameras}
        self._runner: web.ServerRunner | None = None
        self._unknown_logged: set[str] = set()
        self.port: int | None = None
        self.inflight = 0
        self.offload = offload if offload is not None else Offload()
        self.max_connections = max_connections or self.cfg.max_connections
        self.budget = ByteBudget(self.cfg.max_body_memory)
        self.turns = _Turns(self.cfg.max_reads_per_address)
        self._refusing = False
        self._idle = asyncio.Event()
        self._idle.set()

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> HttpInput:
        """Listen (raises ListenError when the port is taken: the daemon does not start)."""
        # aiohttp's low-level server: every path is ours (split_target), so an application
        # and its router had nothing to decide, at ~30 us a request (py-spy at 1,000/s:
        # route matching, match info, the middleware walk). ``Expect`` is answered in
        # _serve, after the checks that would refuse the body.
        server = web.Server(
            self._handle,
            access_log=None,
            # aiohttp closes a connection that has not delivered a whole request within
            # its keep-alive timeout, counted from the connection's start or its last
            # response: with read_timeout there, a client dribbling headers (slow-loris)
            # is cut off too.
            keepalive_timeout=self.cfg.read_timeout,
            # aiohttp inflates a gzip body inside data_received, all of what is buffered
            # at once: 32 bodies of 64 MiB held the loop for a second. We inflate in
            # bounded steps instead (_read_body), counting inflated bytes.
            auto_decompress=False,
        )
        self._runner = web.ServerRunner(server, handle_signals=False)
        await self._runner.setup()
        site = _CappedSite(
            self._runner,
            self.cfg.host,
            self.cfg.port,
            # asyncio accepts up to `backlog` connections in one callback: 1,024 queued
            # connections held the loop for 100 ms. 128 bounds that to ~12 ms.
            backlog=128,
            cap=self.max_connections,
            per_address=self.cfg.max_connections_per_address,
            on_refuse=self._refused,
        )
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ListenError(
                exc.errno,
                f"HTTP receiver cannot listen on {self.cfg.host}:{self.cfg.port}: {exc.strerror}",
            ) from exc
        self.port = site.port
        self._log.info(
            "HTTP receiver listening",
            host=self.cfg.host,
            port=self.port,
            auth=bool(self.cfg.username),
            max_connections=self.max_connections,
        )
        return self

    async def run(self) -> None:
        # The server runs on its own; this watches the connection cap's episodes, so a
        # flood is logged when it starts and when it ends, not once per connection.
        while True:
            await asyncio.sleep(1.0)
            server = self._runner.server if self._runner is not None else None
            below = server is not None and len(server.connections) < self.max_connections
            if self._refusing and below:
                self._refusing = False
                self._log.warning(
                    "HTTP connections below the cap again",
                    refused=self.stats.get("http_connections_refused"),
                )

    def _refused(self, peer: str, why: str) -> None:
        self.stats.inc("http_connections_refused")
        if not self._refusing:
            self._refusing = True
            self._log.warning(
                "HTTP connection cap reached; further connections are answered 503 and closed",
                peer=peer,
                reason=why,
            )

    async def __aexit__(self, *exc: object) -> None:
        """Stop accepting, let requests in flight finish (their events reach the bus)."""
        if self._runner is None:
            return
        try:
            async with asyncio.timeout(2.0):
                await self._idle.wait()
        except TimeoutError:
            self._log.warning("HTTP requests still in flight at shutdown", inflight=self.inflight)
        await self._runner.cleanup()
        self._runner = None

    # ------------------------------------------------------------ requests

    def _reject(
        self,
        status: int,
        reason: str,
        camera: str | None,
        request: web.BaseRequest,
        retry_after: int | None = None,
    ) -> web.Response:
        n = self.stats.inc(f"http_rejected:{status}", camera or "*")
        log_counted(
            self._log,
            n,
            "warning",
            "HTTP request rejected",
            status=status,
            reason=reason,
            camera=camera,
            peer=request.remote,
            path=request.path,
            rejected=n,
        )
        headers = {"WWW-Authenticate": 'Basic realm="lprmeta"'} if status == 401 else {}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        resp = _reply({"result": str(status), "error": reason}, status, headers)
        if status in (408, 413, 417, 429, 503):
            resp.force_close()  # the body was not read to its end: this connection is done
        return resp

    def _authorized(self, request: web.BaseRequest) -> bool:
        if not self.cfg.username:
            return True
        # Both the user name and the password compared, always, in constant time.
        return check_basic(
            request.headers.get("Authorization"), self.cfg.username, self.cfg.password.get()
        )

    def _camera_for(
        self, path: str, peer: str | None, body_device: str | None
    ) -> tuple[str, CameraConfig | None]:
        for prefix, cam in self._by_path:
            if (
                path == prefix
                or path.startswith(prefix + "/")
                or (prefix != "/" and path.startswith(prefix))
            ):
                return cam.name, cam
        if peer and peer in self._by_host:
            cam = self._by_host[peer]
            return cam.name, cam
        if body_device and body_device.casefold() in self._by_name:
            cam = self._by_name[body_device.casefold()]
            return cam.name, cam
        label = f"http-{safe_part(peer or 'unknown', limit=48)}"
        if label not in self._unknown_logged and len(self._unknown_logged) >= MAX_UNKNOWN_SENDERS:
            # Each label is a camera in health and counters: from many addresses (the whole
            # 127/8 is one machine), one shared label, so they stay bounded.
            return "http-other", None
        if label not in self._unknown_logged:
            self._unknown_logged.add(label)
            self._log.warning(
                "push from an unconfigured sender; accepted and labelled",
                camera=label,
                peer=peer,
                path=path,
                device=body_device,
            )
        return label, None

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.inflight += 1
        self._idle.clear()
        try:
            return await self._serve(request)
        finally:
            self.inflight -= 1
            if self.inflight == 0:
                self._idle.set()

    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        received = self._now()
        path, params = split_target(request.raw_path)
        if not self._authorized(request):
            return self._reject(401, "credentials required", None, request)
        if request.method == "GET":
            return await self._serve_get(request, path, params, received)
        if request.method not in ("POST", "PUT"):
            return self._reject(
                405, f"method {request.method} not accepted; POST or GET", None, request
            )
        ctype = request.content_type.lower() if request.headers.get("Content-Type") else ""
        if ctype not in _JSON_TYPES and ctype != _FORM:
            return self._reject(
                415, f"content type {ctype!r} not accepted; send application/json", None, request
            )
        peer = request.remote or "unknown"
        length = request.content_length
        if length is not None and length > self.cfg.max_body:
            return self._reject(413, f"body larger than {self.cfg.max_body} bytes", None, request)
        expect = request.headers.get("Expect")
        if expect is not None and request.version == aiohttp.HttpVersion11:
            # A sender that waits to hear it may send the body (curl past 1 KB) is told so
            # only now: a body that would be refused above is never sent at all.
            if expect.lower() != "100-continue":
                return self._reject(
                    417,
                    f"Expect {expect[:60]!r} not understood; 100-continue or none",
                    None,
                    request,
                )
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0
        held = 0
        try:
            body, held = await self._read_body(request, peer)
            if ctype == _FORM:
                return await self._serve_params(
                    request, path, parse_get_params(body.decode("utf-8", "replace")), received
                )
            return await self._serve_json(request, path, body, received)
        except _Reject as r:
            return self._reject(r.status, r.reason, None, request, retry_after=r.retry_after)
        except (ConnectionError, aiohttp.ClientPayloadError):
            # The camera hung up mid-body: nothing to answer, nothing emitted.
            n = self.stats.inc("http_aborted")
            log_counted(
                self._log,
                n,
                "warning",
                "client disconnected before its body arrived",
                peer=request.remote,
                path=request.path,
                aborted=n,
            )
            # Nobody is left to read a reply; returning (not raising) keeps aiohttp from
            # logging an error for what was counted and reported just now.
            return web.Response(status=400, text="client disconnected mid-body")
        finally:
            self.budget.give(held)

    async def _read_body(self, request: web.BaseRequest, peer: str) -> tuple[bytes, int]:
        """The whole body (inflated when gzip), within the size, time and memory budgets;
        returns it and the bytes taken from the budget (the caller gives them back).

        At most ``max_reads_per_address`` bodies are read at once from one address; the
        others wait their turn (their bytes held back by TCP flow control, within
        ``read_timeout``): cameras behind one NAT address that push at once all get 200,
        while a sender trickling many bodies only ever occupies its own turns."""
        body = _Gather()
        cfg = self.cfg
        done = False
        inflate = _inflater(request.headers.get("Content-Encoding", ""))
        packed = 0
        try:
            if inflate is None and request.content.is_eof():
                # All of it is here already (a camera's POST on a LAN nearly always is):
                # taken at once, with no turn to wait for and no deadline to set.
                whole = request.content.read_nowait()
                self._admit(0, len(whole))
                done = True
                return whole, len(whole)
            async with asyncio.timeout(cfg.read_timeout), self.turns.slot(peer):
                async for chunk in request.content.iter_any():
                    if inflate is None:
                        self._admit(body.size, len(chunk))
                        body.add(chunk)
                        continue
                    data = chunk
                    packed += len(chunk)
                    while data:  # at most _INFLATE_STEP bytes per step, then others run
                        out = inflate.decompress(data, _INFLATE_STEP)
                        data = inflate.unconsumed_tail
                        self._admit(body.size, len(out))
                        body.add(out)
                        used = packed - len(data)  # compressed bytes inflated so far
                        if body.size > _RATIO_AFTER and body.size > _MAX_RATIO * used:
                            raise _Reject(413, f"compressed body expands over {_MAX_RATIO}-fold")
                        if data:
                            await asyncio.sleep(0)
                if inflate is not None and not inflate.eof:
                    raise _Reject(400, "compressed body ends before its end")
            done = True
        except TimeoutError as exc:
            raise _Reject(408, f"body not received within {cfg.read_timeout:g} s") from exc
        except zlib.error as exc:
            raise _Reject(400, f"compressed body could not be inflated: {exc}") from exc
        except http_exceptions.HttpProcessingError as exc:
            raise _Reject(400, f"body could not be read: {exc.message}") from exc
        finally:
            if not done:
                self.budget.give(body.size)
        return body.take(), body.size

    def _admit(self, have: int, more: int) -> None:
        """Take ``more`` bytes of a body from the budgets, or raise the reply."""
        cfg = self.cfg
        if have + more > cfg.max_body:
            raise _Reject(413, f"body larger than {cfg.max_body} bytes")
        if not self.budget.take(more):
            n = self.stats.inc("http_body_budget_full")
            log_counted(
                self._log,
                n,
                "warning",
                "bodies in memory at the budget; a request told to retry",
                max_body_memory=cfg.max_body_memory,
                times=n,
            )
            raise _Reject(503, "receiver busy (bodies in memory at budget)", retry_after=1)

    async def _serve_json(
        self, request: web.BaseRequest, path: str, body: bytes, received: datetime
    ) -> web.StreamResponse:
        if not body.strip():
            return self._reject(400, "empty body", None, request)
        try:
            data, cut = await self.offload.json(body)
        except PayloadError as exc:
            return self._reject(400, exc.message, None, request)
        try:
            data = expect_object(data, "body")
        except PayloadError as exc:
            return self._reject(400, exc.message, None, request)
        name, cam = self._camera_for(path, request.remote, device_of(data))
        try:
            read = parse_post(
                data,
                camera=name,
                received=received,
                fields=cam.http.fields if cam else None,
                max_picture=self.cfg.max_body,
                problems=cut,
            )
        except PayloadError as exc:
            return self._reject(400, exc.message, name, request)
        return await self._accept(read, request)

    async def _serve_get(
        self, request: web.BaseRequest, path: str, params: str, received: datetime
    ) -> web.StreamResponse:
        values = parse_get_params(params)
        if not values:
            name, _ = self._camera_for(path, request.remote, None)
            self.stats.inc("http_empty_get", name)
            return _reply({"result": "200", "note": "no parameters; nothing recorded"})
        return await self._serve_params(request, path, values, received)

    async def _serve_params(
        self, request: web.BaseRequest, path: str, values: dict[str, str], received: datetime
    ) -> web.StreamResponse:
        name, cam = self._camera_for(path, request.remote, device_of(values))
        read = parse_get(
            values, camera=name, received=received, fields=cam.http.fields if cam else None
        )
        return await self._accept(read, request)

    async def _accept(self, read: Read, request: web.BaseRequest) -> web.StreamResponse:
        # 200 only once the event is on the bus: its pictures saved (off the loop); with a
        # store, once it is committed (to the database or the store's spool) too.
        try:
            event = await self._submit(read)
        except StoreUnavailable as exc:
            return self._reject(503, f"event not stored: {exc}", read.event.camera, request, 5)
        self.stats.inc("http_accepted", event.camera)
        reply: dict[str, Any] = {"result": "200", "id": event.id}
        # What could not be read is said to the sender too; the read went out anyway.
        problems = [str(p) for p in event.details.get("problems", ())]
        problems += [f"{i.role}: {i.missing}" for i in event.images if i.missing]
        if problems:
            reply["problems"] = problems
        return _reply(reply)
