"""The query API over the event store (``[api] listen``), on its own port.

Endpoints (described in ``lprmeta/schema/openapi.json``, served at
``/api/openapi.json``; the tests check every answer against it):

* ``GET /api/events``: search, newest first, a page at a time (``next_cursor``);
* ``GET /api/events.csv``: the same search, every page, streamed as CSV;
* ``GET /api/events/{id}`` and ``GET /api/events/{id}/pictures/{role}``;
* ``GET /api/stream``: Server-Sent Events, one per event as it is stored;
* ``GET /api/cameras``: each configured camera's state, last event, counters, and
  its reads and missing pictures today;
* ``GET /api/health``: the daemon's own health (``/healthz``'s body);
* ``GET /api/lists``, ``POST /api/lists/{name}/plates`` (JSON ``plate``, ``label``,
  ``expires``) and ``DELETE /api/lists/{name}/plates?plate=...``: the plate lists,
  and edits of a list's file;
* ``GET /api/session``: the CSRF token the page sends with its edits.

The web page (:mod:`lprmeta.web`) is served here too: ``/``, ``/search``,
``/events/{id}``, ``/cameras``, ``/lists`` and ``/static/...``.

Credentials: with ``[api] password`` (Basic, with ``username``) or ``token``
(``Authorization: Bearer``) set, every endpoint and page requires one of them. A bad
filter is a 400 naming the parameter; every query runs on a worker thread with a
deadline (the event loop never waits on the database).

A request that changes something (POST, DELETE) must carry the CSRF token in
``X-CSRF-Token`` (``GET /api/session`` gives it; it changes when the daemon
restarts), unless it authenticates with the bearer token: a browser attaches
Basic credentials (and, on an open API, nothing at all) to a request another site
makes it send, but never a bearer token. Every answer carries a
Content-Security-Policy that allows scripts, styles and pictures from this server
only, and no inline script.
"""

from __future__ import annotations

import asyncio
import csv
import hmac
import io
import json
import mimetypes
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date, datetime
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import orjson
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from .config import ApiConfig
from .health import Health
from .lists import Entry
from .lists_files import ListEditError, ListFiles
from .log import get_logger, log_counted
from .metrics import bound_port, health_report, start_site
from .protocol.auth import check_basic
from .stats import Stats
from .store import queries
from .store.sink import StoreSink
from .web import CSP, PAGES, Assets, load_assets

__all__ = ["ApiServer", "openapi_document"]

_T = TypeVar("_T")
QUERY_TIMEOUT = 10.0
MAX_QUERIES = 8  # at once; more wait their turn
HEARTBEAT = 15.0  # seconds between SSE comments on an idle stream
TODAY_TTL = 5.0  # seconds the cameras' counts of today are reused
MAX_EDIT_BODY = 4096  # bytes of a list edit's JSON
CSV_COLUMNS = (
    "id",
    "received",
    "time",
    "camera",
    "source",
    "kind",
    "plate",
    "confidence",
    "country",
    "list",
    "direction",
    "speed_kmh",
    "pictures",
)
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def openapi_document() -> dict[str, Any]:
    """The shipped ``schema/openapi.json``, self-contained: its ``Event`` is the JSON
    line's own schema (``schema/event.schema.json``, embedded with its ``$id``)."""
    files = resources.files("lprmeta").joinpath("schema")
    doc: dict[str, Any] = json.loads(files.joinpath("openapi.json").read_text("utf-8"))
    event = json.loads(files.joinpath("event.schema.json").read_text("utf-8"))
    event.pop("$schema", None)
    event.pop("$id", None)
    doc["components"]["schemas"]["Event"] = _rebase(event, "#/components/schemas/Event")
    return doc


def _rebase(node: Any, base: str) -> Any:
    """The schema's own references (``#/$defs/...``) made to point where it now sits."""
    if isinstance(node, dict):
        return {
            k: base + v[1:]
            if k == "$ref" and isinstance(v, str) and v.startswith("#/")
            else _rebase(v, base)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(v, base) for v in node]
    return node


def _error(status: int, message: str, parameter: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if parameter is not None:
        body["parameter"] = parameter
    return web.json_response(body, status=status)


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text (a plate such as ``=1+2`` is not a formula)."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA) else text


class ApiServer:
    def __init__(
        self,
        cfg: ApiConfig,
        *,
        store: StoreSink,
        health: Health,
        stats: Stats,
        lists: ListFiles | None = None,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.health = health
        self.stats = stats
        self.lists = lists
        self._stopping = stopping
        self._csrf = secrets.token_urlsafe(32)
        self._assets: Assets | None = None
        self._today: tuple[float, date, dict[str, Any]] | None = None
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="lprmeta-api")
        self._turns = asyncio.Semaphore(MAX_QUERIES)
        self._streams: set[asyncio.Queue[bytes]] = set()
        self._closing = asyncio.Event()
        self._log = get_logger("lprmeta.api")

    # ----------------------------------------------------------------- lifecycle

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        r = app.router
        r.add_get("/api/events", self._events)
        r.add_get("/api/events.csv", self._csv)
        r.add_get("/api/events/{id}", self._event)
        r.add_get("/api/events/{id}/pictures/{role}", self._picture)
        r.add_get("/api/stream", self._stream)
        r.add_get("/api/cameras", self._cameras)
        r.add_get("/api/health", self._health)
        r.add_get("/api/lists", self._lists)
        r.add_post("/api/lists/{name}/plates", self._list_add)
        r.add_delete("/api/lists/{name}/plates", self._list_remove)
        r.add_get("/api/session", self._session)
        r.add_get("/api/openapi.json", self._openapi)
        for path in PAGES:
            r.add_get(path, partial(self._page, path=path))
        r.add_get("/static/{name}", self._static)
        r.add_get("/favicon.ico", self._favicon)
        return app

    async def start(self) -> None:
        self._assets = await asyncio.to_thread(load_assets)
        self._runner = await start_site(self.app(), self.cfg.host, self.cfg.port, "API")
        self.port = bound_port(self._runner, self.cfg.port)
        self._log.info(
            "API listening",
            host=self.cfg.host,
            port=self.port,
            web_page=f"http://{self.cfg.host}:{self.port}/",
        )
        if self.cfg.open and self.cfg.host not in ("127.0.0.1", "::1", "localhost"):
            self._log.warning(
                "the API and web page answer anyone who reaches this address: "
                "set [api] password or token",
                host=self.cfg.host,
            )

    async def aclose(self) -> None:
        self._closing.set()
        for queue in self._streams:  # b"": the end, so that open streams finish now
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(b"")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ----------------------------------------------------------------- plumbing

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        if not self.cfg.open and not self._authorized(header):
            self.stats.inc("api_unauthorized")
            return _secure(
                web.json_response(
                    {"error": "credentials required"},
                    status=401,
                    headers={"WWW-Authenticate": 'Basic realm="lprmeta", charset="UTF-8"'},
                )
            )
        if request.method not in ("GET", "HEAD", "OPTIONS") and not self._csrf_ok(request):
            self.stats.inc("api_csrf_refused")
            return _secure(
                _error(403, "CSRF token missing or wrong (GET /api/session gives the token)")
            )
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400:
                return _secure(_error(exc.status, exc.reason))
            raise
        except queries.FilterError as exc:
            return _secure(_error(400, exc.reason, exc.parameter))
        except ListEditError as exc:
            return _secure(_error(exc.status, exc.reason))
        except (SQLAlchemyError, TimeoutError) as exc:
            self.stats.inc("api_store_errors")
            self._log.warning("store query failed", error=f"{type(exc).__name__}: {exc}")
            return _secure(_error(503, "the store cannot answer now"))
        except Exception as exc:  # noqa: BLE001  # a bug here: one request fails, said once
            n = self.stats.inc("api_errors")
            log_counted(
                self._log,
                n,
                "error",
                "API request failed",
                path=request.path,
                error=f"{type(exc).__name__}: {exc}",
                errors=n,
            )
            return _secure(_error(500, "internal error (logged)"))
        return _secure(response)

    def _csrf_ok(self, request: web.Request) -> bool:
        scheme, _, _ = (request.headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() == "bearer" and self.cfg.token:
            return True  # checked by _authorized; a browser never sends it by itself
        given = request.headers.get("X-CSRF-Token", "")
        return hmac.compare_digest(given.encode(), self._csrf.encode())

    def _authorized(self, header: str | None) -> bool:
        if not header:
            return False
        token = self.cfg.token.get()
        scheme, _, value = header.strip().partition(" ")
        if token and scheme.lower() == "bearer":
            return hmac.compare_digest(value.strip().encode(), token.encode())
        password = self.cfg.password.get()
        return bool(password) and check_basic(header, self.cfg.username, password)

    async def _query(self, fn: Callable[[Any], _T]) -> _T:
        """``fn(connection)`` on a worker thread, within the deadline."""
        engine = self.store.engine
        if engine is None:
            raise TimeoutError("the store is not open")

        def job() -> _T:
            with engine.connect() as conn:
                return fn(conn)

        async with self._turns, asyncio.timeout(QUERY_TIMEOUT):
            return await asyncio.get_running_loop().run_in_executor(self._pool, job)

    # ----------------------------------------------------------------- endpoints

    async def _events(self, request: web.Request) -> web.Response:
        filters = queries.parse_filters(_params(request))
        body = await self._query(partial(_page_json, f=filters))  # the dump off the loop
        return web.Response(
            body=body, content_type="application/json", headers={"Cache-Control": "no-store"}
        )

    async def _event(self, request: web.Request) -> web.Response:
        event_id = request.match_info["id"]
        if len(event_id) > 64:
            return _error(400, "not an event id", "id")
        event = await self._query(partial(queries.get_event, event_id=event_id))
        if event is None:
            return _error(404, "no such event")
        return web.json_response(event, dumps=_dumps)

    async def _picture(self, request: web.Request) -> web.StreamResponse:
        event_id = request.match_info["id"]
        role = request.match_info["role"]
        if len(event_id) > 64 or len(role) > 64:
            return _error(400, "not an event id or picture role")
        pic = await self._query(partial(queries.get_picture, event_id=event_id, role=role))
        if pic is None:
            return _error(404, "no such picture")
        if pic.missing is not None or pic.path is None:
            return _error(410, f"picture missing: {pic.missing or 'not saved'}")
        path = Path(pic.path)
        etag = f'"{pic.sha256}"' if pic.sha256 else None
        if etag is not None and request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(self._pool, _read_picture, path, self.store.snapshot_root)
        if data is None:
            return _error(404, f"picture not on this daemon's disk (kept by {pic.origin})")
        if not data:
            return _error(410, "picture missing: the file is gone")
        headers = {"Cache-Control": "private, max-age=31536000, immutable"}
        if etag is not None:
            headers["ETag"] = etag
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return web.Response(body=data, content_type=kind, headers=headers)

    async def _csv(self, request: web.Request) -> web.StreamResponse:
        params = _params(request)
        params.pop("limit", None)
        filters = queries.parse_filters(params)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": 'attachment; filename="lprmeta-events.csv"',
                "Cache-Control": "no-store",
            }
        )
        current = replace(filters, limit=500)
        first = await self._query(partial(queries.search, f=current))
        await response.prepare(request)
        await response.write(_csv_rows(None, header=True))
        page = first
        while True:
            await response.write(_csv_rows(page.events))
            if page.next_cursor is None:
                break
            current = replace(current, cursor=queries.decode_cursor(page.next_cursor))
            page = await self._query(partial(queries.search, f=current))
        await response.write_eof()
        return response

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        queue = self.store.listen()
        self._streams.add(queue)
        self.stats.inc("api_streams")
        try:
            await response.write(b": lprmeta events as they are stored\nretry: 2000\n\n")
            while not self._closing.is_set():
                try:
                    line = await asyncio.wait_for(queue.get(), HEARTBEAT)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if not line:
                    break
                event_id = str(orjson.loads(line).get("id", "")).encode()
                data = line.rstrip(b"\n")
                await response.write(
                    b"event: event\nid: " + event_id + b"\ndata: " + data + b"\n\n"
                )
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._streams.discard(queue)
            self.store.unlisten(queue)
        return response

    async def _cameras(self, _request: web.Request) -> web.Response:
        states = self.health.snapshot(self.stats.snapshot())
        last = await self._query(partial(queries.last_events, cameras=list(states)))
        today = await self._today_counts(list(states))
        cameras = [
            {
                "name": name,
                **state,
                "last_stored": last.get(name),
                "today": today.get(name, {"reads": 0, "pictures_missing": 0}),
            }
            for name, state in states.items()
        ]
        return web.json_response(
            {"cameras": cameras}, dumps=_dumps, headers={"Cache-Control": "no-store"}
        )

    async def _today_counts(self, cameras: list[str]) -> dict[str, Any]:
        """Reads and missing pictures since the local midnight, per camera; reused for
        a few seconds (a page open on several screens polls it)."""
        loop = asyncio.get_running_loop()
        midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
        if self._today is not None:
            at, day, counts = self._today
            if day == midnight.date() and loop.time() - at < TODAY_TTL:
                return counts
        since = queries.to_us(midnight)
        counts = await self._query(partial(queries.today_counts, cameras=cameras, since_us=since))
        self._today = (loop.time(), midnight.date(), counts)
        return counts

    async def _openapi(self, _request: web.Request) -> web.Response:
        return web.json_response(openapi_document())

    async def _health(self, _request: web.Request) -> web.Response:
        body = health_report(self.health, self.stats, stopping=self._stopping())
        return web.json_response(body, dumps=_dumps, headers={"Cache-Control": "no-store"})

    async def _session(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"csrf_token": self._csrf, "lists_editable": self.lists is not None},
            headers={"Cache-Control": "no-store"},
        )

    # ----------------------------------------------------------------- plate lists

    def _list_files(self) -> ListFiles:
        if self.lists is None:
            raise ListEditError(404, "no plate lists here")
        return self.lists

    async def _lists(self, _request: web.Request) -> web.Response:
        lists = self.lists.describe() if self.lists is not None else []
        return web.json_response(
            {"lists": lists}, dumps=_dumps, headers={"Cache-Control": "no-store"}
        )

    async def _list_add(self, request: web.Request) -> web.Response:
        files = self._list_files()
        body = await _json_body(request)
        plate = body.get("plate")
        label = body.get("label")
        expires = body.get("expires")
        if not isinstance(plate, str):
            return _error(400, "plate is required (a string)", "plate")
        if label is not None and not isinstance(label, str):
            return _error(400, "label must be a string", "label")
        day = None
        if expires not in (None, ""):
            try:
                day = date.fromisoformat(str(expires))
            except ValueError:
                return _error(400, "expires must be a date YYYY-MM-DD", "expires")
        entry = Entry(plate.strip(), (label or "").strip() or None, day)
        await files.add(request.match_info["name"], entry)
        self.stats.inc("list_edits")
        return web.json_response({"list": request.match_info["name"], "added": entry.to_json()})

    async def _list_remove(self, request: web.Request) -> web.Response:
        files = self._list_files()
        plate = request.query.get("plate")
        if plate is None and request.can_read_body:
            plate = (await _json_body(request)).get("plate")
        if not isinstance(plate, str) or not plate.strip():
            return _error(400, "plate is required", "plate")
        await files.remove(request.match_info["name"], plate)
        self.stats.inc("list_edits")
        return web.json_response({"list": request.match_info["name"], "removed": plate})

    # ----------------------------------------------------------------- the web page

    async def _page(self, _request: web.Request, path: str) -> web.Response:
        assert self._assets is not None
        return self._assets.page(path)

    async def _static(self, request: web.Request) -> web.Response:
        assert self._assets is not None
        return self._assets.static(request)

    async def _favicon(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/static/icon.svg")


def _secure(response: web.StreamResponse) -> web.StreamResponse:
    """The headers every answer carries (a page may only run this server's scripts)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("X-Frame-Options", "DENY")
    return response


async def _json_body(request: web.Request) -> dict[str, Any]:
    """A small JSON object body, or a 4xx that says what is wrong with it."""
    if request.content_type != "application/json":
        raise ListEditError(415, "send JSON (Content-Type: application/json)")
    if request.content_length is not None and request.content_length > MAX_EDIT_BODY:
        raise ListEditError(413, f"body over {MAX_EDIT_BODY} bytes")
    data = await request.content.read(MAX_EDIT_BODY + 1)
    if len(data) > MAX_EDIT_BODY:
        raise ListEditError(413, f"body over {MAX_EDIT_BODY} bytes")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ListEditError(400, "body is not JSON") from None
    if not isinstance(body, dict):
        raise ListEditError(400, "body must be a JSON object")
    return body


def _params(request: web.Request) -> dict[str, str | list[str]]:
    out: dict[str, str | list[str]] = {}
    for key in request.query:
        values = request.query.getall(key)
        out[key] = values[0] if len(values) == 1 else list(values)
    return out


def _page_json(conn: Any, f: queries.Filters) -> bytes:
    page = queries.search(conn, f)
    return orjson.dumps({"events": page.events, "next_cursor": page.next_cursor}, default=str)


def _dumps(value: object) -> str:
    return orjson.dumps(value, default=str).decode()


def _csv_rows(events: list[dict[str, Any]] | None, *, header: bool = False) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    if header:
        writer.writerow(CSV_COLUMNS)
    for event in events or ():
        row = dict(event)
        row["pictures"] = ";".join(
            str(i.get("role")) for i in event.get("images") or () if i.get("missing") is None
        )
        writer.writerow([_cell(row.get(c)) for c in CSV_COLUMNS])
    return buf.getvalue().encode("utf-8")


def _read_picture(path: Path, root: Path | None) -> bytes | None:
    """The file's bytes (worker thread); None when it is not under this daemon's snapshot
    directory (a path from a shared database), b"" when it is gone."""
    if root is None or not path.resolve().is_relative_to(root):
        return None
    try:
        return path.read_bytes()
    except OSError:
        return b""
