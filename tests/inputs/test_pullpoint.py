"""ONVIF events by PullPoint, the fourth way in, against the simulated camera's event
service: reads through the metadata track's parser, renewal before termination, a new
subscription after a camera reboot, Unsubscribe on stop, and a camera that sends a car
both ways read once."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lprmeta.daemon import Daemon
from lprmeta.simulator.script import ReadFactory
from lprmeta.simulator.web import CameraWebServer

from ..conftest import make_config
from .rtsp_servers import PASSWORD
from .test_rtsp_input import next_event, sha_of, started


@pytest.fixture
async def camera_web() -> AsyncIterator[CameraWebServer]:
    server = CameraWebServer(password=PASSWORD)
    await server.start()
    yield server
    await server.close()


def pullpoint_camera(web: CameraWebServer, **events: Any) -> dict[str, Any]:
    return {
        "name": "gate-onvif",
        "host": "127.0.0.1",
        "http_port": web.port,
        "password": PASSWORD,
        "onvif_events": {"backoff_initial": 0.1, "backoff_max": 0.5, **events},
    }


async def until(check: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110  # polled: the simulator has no event for it
            await asyncio.sleep(0.05)


async def test_reads_renewal_reboot_and_unsubscribe(
    camera_web: CameraWebServer, tmp_path: Path
) -> None:
    web = camera_web
    config = make_config(
        tmp_path,
        bus={"dedup_window": 0},
        cameras=[pullpoint_camera(web, subscription=2, pull_timeout=1)],
    )
    factory = ReadFactory(seed=31, picture_bytes=8000)
    async with Daemon(config, stdout=io.BytesIO()) as d:
        sub = d.events()
        await until(lambda: len(web.subscriptions) == 1)
        # Milesight's notification (its picture fetched from the camera) and Profile M's.
        for flavour, plate in (("milesight", "PP0001"), ("profile-m-events", "PP0002")):
            read = factory.next(plate=plate)
            path = web.publish(read.plate_jpeg, read.time)
            (doc,) = read.onvif_documents(flavour, path)
            assert web.publish_event(doc) == 1
            ev = await next_event(sub)
            assert (ev.plate, ev.source.value, ev.camera) == (plate, "onvif", "gate-onvif")
            (img,) = ev.images
            assert img.missing is None
            assert sha_of(img.path) == hashlib.sha256(read.plate_jpeg).hexdigest()
        # Renewed before the 2 s the camera grants run out, several times, same subscription.
        await asyncio.sleep(4.5)
        assert web.stats.renewals >= 2
        assert web.stats.subscriptions == 1
        assert d.health.transports["gate-onvif"]["onvif"].state == "up"
        # The camera reboots: it has forgotten the subscription; lprmeta makes a new one.
        web.reboot()
        await until(lambda: len(web.subscriptions) == 1)
        assert web.stats.subscriptions == 2
        read = factory.next(plate="PP0003")
        (doc,) = read.onvif_documents("profile-m-events", None)
        web.publish_event(doc)
        assert (await next_event(sub)).plate == "PP0003"
        assert d.stats.get("onvif_subscriptions_lost", "gate-onvif") == 1
    # Stopped: the subscription is given back.
    assert web.stats.unsubscribed == 1
    assert web.subscriptions == {}


async def test_a_car_sent_on_the_metadata_track_and_by_pullpoint_is_read_once(
    camera_web: CameraWebServer, tmp_path: Path
) -> None:
    web = camera_web
    server = await started("sim")
    try:
        cam = pullpoint_camera(web)
        cam["rtsp"] = {"url": server.url, "backoff_initial": 0.1}
        config = make_config(tmp_path, cameras=[cam])  # the default merge window
        factory = ReadFactory(seed=32, picture_bytes=4000)
        async with Daemon(config, stdout=io.BytesIO()) as d:
            sub = d.events()
            await server.wait_playing()
            await until(lambda: len(web.subscriptions) == 1)
            read = factory.next(plate="BOTH01")
            (doc,) = read.onvif_documents("profile-m-events", None)
            await server.send(doc, mtu=1200)
            web.publish_event(doc)
            ev = await next_event(sub)
            assert ev.plate == "BOTH01"
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(sub.get(), 2.0)
            assert d.stats.get("onvif_notifications", "gate-onvif") == 1
    finally:
        await server.close()


async def test_wrong_credentials_are_a_clear_error_without_the_password(
    camera_web: CameraWebServer, tmp_path: Path
) -> None:
    cam = pullpoint_camera(camera_web, auth_retry=30)
    cam["password"] = "wrong-secret-123"
    config = make_config(tmp_path, cameras=[cam])
    async with Daemon(config, stdout=io.BytesIO()) as d:
        await until(lambda: d.health.transports["gate-onvif"]["onvif"].state == "auth-failed")
        reason = d.health.transports["gate-onvif"]["onvif"].reason
        assert reason is None or "wrong-secret-123" not in reason
        assert camera_web.subscriptions == {}
