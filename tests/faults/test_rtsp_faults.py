"""Fault matrix, RTSP and picture rows: what is emitted, and the witness camera is still
served while the RTSP camera, or its picture endpoint, misbehaves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web as aioweb
from structlog.testing import capture_logs

from lprmeta.simulator.rtsp import RtspCameraServer
from lprmeta.simulator.script import Read, ReadFactory
from lprmeta.simulator.web import CameraWebServer

from ..conftest import free_port, make_config
from .conftest import Events, running, witness


@pytest.fixture
async def camera() -> AsyncIterator[tuple[RtspCameraServer, CameraWebServer]]:
    rtsp = RtspCameraServer(port=free_port())
    web = CameraWebServer()
    await rtsp.start()
    await web.start()
    yield rtsp, web
    await rtsp.close()
    await web.close()


def rtsp_camera(rtsp: RtspCameraServer, web: CameraWebServer, **opts: Any) -> dict[str, Any]:
    return {
        "name": "faulty",
        "host": "127.0.0.1",
        "http_port": web.port,
        "password": "sim-password",
        "rtsp": {"url": rtsp.url, "backoff_initial": 0.1, "backoff_max": 0.5, **opts},
    }


async def send(rtsp: RtspCameraServer, web: CameraWebServer, read: Read, mtu: int = 1200) -> None:
    rtsp.mtu = mtu
    assert await rtsp.send_document(read.onvif_document(web.publish(read.plate_jpeg))) >= 1


async def plate(events: Events, name: str) -> Any:
    return await events.wait_for(lambda e: e.plate == name and e.camera == "faulty")


# ------------------------------------------------------------------------- RTSP rows


async def test_server_killed(camera: Any, tmp_path: Path) -> None:
    rtsp, web = camera
    async with witness() as w:
        config = make_config(tmp_path, cameras=[rtsp_camera(rtsp, web), w.config()])
        async with running(config) as events:
            await rtsp.wait_playing()
            await rtsp.close()
            await w.served(events)  # meanwhile, the others are served
            await rtsp.start()
            await rtsp.wait_playing(timeout=10)
            await send(rtsp, web, ReadFactory(seed=1).next(plate="REVIVED"))
            await plate(events, "REVIVED")


async def test_server_frozen(camera: Any, tmp_path: Path) -> None:
    rtsp, web = camera
    async with witness() as w:
        config = make_config(tmp_path, cameras=[rtsp_camera(rtsp, web, timeout=3.0), w.config()])
        with capture_logs() as logs:
            async with running(config) as events:
                await rtsp.wait_playing()
                # Playing for the daemon too (its open returns after the server's PLAY).
                while not any(r.get("state") == "up" and "stream" in r["event"] for r in logs):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
                rtsp.freeze()
                frozen = time.monotonic()
                await w.served(events)
                while not any(r.get("state") == "not-responding" for r in logs):
                    assert time.monotonic() - frozen < 3.0 + 1.0
                    await asyncio.sleep(0.05)
                await w.served(events)
                rtsp.thaw()
                await rtsp.wait_playing(timeout=10)
                await asyncio.sleep(0.3)
                await send(rtsp, web, ReadFactory(seed=2).next(plate="THAWED"))
                await plate(events, "THAWED")


async def test_server_restarted_with_a_new_session_id(camera: Any, tmp_path: Path) -> None:
    rtsp, web = camera
    async with witness() as w:
        config = make_config(tmp_path, cameras=[rtsp_camera(rtsp, web), w.config()])
        async with running(config) as events:
            await rtsp.wait_playing()
            (before,) = [s.id for s in rtsp.playing]
            await rtsp.close()
            restarted = RtspCameraServer(port=rtsp.port)
            await restarted.start()
            try:
                await restarted.wait_playing(timeout=10)
                (after,) = [s.id for s in restarted.playing]
                assert after != before
                await send(restarted, web, ReadFactory(seed=3).next(plate="NEWSESSION"))
                await plate(events, "NEWSESSION")
                await w.served(events)
            finally:
                await restarted.close()


async def test_describe_without_a_metadata_track(camera: Any, tmp_path: Path) -> None:
    rtsp, web = camera
    rtsp.faults.no_metadata_track = True
    async with witness() as w:
        config = make_config(tmp_path, cameras=[rtsp_camera(rtsp, web), w.config()])
        with capture_logs() as logs:
            async with running(config) as events:
                await w.served(events)
                await asyncio.sleep(0.5)
        errors = [r for r in logs if r.get("camera") == "faulty" and r["log_level"] == "error"]
        assert len(errors) == 1 and "no ONVIF metadata track" in errors[0]["event"]
        assert events.of("faulty") == []


async def test_camera_stops_mid_document(camera: Any, tmp_path: Path) -> None:
    rtsp, web = camera
    async with witness() as w:
        config = make_config(tmp_path, cameras=[rtsp_camera(rtsp, web), w.config()])
        async with running(config) as events:
            await rtsp.wait_playing()
            rtsp.faults.cut_next_document_after = 1
            factory = ReadFactory(seed=4)
            await send(rtsp, web, factory.next(plate="CUT"), mtu=100)
            await w.served(events)
            await send(rtsp, web, factory.next(plate="NEXT"), mtu=100)
            await plate(events, "NEXT")
            assert [e.plate for e in events.of("faulty")] == ["NEXT"]
            assert events.daemon.stats.get("partial_documents", "faulty") == 1


# ------------------------------------------------------------------------- picture rows


async def picture_missing_because(camera: Any, tmp_path: Path, *, expect: str, **opts: Any) -> None:
    """One read whose picture cannot be had: the event goes out anyway, the picture
    marked missing with the reason, and the witness is served meanwhile."""
    rtsp, web = camera
    async with witness() as w:
        config = make_config(tmp_path, cameras=[rtsp_camera(rtsp, web, **opts), w.config()])
        async with running(config) as events:
            await rtsp.wait_playing()
            started = time.monotonic()
            await send(rtsp, web, ReadFactory(seed=5).next(plate="NOPIC"))
            await w.served(events)
            event = await plate(events, "NOPIC")
            (image,) = event.images
            assert image.path is None and image.missing is not None
            assert image.missing.startswith(expect), image.missing
            assert image.url is not None and image.url.startswith(f"http://127.0.0.1:{web.port}/")
            # Never held beyond the deadline (plus a little for the loop).
            assert time.monotonic() - started < opts.get("picture_deadline", 2.0) + 1.0
            assert (
                events.daemon.stats.get("pictures_missing", "faulty")
                + events.daemon.stats.get("pictures_refused", "faulty")
                == 1
            )


async def test_picture_404(camera: Any, tmp_path: Path) -> None:
    camera[1].faults.status = 404
    await picture_missing_because(camera, tmp_path, expect="HTTP 404")


async def test_picture_endpoint_slower_than_the_deadline(camera: Any, tmp_path: Path) -> None:
    camera[1].faults.slow_seconds = 3.0
    await picture_missing_because(
        camera, tmp_path, expect="not fetched within 0.5 s", picture_deadline=0.5
    )


async def test_picture_that_is_not_a_jpeg(camera: Any, tmp_path: Path) -> None:
    camera[1].faults.not_jpeg = True
    await picture_missing_because(camera, tmp_path, expect="not a JPEG")


async def test_picture_redirect_to_another_host(camera: Any, tmp_path: Path) -> None:
    hits: list[str] = []

    async def elsewhere(request: aioweb.Request) -> aioweb.Response:
        hits.append(request.path)
        return aioweb.Response(body=b"\xff\xd8\xff stolen")

    app = aioweb.Application()
    app.router.add_get("/{tail:.*}", elsewhere)
    runner = aioweb.AppRunner(app)
    await runner.setup()
    await aioweb.TCPSite(runner, "127.0.0.2", 0).start()
    try:
        camera[1].faults.redirect_to = f"http://127.0.0.2:{runner.addresses[0][1]}/x.jpg"
        await picture_missing_because(
            camera, tmp_path, expect="refused: redirect to another host (127.0.0.2)"
        )
        assert hits == []
    finally:
        await runner.cleanup()


async def test_picture_larger_than_the_limit(camera: Any, tmp_path: Path) -> None:
    camera[1].faults.oversize = 3 * 1024 * 1024
    await picture_missing_because(
        camera, tmp_path, expect="larger than the limit of 1048576 bytes", max_picture=1048576
    )
