"""Home Assistant MQTT discovery: what lprmeta announces, and the messages behind it.

Pure: topics and payloads only (the MQTT sink publishes them). Follows Home
Assistant's MQTT discovery documentation (``integrations/mqtt`` "MQTT
Discovery", and each platform's page: ``event.mqtt``, ``sensor.mqtt``,
``image.mqtt``, ``binary_sensor.mqtt``).

Discovery topics are ``<discovery_prefix>/<component>/<node_id>/<object_id>/config``
with ``node_id`` the daemon's client id and ``object_id`` ``<camera>_<entity>``,
both reduced to the characters Home Assistant allows (``[a-zA-Z0-9_-]``) by
:func:`safe_id`, stable across restarts. One device per camera (``via_device``
the daemon) and one for the daemon. Per camera:

* ``event`` (stateless: every read fires, the same plate twice included), with
  ``event_types`` for every kind of event, ``plate_listed`` for a plate on one of
  the configured lists; the plate, lists, direction, confidence as attributes;
* ``sensor`` last plate (the event's fields as JSON attributes);
* ``image``: the last read's picture (the plate crop, or the full picture);
* ``binary_sensor`` connectivity per transport (TCP, RTSP, HTTP, ONVIF events);
* ``sensor`` reads today and pictures missing today (``state_class: total_increasing``).

Availability: every entity of a camera lists the camera's status topic and the
daemon's (its last will), ``availability_mode: all``, so a dead daemon makes
them all unavailable. The connectivity sensors are the exception: they list
the daemon's topic only, because showing a camera that is down is their job.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ..events import Kind

__all__ = ["EVENT_TYPES", "Discovery", "safe_id"]

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
# Every kind of event lprmeta emits, and a plate on a configured list.
EVENT_TYPES = ("plate", "plate_listed", *(k.value for k in Kind if k is not Kind.PLATE))
TRANSPORT_NAMES = {"tcp": "TCP", "rtsp": "RTSP", "http": "HTTP", "onvif": "ONVIF events"}
DEVICE_INFO = ("manufacturer", "model", "sw_version", "serial_number")


def _sw_version() -> str:
    try:
        return version("lprmeta")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0+unknown"


__version__ = _sw_version()


def safe_id(name: str) -> str:
    """``name`` in the characters a discovery topic and unique id allow. A name that had
    others gets a short hash of itself appended, so that ``gate 1`` and ``gate_1`` stay
    two ids, and the same name always gives the same id."""
    cleaned = _UNSAFE.sub("_", name)
    if cleaned == name and name:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{cleaned}_{digest}" if cleaned.strip("_") else f"x_{digest}"


@dataclass(frozen=True)
class Discovery:
    prefix: str  # lprmeta's topic prefix
    discovery_prefix: str
    client_id: str
    daemon_topic: str  # the daemon's availability topic (its last will)
    cameras: Mapping[str, frozenset[str]]  # camera -> its transports
    picture: str = "plate"  # which picture the image entity shows: "plate" or "full"
    node: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "node", safe_id(self.client_id))

    # ----------------------------------------------------------------- state topics

    def state(self, camera: str, what: str) -> str:
        return f"{self.prefix}/{camera}/ha/{what}"

    def status(self, camera: str) -> str:
        return f"{self.prefix}/{camera}/status"

    # ----------------------------------------------------------------- discovery

    def config_topic(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node}/{object_id}/config"

    @property
    def config_filter(self) -> str:
        """Every discovery config this daemon may have published, as a subscription."""
        return f"{self.discovery_prefix}/+/{self.node}/+/config"

    def _origin(self) -> dict[str, str]:
        return {"name": "lprmeta", "sw_version": __version__}

    def _daemon_device(self) -> dict[str, Any]:
        return {
            "identifiers": [self.node],
            "name": f"lprmeta {self.client_id}",
            "manufacturer": "lprmeta",
            "model": "LPR event daemon",
            "sw_version": __version__,
        }

    def _camera_device(self, camera: str, known: Mapping[str, str]) -> dict[str, Any]:
        """The camera's device: what it said it is (ONVIF), where it said it."""
        return {
            "identifiers": [f"{self.node}_{safe_id(camera)}"],
            "name": camera,
            "model": "LPR camera",
            **{k: v for k, v in known.items() if k in DEVICE_INFO},
            "via_device": self.node,
        }

    def configs(
        self, devices: Mapping[str, Mapping[str, str]] | None = None
    ) -> dict[str, dict[str, Any]]:
        """Topic -> discovery config, for the daemon and every camera (``devices``: what
        cameras said they are)."""
        out: dict[str, dict[str, Any]] = {}
        running = f"{self.node}_running"
        out[self.config_topic("binary_sensor", running)] = {
            "name": "Running",
            "unique_id": running,
            "device_class": "running",
            "entity_category": "diagnostic",
            "state_topic": self.daemon_topic,
            "payload_on": "online",
            "payload_off": "offline",
            "device": self._daemon_device(),
            "origin": self._origin(),
        }
        for camera in sorted(self.cameras):
            out.update(self.camera_configs(camera, (devices or {}).get(camera, {})))
        return out

    def camera_configs(
        self, camera: str, known: Mapping[str, str] | None = None
    ) -> dict[str, dict[str, Any]]:
        transports = self.cameras.get(camera, frozenset())
        cam = safe_id(camera)
        both = {
            "availability": [{"topic": self.daemon_topic}, {"topic": self.status(camera)}],
            "availability_mode": "all",
        }
        common = {"device": self._camera_device(camera, known or {}), "origin": self._origin()}

        def entity(component: str, key: str, **config: Any) -> tuple[str, dict[str, Any]]:
            object_id = f"{cam}_{key}"
            body = {"unique_id": f"{self.node}_{object_id}", **config, **common}
            return self.config_topic(component, object_id), body

        items = [
            entity(
                "event",
                "read",
                name="Read",
                icon="mdi:car-search",
                state_topic=self.state(camera, "event"),
                event_types=list(EVENT_TYPES),
                **both,
            ),
            entity(
                "sensor",
                "last_plate",
                name="Last plate",
                icon="mdi:card-text-outline",
                # One message: the event's fields, the plate picked out as the state.
                state_topic=self.state(camera, "last_plate"),
                value_template="{{ value_json.plate }}",
                json_attributes_topic=self.state(camera, "last_plate"),
                **both,
            ),
            entity(
                "image",
                "picture",
                name="Last picture",
                image_topic=self.state(camera, "picture"),
                content_type="image/jpeg",
                **both,
            ),
            entity(
                "sensor",
                "reads_today",
                name="Reads today",
                icon="mdi:counter",
                state_topic=self.state(camera, "today"),
                value_template="{{ value_json.reads }}",
                state_class="total_increasing",
                unit_of_measurement="reads",
                **both,
            ),
            entity(
                "sensor",
                "pictures_missing_today",
                name="Pictures missing today",
                icon="mdi:image-off-outline",
                entity_category="diagnostic",
                state_topic=self.state(camera, "today"),
                value_template="{{ value_json.pictures_missing }}",
                state_class="total_increasing",
                unit_of_measurement="pictures",
                **both,
            ),
        ]
        for transport in sorted(transports):
            items.append(
                entity(
                    "binary_sensor",
                    f"{transport}_connected",
                    name=f"{TRANSPORT_NAMES.get(transport, transport)} connected",
                    device_class="connectivity",
                    entity_category="diagnostic",
                    state_topic=self.state(camera, f"connected/{transport}"),
                    availability=[{"topic": self.daemon_topic}],
                )
            )
        return dict(items)

    # ----------------------------------------------------------------- per event

    def event_payload(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The event entity's message for one event (the JSON line, parsed)."""
        kind = str(data.get("kind"))
        lists = [m.get("list") for m in data.get("matches") or () if isinstance(m, dict)]
        event_type = "plate_listed" if kind == "plate" and lists else kind
        if event_type not in EVENT_TYPES:
            event_type = "event"
        return {"event_type": event_type, **self.attributes(data), "lists": lists}

    def attributes(self, data: Mapping[str, Any]) -> dict[str, Any]:
        images = [i for i in data.get("images") or () if isinstance(i, dict)]
        return {
            "id": data.get("id"),
            "plate": data.get("plate"),
            "camera": data.get("camera"),
            "source": data.get("source"),
            "time": data.get("time"),
            "received": data.get("received"),
            "direction": data.get("direction"),
            "confidence": data.get("confidence"),
            "country": data.get("country"),
            "list": data.get("list"),
            "matches": data.get("matches") or [],
            "vehicle": data.get("vehicle"),
            "pictures": {str(i.get("role")): i.get("path") for i in images if i.get("path")},
        }

    def picture_path(self, data: Mapping[str, Any]) -> str | None:
        """The saved picture the image entity shows: the configured role first."""
        images = [i for i in data.get("images") or () if isinstance(i, dict) and i.get("path")]
        for image in images:
            if str(image.get("role", "")).startswith(self.picture):
                return str(image["path"])
        return str(images[0]["path"]) if images else None
