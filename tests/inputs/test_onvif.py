"""ONVIF: discovery with onvif-zeep-async and the zeep-free identification, against the
simulated camera's SOAP service on loopback."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator

import pytest

from lprmeta.errors import AuthenticationFailed, ConnectError
from lprmeta.inputs.onvif import device_information, pin_host, query_onvif
from lprmeta.simulator.web import CameraWebServer

PASSWORD = "onvif-Pw-3"


@pytest.fixture
async def camera() -> AsyncIterator[CameraWebServer]:
    server = CameraWebServer(password=PASSWORD, rtsp_url="rtsp://192.0.2.7:8554/onvif/metadata")
    await server.start()
    yield server
    await server.close()


async def test_discovery_finds_the_metadata_profile_and_pins_the_host(
    camera: CameraWebServer,
) -> None:
    info = await query_onvif("127.0.0.1", camera.port, "admin", PASSWORD, timeout=20)
    assert info.device is not None and info.device.model == "MS-C5367-X23LPC"
    assert [(p.token, p.metadata) for p in info.profiles] == [("main", False), ("lpr", True)]
    assert info.profile == "lpr"
    # The camera named another address; only the configured host is ever used.
    assert info.stream_uri == "rtsp://127.0.0.1:8554/onvif/metadata"
    assert any("192.0.2.7" in note for note in info.notes)
    assert info.snapshot_uri == f"http://127.0.0.1:{camera.port}/snapshot.jpg"
    assert camera.stats.soap["GetStreamUri"] == 1


async def test_discovery_with_a_wrong_password(camera: CameraWebServer) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        await query_onvif("127.0.0.1", camera.port, "admin", "wrong-Pass-1", timeout=20)
    assert "wrong-Pass-1" not in str(info.value)


async def test_identification_without_zeep(camera: CameraWebServer) -> None:
    device = await device_information("127.0.0.1", camera.port, "admin", PASSWORD)
    assert (device.model, device.firmware) == ("MS-C5367-X23LPC", "45.8.0.3-LPR_XX-r9")
    with pytest.raises(AuthenticationFailed):
        await device_information("127.0.0.1", camera.port, "admin", "nope")
    # Checked in a fresh interpreter: identifying a camera never imports zeep.
    code = (
        "import asyncio, sys\n"
        "from lprmeta.inputs.onvif import device_information\n"
        f"asyncio.run(device_information('127.0.0.1', {camera.port}, 'admin', {PASSWORD!r}))\n"
        "assert 'zeep' not in sys.modules, 'zeep was imported'\n"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
    assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_unreachable_service() -> None:
    server = CameraWebServer()
    await server.start()
    port = server.port
    await server.close()
    with pytest.raises(ConnectError):
        await device_information("127.0.0.1", port, "admin", "x", timeout=3)
    with pytest.raises(ConnectError):
        await query_onvif("127.0.0.1", port, "admin", "x", timeout=5)


def test_pin_host() -> None:
    assert pin_host("rtsp://10.0.0.5:554/a?b=1", "127.0.0.1") == (
        "rtsp://127.0.0.1:554/a?b=1",
        True,
    )
    assert pin_host("rtsp://cam.local/a", "CAM.local") == ("rtsp://cam.local/a", False)
    assert pin_host("rtsp://10.0.0.5/a", "::1") == ("rtsp://[::1]/a", True)
