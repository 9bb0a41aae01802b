"""Per camera: the state of each transport and when its last event came.

The inputs report their connection state here as it changes (the same changes
their logs announce once each); the daemon reports every event. ``/healthz``,
``/metrics`` and the MQTT availability topics read it, so an operator can
alert when a camera goes quiet or a transport goes down.

States: ``connecting`` (not up yet), ``up``, ``down``, and the reasons a
connection is not being retried normally: ``login-rejected``, ``auth-failed``,
``no-metadata``, ``not-responding``. Sinks that connect somewhere (MQTT) report
their state too. An HTTP camera is ``waiting`` until its
first push, then ``up`` (it is the camera that connects: its last event time
says whether it still does).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .config import CameraConfig

if TYPE_CHECKING:
    from .supervisor import Supervisor

__all__ = ["Health", "TransportState", "iso_time"]


@dataclass
class TransportState:
    state: str
    since: float  # time.time()
    reason: str | None = None  # why it is down: "ConnectError", "protocol", ...


class Health:
    def __init__(self, cameras: Iterable[CameraConfig]) -> None:
        self.transports: dict[str, dict[str, TransportState]] = {}
        self.last_event: dict[str, float] = {}
        # Sinks that connect somewhere (MQTT): "connecting", "up", "down".
        self.sinks: dict[str, TransportState] = {}
        self._listeners: list[Callable[[str], None]] = []
        self._transport_listeners: list[Callable[[str, str], None]] = []
        self._identity_listeners: list[Callable[[str], None]] = []
        # What a camera said it is (ONVIF): manufacturer, model, firmware, serial.
        self.devices: dict[str, dict[str, str]] = {}
        # Set by the daemon: the supervised parts (inputs, sinks, tasks) and their state.
        self.supervisor: Supervisor | None = None
        # Worker processes' parts (``lprmeta run --workers``), as each last reported them.
        self.remote_parts: dict[str, dict[str, dict[str, Any]]] = {}
        now = self.started = time.time()
        for cam in cameras:
            self.transports[cam.name] = {
                t: TransportState("waiting" if t == "http" else "connecting", now)
                for t in sorted(cam.transports)
            }

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(camera)`` when a camera's availability may have changed."""
        self._listeners.append(listener)

    def on_identity(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(camera)`` when a camera has said what it is."""
        self._identity_listeners.append(listener)

    def identify(self, camera: str, **info: str | None) -> None:
        known = {k: v for k, v in info.items() if v}
        if known and self.devices.get(camera) != known:
            self.devices[camera] = known
            for listener in self._identity_listeners:
                listener(camera)

    def on_transport_change(self, listener: Callable[[str, str], None]) -> None:
        """Call ``listener(camera, transport)`` whenever a transport's state changes."""
        self._transport_listeners.append(listener)

    def set(self, camera: str, transport: str, state: str) -> None:
        """A transport's state; ``down:ConnectError`` and the like count as ``down``."""
        state, _, reason = state.partition(":")
        current = self.transports.setdefault(camera, {}).get(transport)
        if current is not None and current.state == state:
            current.reason = reason or current.reason  # the newest reason, same since
            return
        before = self.available(camera)
        self.transports[camera][transport] = TransportState(state, time.time(), reason or None)
        for on_transport in self._transport_listeners:
            on_transport(camera, transport)
        if self.available(camera) != before:
            for listener in self._listeners:
                listener(camera)

    def set_sink(self, sink: str, state: str) -> None:
        current = self.sinks.get(sink)
        if current is None or current.state != state:
            self.sinks[sink] = TransportState(state, time.time())

    def sinks_snapshot(self) -> dict[str, dict[str, str]]:
        return {n: {"state": s.state, "since": iso_time(s.since)} for n, s in self.sinks.items()}

    def saw_event(self, camera: str, source: str) -> None:
        self.last_event[camera] = time.time()
        state = self.transports.get(camera, {}).get(source)
        if source == "http" and (state is None or state.state != "up"):
            self.set(camera, "http", "up")

    def available(self, camera: str) -> bool:
        """Every transport lprmeta connects to (TCP, RTSP) is up; a push-only camera is
        available while the daemon runs."""
        pulled = [s for t, s in self.transports.get(camera, {}).items() if t != "http"]
        return all(s.state == "up" for s in pulled)

    def parts(self) -> dict[str, dict[str, Any]]:
        sup = self.supervisor
        out = {n: p.to_json() for n, p in sup.parts.items()} if sup is not None else {}
        for worker, parts in self.remote_parts.items():
            out.update({f"{worker}/{name}": part for name, part in parts.items()})
        return out

    def problems(self) -> list[str]:
        """Parts that are not running, in words; empty when all run."""
        out = self.supervisor.problems() if self.supervisor is not None else []
        for worker, parts in self.remote_parts.items():
            out += [
                f"{part['kind']} {worker}/{name} is {part['state']}"
                + (f" after {part['last_error']}" if part.get("last_error") else "")
                for name, part in parts.items()
                if part["state"] not in ("running", "stopped")
            ]
        return out

    def absorb_remote(self, worker: str, parts: dict[str, dict[str, Any]]) -> None:
        """A worker's supervised parts, as it reports them once a second."""
        self.remote_parts[worker] = parts

    def forget_remote(self, worker: str) -> None:
        self.remote_parts.pop(worker, None)

    def cameras(self) -> list[str]:
        return sorted(set(self.transports) | set(self.last_event))

    def snapshot(self, counters: dict[str, dict[str, int]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for camera in self.cameras():
            c = counters.get(camera, {})
            last = self.last_event.get(camera)
            out[camera] = {
                "available": self.available(camera),
                "transports": {
                    t: {"state": s.state, "since": iso_time(s.since)}
                    | ({"reason": s.reason} if s.reason else {})
                    for t, s in self.transports.get(camera, {}).items()
                },
                "last_event": iso_time(last) if last is not None else None,
                "events": c.get("emitted", 0),
                "pictures_saved": c.get("pictures_saved", 0),
                "pictures_missing": c.get("pictures_missing", 0)
                + c.get("pictures_unsaved", 0)
                + c.get("pictures_refused", 0),
                "reconnects": c.get("reconnects", 0),
                "dropped": sum(v for k, v in c.items() if k.startswith("dropped:")),
            }
        return out


def iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
