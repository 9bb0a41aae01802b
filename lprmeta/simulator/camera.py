"""A whole simulated camera: the transports of the guide, driven by one object.

:class:`SimulatedCamera` starts whichever parts it is given ports for (TCP
LPR port, RTSP metadata stream, web server with pictures and ONVIF, HTTP
pushes to a receiver) and sends each :class:`~.script.Read` over all of them,
as one camera configured for several transports would. Tests, ``lprmeta
simulate``, ``lprmeta demo`` and the benchmarks all use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ..protocol.tcp import COMM_COUNTING_POST, COMM_PARKING_POST
from .http import HttpPusher
from .rtsp import RtspCameraServer
from .script import Read, counting_post, parking_post
from .tcp import TcpCameraServer
from .web import CameraWebServer

__all__ = ["SentCounts", "SimulatedCamera"]


@dataclass
class SentCounts:
    """How many receivers got a read, per transport (for tests and benchmarks)."""

    tcp: int = 0
    rtsp: int = 0
    http: int = 0
    errors: list[str] = field(default_factory=list)


class SimulatedCamera:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        username: str = "admin",
        password: str = "sim-password",
        tcp_port: int | None = None,
        rtsp_port: int | None = None,
        web_port: int | None = None,
        http_target: str | None = None,
        http_username: str = "",
        http_password: str = "",
        http_era: str = "mixed",
        rtsp_auth: str = "digest",
        web_auth: str = "digest",
        session_timeout: int = 60,
        video: bool = False,
        mtu: int = 1200,
        onvif_flavour: str = "milesight",
    ) -> None:
        self.onvif_flavour = onvif_flavour
        self.tcp = (
            TcpCameraServer(host=host, port=tcp_port, username=username, password=password)
            if tcp_port is not None
            else None
        )
        self.rtsp = (
            RtspCameraServer(
                host=host,
                port=rtsp_port,
                username=username,
                password=password,
                auth=rtsp_auth,
                session_timeout=session_timeout,
                video=video,
                mtu=mtu,
            )
            if rtsp_port is not None
            else None
        )
        # RTSP notifications point at pictures on the web server: it comes with RTSP.
        self.web = (
            CameraWebServer(
                host=host, port=web_port or 0, username=username, password=password, auth=web_auth
            )
            if web_port is not None or rtsp_port is not None
            else None
        )
        self.pusher = (
            HttpPusher(http_target, username=http_username, password=http_password)
            if http_target
            else None
        )
        self.http_era = http_era
        self.sent = 0

    async def start(self) -> None:
        if self.tcp is not None:
            await self.tcp.start()
        if self.rtsp is not None:
            await self.rtsp.start()
        if self.web is not None:
            if self.rtsp is not None:
                self.web.rtsp_url = self.rtsp.url
            await self.web.start()
        if self.pusher is not None:
            await self.pusher.__aenter__()

    async def close(self) -> None:
        if self.pusher is not None:
            await self.pusher.__aexit__(None, None, None)
        for part in (self.rtsp, self.web, self.tcp):
            if part is not None:
                await part.close()

    async def __aenter__(self) -> SimulatedCamera:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def consumers(self) -> int:
        """Receivers connected now (TCP clients and playing RTSP sessions)."""
        return (len(self.tcp.clients) if self.tcp else 0) + (
            len(self.rtsp.playing) if self.rtsp else 0
        )

    async def send_read(
        self, read: Read, *, era: str | None = None, http_get: bool = False, glued: bool = False
    ) -> SentCounts:
        """One car passing: sent over every transport this camera has.

        Over HTTP it is a JSON POST in the chosen naming era, or with ``http_get`` a GET
        with the plate in the URL (``glued``: the guide's shape, without a ``?``)."""
        self.sent += 1
        out = SentCounts()
        if self.tcp is not None:
            out.tcp = await self.tcp.send_read(read)
        if self.rtsp is not None and self.web is not None:
            picture = read.plate_jpeg or read.full_jpeg
            if self.onvif_flavour == "profile-m-frames":
                picture = read.full_jpeg  # the crop travels inline; the scene by path
            elif self.onvif_flavour == "axis":
                picture = b""  # the plate picture travels inline
            path = self.web.publish(picture, read.time) if picture else None
            for doc in read.onvif_documents(self.onvif_flavour, path):
                out.rtsp = await self.rtsp.send_document(doc)
                # Event notifications go to event subscribers (PullPoint) too, as a real
                # camera's do; scene descriptions are the metadata track's only.
                if self.onvif_flavour != "profile-m-frames":
                    self.web.publish_event(doc)
        if self.pusher is not None:
            chosen = era or (
                self.http_era if self.http_era != "mixed" else ("old", "new")[self.sent % 2]
            )
            try:
                if http_get:
                    status = await self.pusher.push_get(read, glued=glued)
                else:
                    status, _ = await self.pusher.push_read(read, era=chosen)
                out.http = int(status == 200)
            except (OSError, TimeoutError, aiohttp.ClientError) as exc:
                out.errors.append(f"http: {exc}")
        return out

    async def send_posts(self, read: Read, *, cars: int = 1) -> None:
        """A parking and a counting post, over TCP and HTTP (RTSP carries none)."""
        posts: list[tuple[int, dict[str, Any]]] = [
            (COMM_PARKING_POST, parking_post(read)),
            (COMM_COUNTING_POST, counting_post(read.time, cars=cars)),
        ]
        for command, body in posts:
            if self.tcp is not None:
                await self.tcp.send_post(command, body)
            if self.pusher is not None:
                await self.pusher.post(body)
