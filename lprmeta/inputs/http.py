"""The HTTP receiver: cameras POST JSON (or GET with the plate in the URL) to us.

Owns the aiohttp server, credentials, limits, and which camera a request
belongs to; parsing is :mod:`lprmeta.protocol.http`'s.

* Which camera: the request path (``/lpr/<name>`` or ``cameras.http.path``,
  longest match; the GET shape without ``?`` glues parameters onto it), else
  the source address matched to a camera's ``host``, else the body's
  ``device`` field matched to a camera name; an unknown sender is accepted and
  labelled ``http-<address>``, never lost.
* Replies: 200 only once the event is on the bus. A rejected request gets a
  4xx whose body says why, is counted (``http_rejected:<status>``) and emits
  nothing: 400 malformed JSON or base64, 401 credentials, 413 body too large,
  408 body too slow, 415 content type.
* Credentials: HTTP Basic, as the camera's web UI offers; compared in
  constant time (``hmac.compare_digest`` on both parts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from ..config import CameraConfig, Config, HttpConfig
from ..errors import PayloadError
from ..events import Event
from ..log import get_logger
from ..protocol.auth import check_basic
from ..protocol.http import (
    decode_body,
    device_of,
    parse_get,
    parse_get_params,
    parse_post,
    split_target,
)
from ..stats import Stats
from ..storage import safe_part

__all__ = ["HttpInput"]

MAX_READING = 64  # request bodies read at once (each held whole in memory)
_JSON_TYPES = {"application/json", "text/json", "text/plain", "application/octet-stream", ""}
_FORM = "application/x-www-form-urlencoded"


class HttpInput:
    def __init__(
        self,
        config: Config,
        *,
        deliver: Callable[[Event], None],
        stats: Stats,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        assert config.http is not None
        self.cfg: HttpConfig = config.http
        self.cameras = config.cameras
        self.name = "http"
        self._deliver = deliver
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
        self._runner: web.AppRunner | None = None
        self._unknown_logged: set[str] = set()
        self.port: int | None = None
        self.inflight = 0
        self._reading = asyncio.Semaphore(MAX_READING)
        self._idle = asyncio.Event()
        self._idle.set()

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=self.cfg.max_body)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # aiohttp closes a connection that has not delivered a whole request within its
        # keep-alive timeout, counted from the connection's start or its last response:
        # with read_timeout there, a client dribbling headers (slow-loris) is cut off too.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, keepalive_timeout=self.cfg.read_timeout
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.cfg.host, self.cfg.port, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise OSError(
                exc.errno,
                f"HTTP receiver cannot listen on {self.cfg.host}:{self.cfg.port}: {exc.strerror}",
            ) from exc
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.cfg.port
        self._log.info(
            "HTTP receiver listening",
            host=self.cfg.host,
            port=self.port,
            auth=bool(self.cfg.username),
        )

    async def run(self) -> None:
        await asyncio.Event().wait()  # the server runs on its own; this only holds the slot

    async def aclose(self) -> None:
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
        self, status: int, reason: str, camera: str | None, request: web.Request
    ) -> web.Response:
        n = self.stats.inc(f"http_rejected:{status}", camera or "*")
        level = "warning" if n == 1 or n % 100 == 0 else "debug"
        getattr(self._log, level)(
            "HTTP request rejected",
            status=status,
            reason=reason,
            camera=camera,
            peer=request.remote,
            path=request.path,
            rejected=n,
        )
        headers = {"WWW-Authenticate": 'Basic realm="lprmeta"'} if status == 401 else None
        return web.json_response(
            {"result": str(status), "error": reason}, status=status, headers=headers
        )

    def _authorized(self, request: web.Request) -> bool:
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

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.inflight += 1
        self._idle.clear()
        try:
            return await self._serve(request)
        finally:
            self.inflight -= 1
            if self.inflight == 0:
                self._idle.set()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        received = self._now()
        path, params = split_target(request.raw_path)
        if not self._authorized(request):
            return self._reject(401, "credentials required", None, request)
        if request.method == "GET":
            return self._serve_get(request, path, params, received)
        if request.method not in ("POST", "PUT"):
            return self._reject(
                405, f"method {request.method} not accepted; POST or GET", None, request
            )
        ctype = request.content_type.lower() if request.headers.get("Content-Type") else ""
        if ctype not in _JSON_TYPES and ctype != _FORM:
            return self._reject(
                415, f"content type {ctype!r} not accepted; send application/json", None, request
            )
        try:
            # At most MAX_READING bodies are read at once: each is held whole in memory
            # (up to max_body); the others wait, their bytes held back by flow control.
            async with asyncio.timeout(self.cfg.read_timeout), self._reading:
                body = await request.read()
        except (ConnectionError, aiohttp.ClientPayloadError) as exc:
            # The camera hung up mid-body: nothing to answer, nothing emitted.
            n = self.stats.inc("http_aborted")
            if n == 1 or n % 100 == 0:
                self._log.warning(
                    "client disconnected before its body arrived",
                    peer=request.remote,
                    path=request.path,
                    error=type(exc).__name__,
                    aborted=n,
                )
            # Nobody is left to read a reply; returning (not raising) keeps aiohttp from
            # logging an error for what was counted and reported just now.
            return web.Response(status=400, text="client disconnected mid-body")
        except web.HTTPRequestEntityTooLarge:
            return self._reject(413, f"body larger than {self.cfg.max_body} bytes", None, request)
        except TimeoutError:
            return self._reject(
                408, f"body not received within {self.cfg.read_timeout:g} s", None, request
            )
        if ctype == _FORM:
            return self._serve_params(
                request, path, parse_get_params(body.decode("utf-8", "replace")), received
            )
        try:
            data = decode_body(body)
        except PayloadError as exc:
            return self._reject(400, exc.message, None, request)
        name, cam = self._camera_for(path, request.remote, device_of(data))
        try:
            event = parse_post(
                data,
                camera=name,
                received=received,
                fields=cam.http.fields if cam else None,
                max_picture=self.cfg.max_body,
            )
        except PayloadError as exc:
            return self._reject(400, exc.message, name, request)
        return self._accept(event)

    def _serve_get(
        self, request: web.Request, path: str, params: str, received: datetime
    ) -> web.StreamResponse:
        values = parse_get_params(params)
        if not values:
            name, _ = self._camera_for(path, request.remote, None)
            self.stats.inc("http_empty_get", name)
            return web.json_response({"result": "200", "note": "no parameters; nothing recorded"})
        return self._serve_params(request, path, values, received)

    def _serve_params(
        self, request: web.Request, path: str, values: dict[str, str], received: datetime
    ) -> web.StreamResponse:
        name, cam = self._camera_for(path, request.remote, device_of(values))
        event = parse_get(
            values, camera=name, received=received, fields=cam.http.fields if cam else None
        )
        return self._accept(event)

    def _accept(self, event: Event) -> web.StreamResponse:
        self._deliver(event)  # saves pictures, puts it on the bus
        self.stats.inc("http_accepted", event.camera)
        return web.json_response({"result": "200", "id": event.id})
