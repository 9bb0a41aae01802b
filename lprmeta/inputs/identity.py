"""Who an RTSP camera is, and where its stream is.

Owns the ONVIF side of an RTSP camera: the stream URI when ``rtsp.url`` is not
configured (asked of the camera's ONVIF service, its host replaced by the
configured one, credentials stripped), the model and firmware (once, best
effort, when the URL is configured), and what the firmware table says of them
(:mod:`lprmeta.firmware`). The RTSP input asks :meth:`CameraIdentity.stream_url`
before each connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..config import CameraConfig
from ..errors import ConnectError, TransportError
from ..firmware import check_features, recommendation
from ..protocol.rtsp import strip_userinfo
from .onvif import DeviceInfo, device_information, query_onvif

__all__ = ["CameraIdentity"]


class CameraIdentity:
    def __init__(
        self,
        camera: CameraConfig,
        *,
        features: list[str],
        log: Any,
        timeout: float,
        on_device: Callable[[DeviceInfo], None] | None = None,
    ) -> None:
        assert camera.rtsp is not None
        self.camera = camera
        self.url: str | None = camera.rtsp.url
        self.device: DeviceInfo | None = None
        self._features = features
        self._log = log
        self._timeout = timeout
        self._identified = False
        self._on_device = on_device
        self._task: asyncio.Task[None] | None = None

    async def stream_url(self) -> str:
        """The URL to open; asks ONVIF when none is configured (raises TransportError)."""
        cam = self.camera
        if self.url is not None:
            if not self._identified:
                self._identified = True
                self._task = asyncio.create_task(self._identify(), name=f"onvif:{cam.name}")
            return self.url
        info = await query_onvif(
            cam.host,
            cam.http_port,
            cam.username,
            cam.password.get(),
            timeout=max(5.0, self._timeout),
        )
        self._identified = True
        self._note_device(info.device, info.notes)
        if info.stream_uri is None:
            raise ConnectError("the camera's ONVIF service offers no stream URI")
        self.url = strip_userinfo(info.stream_uri)  # our credentials, not the camera's echo
        return self.url

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _identify(self) -> None:
        """Model and firmware, once, when the stream URL is configured (best effort)."""
        cam = self.camera
        try:
            device = await device_information(
                cam.host, cam.http_port, cam.username, cam.password.get(), timeout=10.0
            )
        except TransportError as exc:
            self._log.debug("camera model unknown: ONVIF not available", reason=str(exc))
            return
        self._note_device(device, ())

    def _note_device(self, device: DeviceInfo | None, notes: tuple[str, ...]) -> None:
        self.device = device
        for note in notes:
            self._log.info(note)
        if device is None:
            return
        if self._on_device is not None:
            self._on_device(device)
        self._log.info(
            "camera identified",
            manufacturer=device.manufacturer,
            model=device.model,
            firmware=device.firmware,
        )
        for warning in check_features(device.model, device.firmware, self._features):
            self._log.warning("feature not supported by this camera", detail=warning)
        advice = recommendation(device.model, device.firmware)
        if advice:
            self._log.info(advice)
