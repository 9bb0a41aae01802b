"""``/metrics`` (Prometheus text format) and ``/healthz`` (JSON) for operators.

``[metrics] listen = "127.0.0.1:9108"`` turns it on. Per camera: whether each
transport is connected, when the last event came, events, pictures saved and
missing, reconnects and drops; and every counter lprmeta keeps, as
``lprmeta_counter_total{camera, name}``, so nothing counted is out of sight.

``/healthz`` answers 200 with ``"status": "ok"`` when every camera is
available and every sink that connects somewhere (MQTT) is connected, and
``"degraded"`` (still 200: the daemon itself is fine) otherwise, with the
detail per camera and sink. It answers 503 with ``"failing"`` the moment any
input, sink or background task is not running (it failed and waits to be
restarted), naming the part and the error in ``problems``; ``parts`` lists
every part with its failures so far, so a part that failed and recovered is
visible too. 503 with ``"stopping"`` once the daemon is stopping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from .config import MetricsConfig
from .errors import ListenError
from .health import Health
from .log import get_logger
from .stats import Stats

__all__ = ["MetricsServer", "health_report", "render_metrics", "start_site"]


async def start_site(app: web.Application, host: str, port: int, what: str) -> web.AppRunner:
    """Serve ``app`` on host:port (port 0: any free one); ListenError when it cannot."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ListenError(
            exc.errno, f"{what} cannot listen on {host}:{port}: {exc.strerror}"
        ) from exc
    return runner


def bound_port(runner: web.AppRunner, configured: int) -> int:
    return int(runner.addresses[0][1]) if runner.addresses else configured


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]
) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{text}}} {value:g}" if text else f"{name} {value:g}")
    return lines


def render_metrics(health: Health, stats: Stats) -> str:
    counters = stats.snapshot()
    cameras = health.cameras()
    lines = _family("lprmeta_up", "gauge", "1 while the daemon runs.", [({}, 1)])
    lines += _family(
        "lprmeta_camera_available",
        "gauge",
        "1 when every transport lprmeta connects to for this camera is up.",
        (({"camera": c}, float(health.available(c))) for c in cameras),
    )
    lines += _family(
        "lprmeta_camera_connected",
        "gauge",
        "1 when this transport of the camera is up.",
        (
            ({"camera": c, "transport": t, "state": s.state}, float(s.state == "up"))
            for c in cameras
            for t, s in health.transports.get(c, {}).items()
        ),
    )
    lines += _family(
        "lprmeta_sink_connected",
        "gauge",
        "1 when this sink is connected to where it sends (the MQTT broker).",
        (
            ({"sink": n, "state": s.state}, float(s.state == "up"))
            for n, s in sorted(health.sinks.items())
        ),
    )
    parts = health.supervisor.parts.values() if health.supervisor is not None else ()
    lines += _family(
        "lprmeta_part_running",
        "gauge",
        "1 while this input, sink or background task runs (0: failed, restarting).",
        (
            ({"part": p.name, "kind": p.kind}, float(p.state in ("running", "stopped")))
            for p in parts
        ),
    )
    lines += _family(
        "lprmeta_part_failures_total",
        "counter",
        "Unexpected failures of this part (each restarted it).",
        (({"part": p.name, "kind": p.kind}, p.failures) for p in parts),
    )
    lines += _family(
        "lprmeta_camera_last_event_timestamp_seconds",
        "gauge",
        "When the camera's last event arrived (Unix time).",
        (({"camera": c}, health.last_event[c]) for c in cameras if c in health.last_event),
    )
    per_camera = [
        ("lprmeta_events_total", "Events emitted.", ("emitted",)),
        ("lprmeta_pictures_saved_total", "Pictures saved.", ("pictures_saved",)),
        (
            "lprmeta_pictures_missing_total",
            "Pictures an event had to go without (fetch failed, refused, not saved).",
            ("pictures_missing", "pictures_refused", "pictures_unsaved"),
        ),
        ("lprmeta_reconnects_total", "Connections to the camera re-made.", ("reconnects",)),
    ]
    for name, help_text, keys in per_camera:
        lines += _family(
            name,
            "counter",
            help_text,
            (({"camera": c}, sum(counters.get(c, {}).get(k, 0) for k in keys)) for c in cameras),
        )
    lines += _family(
        "lprmeta_dropped_total",
        "counter",
        "Events dropped for a sink whose queue was full.",
        (
            ({"camera": c, "sink": k.partition(":")[2]}, v)
            for c, values in counters.items()
            for k, v in values.items()
            if k.startswith("dropped:")
        ),
    )
    lines += _family(
        "lprmeta_counter_total",
        "counter",
        "Every counter lprmeta keeps, by camera (* for none in particular) and name.",
        (
            ({"camera": c, "name": k}, v)
            for c, values in sorted(counters.items())
            for k, v in sorted(values.items())
        ),
    )
    return "\n".join(lines) + "\n"


class MetricsServer:
    def __init__(
        self,
        cfg: MetricsConfig,
        *,
        health: Health,
        stats: Stats,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.cfg = cfg
        self.health = health
        self.stats = stats
        self._stopping = stopping
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._log = get_logger("lprmeta.metrics")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self._runner = await start_site(app, self.cfg.host, self.cfg.port, "metrics")
        self.port = bound_port(self._runner, self.cfg.port)
        self._log.info("metrics listening", host=self.cfg.host, port=self.port)

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            text=render_metrics(self.health, self.stats),
            content_type="text/plain",
            charset="utf-8",
            headers={"Cache-Control": "no-store"},
        )

    async def _healthz(self, _request: web.Request) -> web.Response:
        body = health_report(self.health, self.stats, stopping=self._stopping())
        status = 503 if body["status"] in ("stopping", "failing") else 200
        return web.json_response(body, status=status)


def health_report(health: Health, stats: Stats, *, stopping: bool) -> dict[str, Any]:
    """``/healthz``'s body (the web page's cameras page shows it too)."""
    cameras = health.snapshot(stats.snapshot())
    sinks = health.sinks_snapshot()
    degraded = [name for name, c in cameras.items() if not c["available"]]
    degraded += [name for name, s in sinks.items() if s["state"] != "up"]
    problems = health.problems()
    status = "stopping" if stopping else "failing" if problems else "degraded" if degraded else "ok"
    return {
        "status": status,
        "uptime_seconds": round(time.time() - health.started, 1),
        "problems": problems,
        "cameras": cameras,
        "sinks": sinks,
        "parts": health.parts(),
        "unavailable": degraded,
    }
