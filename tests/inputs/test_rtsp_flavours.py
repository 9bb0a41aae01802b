"""Each ONVIF flavour a camera may speak on its metadata track, end to end through PyAV
against the simulated camera and Debian's gst-rtsp-server: Milesight's
LicensePlateDetector notification, Profile M's plate event, and Profile M scene
descriptions (object metadata: three frames of one car make one read)."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lprmeta.daemon import Daemon
from lprmeta.simulator.script import ReadFactory
from lprmeta.simulator.web import CameraWebServer

from ..conftest import make_config
from .rtsp_servers import PASSWORD, RtspServer
from .test_rtsp_input import KINDS, camera, next_event, sha_of, started

FLAVOURS = ["milesight", "profile-m-events", "profile-m-frames", "axis"]


@pytest.fixture
async def pictures() -> AsyncIterator[CameraWebServer]:
    """The camera's web server, where the pictures the metadata points at are."""
    server = CameraWebServer(password=PASSWORD)
    await server.start()
    yield server
    await server.close()


async def send_flavour(
    server: RtspServer, web: CameraWebServer, read: object, flavour: str
) -> None:
    from lprmeta.simulator.script import Read

    assert isinstance(read, Read)
    picture = read.full_jpeg if flavour == "profile-m-frames" else read.plate_jpeg
    path = web.publish(picture, read.time) if flavour != "axis" else None
    for doc in read.onvif_documents(flavour, path):
        assert await server.send(doc, mtu=300) >= 1


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("kind", KINDS)
async def test_each_flavour_gives_one_read_per_car_with_its_pictures(
    kind: str,
    flavour: str,
    pictures: CameraWebServer,
    tmp_path: Path,
) -> None:
    server = await started(kind)
    try:
        config = make_config(tmp_path, bus={"dedup_window": 0}, cameras=[camera(server, pictures)])
        factory = ReadFactory(seed=23, picture_bytes=30_000)
        async with Daemon(config, stdout=io.BytesIO()) as d:
            sub = d.events()
            await server.wait_playing()
            for plate in ("AB123CD", "NL99XY"):
                read = factory.next(plate=plate)
                await send_flavour(server, pictures, read, flavour)
                ev = await next_event(sub)
                assert (ev.plate, ev.kind.value, ev.camera) == (plate, "plate", "lane-1")
                if flavour.startswith("profile-m"):  # the others carry none
                    assert ev.confidence == pytest.approx(read.confidence, abs=0.01)
                shas = {i.role: i.sha256 for i in ev.images if i.missing is None}
                for image in ev.images:
                    assert image.missing is None, image
                    assert sha_of(image.path) == image.sha256
                if flavour == "profile-m-frames":
                    # The best of three frames; the crop inline, the scene by path.
                    assert ev.details["frames"] == 3
                    assert ev.details["read_when"] == "left the scene"
                    assert ev.vehicle.type is not None
                    assert shas == {
                        "plate": hashlib.sha256(read.plate_jpeg).hexdigest(),
                        "full": hashlib.sha256(read.full_jpeg).hexdigest(),
                    }
                else:
                    assert shas == {"plate": hashlib.sha256(read.plate_jpeg).hexdigest()}
            # Nothing more: the misread frames made no read of their own.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(sub.get(), 1.5)
    finally:
        await server.close()


async def test_a_car_that_never_leaves_is_read_once_within_a_second(
    pictures: CameraWebServer,
    tmp_path: Path,
) -> None:
    server = await started("sim")
    try:
        config = make_config(tmp_path, bus={"dedup_window": 0}, cameras=[camera(server, pictures)])
        factory = ReadFactory(seed=5, picture_bytes=4000)
        async with Daemon(config, stdout=io.BytesIO()) as d:
            sub = d.events()
            await server.wait_playing()
            read = factory.next(plate="PARKED1")
            first, best, _ = read.onvif_documents("profile-m-frames", None)
            t0 = asyncio.get_running_loop().time()
            await server.send(first, mtu=1200)
            await server.send(best, mtu=1200)
            ev = await next_event(sub, timeout=5)
            waited = asyncio.get_running_loop().time() - t0
            assert ev.plate == "PARKED1"
            assert ev.details["read_when"] == "1 s after its first plate"
            assert 0.9 <= waited < 3
            for _ in range(5):  # the car stays in view: no second read
                await server.send(best, mtu=1200)
                await asyncio.sleep(0.2)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(sub.get(), 1.5)
            assert d.stats.get("scene_reads", "lane-1") == 1
    finally:
        await server.close()
