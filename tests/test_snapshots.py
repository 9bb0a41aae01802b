"""The picture fetcher against the simulated camera's web server (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web as aioweb

from lprmeta.errors import ForbiddenPictureURL, SnapshotError
from lprmeta.simulator.script import fake_jpeg
from lprmeta.simulator.web import CameraWebServer
from lprmeta.snapshots import CameraWeb, PictureFetcher

JPEG = fake_jpeg(50_000, seed=3)


@pytest.fixture(params=["digest", "basic", "none"])
async def camera(request: pytest.FixtureRequest) -> AsyncIterator[CameraWebServer]:
    server = CameraWebServer(auth=request.param, password=PASSWORD)
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def fetcher() -> AsyncIterator[PictureFetcher]:
    async with PictureFetcher() as f:
        yield f


PASSWORD = "pw-snap"


def cam_of(server: CameraWebServer, password: str = PASSWORD, **kw: int) -> CameraWeb:
    return CameraWeb("c", "127.0.0.1", server.port, "admin", password, **kw)


async def test_fetch_with_every_auth_scheme(
    camera: CameraWebServer, fetcher: PictureFetcher
) -> None:
    cam = cam_of(camera)
    for i in range(3):
        path = camera.publish(fake_jpeg(10_000 + i, seed=i))
        data = await fetcher.fetch(cam, path, timeout=5)
        assert hashlib.sha256(data).digest() == hashlib.sha256(camera.pictures[path]).digest()
    # After the first challenge, credentials go up front: one 401 in all, not one per fetch.
    assert camera.stats.unauthorized == (0 if camera.auth == "none" else 1)


async def test_wrong_password_is_reported(fetcher: PictureFetcher) -> None:
    server = CameraWebServer(auth="digest", password="right")
    await server.start()
    try:
        path = server.publish(JPEG)
        with pytest.raises(SnapshotError) as info:
            await fetcher.fetch(cam_of(server, "wrong"), path, timeout=5)
        assert info.value.reason == "refused credentials (401)"
    finally:
        await server.close()


@pytest.fixture
async def plain() -> AsyncIterator[CameraWebServer]:
    server = CameraWebServer(auth="none")
    await server.start()
    yield server
    await server.close()


async def reason_of(fetcher: PictureFetcher, cam: CameraWeb, path: str, timeout: float = 5) -> str:
    with pytest.raises(SnapshotError) as info:
        await fetcher.fetch(cam, path, timeout=timeout)
    return info.value.reason


async def test_only_the_ten_latest_are_kept(
    plain: CameraWebServer, fetcher: PictureFetcher
) -> None:
    paths = [plain.publish(fake_jpeg(1000, seed=i)) for i in range(12)]
    cam = cam_of(plain)
    assert await reason_of(fetcher, cam, paths[0]) == "HTTP 404"
    assert await reason_of(fetcher, cam, paths[1]) == "HTTP 404"
    assert await fetcher.fetch(cam, paths[2], timeout=5) == plain.pictures[paths[2]]


async def test_slow_endpoint_past_the_deadline(
    plain: CameraWebServer, fetcher: PictureFetcher
) -> None:
    path = plain.publish(JPEG)
    plain.faults.slow_seconds = 2.0
    assert await reason_of(fetcher, cam_of(plain), path, timeout=0.5) == "not fetched within 0.5 s"


async def test_non_jpeg_body(plain: CameraWebServer, fetcher: PictureFetcher) -> None:
    path = plain.publish(JPEG)
    plain.faults.not_jpeg = True
    assert await reason_of(fetcher, cam_of(plain), path) == "not a JPEG"


async def test_picture_above_the_limit(plain: CameraWebServer, fetcher: PictureFetcher) -> None:
    path = plain.publish(JPEG)
    plain.faults.oversize = 3 * 1024 * 1024
    reason = await reason_of(fetcher, cam_of(plain, max_picture=1024 * 1024), path)
    assert reason == "larger than the limit of 1048576 bytes"


async def test_redirect_to_another_host_is_refused(
    plain: CameraWebServer, fetcher: PictureFetcher
) -> None:
    # The "other host" listens on loopback too, and must never see a request.
    hits: list[str] = []

    async def record(request: aioweb.Request) -> aioweb.Response:
        hits.append(request.path)
        return aioweb.Response(body=JPEG)

    app = aioweb.Application()
    app.router.add_get("/{tail:.*}", record)
    runner = aioweb.AppRunner(app)
    await runner.setup()
    site = aioweb.TCPSite(runner, "127.0.0.2", 0)
    await site.start()
    other = runner.addresses[0][1]
    try:
        path = plain.publish(JPEG)
        plain.faults.redirect_to = f"http://127.0.0.2:{other}/stolen.jpg"
        with pytest.raises(ForbiddenPictureURL) as info:
            await fetcher.fetch(cam_of(plain), path, timeout=5)
        assert info.value.reason == "refused: redirect to another host (127.0.0.2)"
        assert hits == []
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("http://127.0.0.2:80/x.jpg", "refused: picture URL points at another host (127.0.0.2)"),
        ("http://127.0.0.1:81/x.jpg", "refused: picture URL points at another host (127.0.0.1)"),
        ("http://evil.example/x.jpg", "refused: picture URL points at another host (evil.example)"),
        ("file:///etc/passwd", "refused: not an http URL (file)"),
        ("/LPR/x.jpg\r\nHost: evil", "refused: malformed picture path"),
        ("\\\\evil\\share", "refused: malformed picture path"),
    ],
)
def test_picture_urls_pointing_elsewhere_are_refused(given: str, why: str) -> None:
    cam = CameraWeb("c", "127.0.0.1", 8080, "admin", "x")
    with pytest.raises(ForbiddenPictureURL) as info:
        cam.url_for(given)
    assert info.value.reason == why


@pytest.mark.parametrize(
    "given",
    [
        "/LPR/a.jpg",
        "LPR/a.jpg",
        "//evil.example/LPR/a.jpg",
        "/../../etc/passwd",
        "http://127.0.0.1:8080/LPR/a.jpg",
    ],
)
def test_paths_always_resolve_to_the_camera(given: str) -> None:
    url = CameraWeb("c", "127.0.0.1", 8080, "admin", "x").url_for(given)
    assert (url.scheme, url.host, url.port) == ("http", "127.0.0.1", 8080)


async def test_redirect_on_the_same_camera_is_followed(fetcher: PictureFetcher) -> None:
    moved: list[str] = []

    async def handler(request: aioweb.Request) -> aioweb.Response:
        if request.path == "/LPR/old.jpg":
            moved.append(request.path)
            raise aioweb.HTTPFound("/LPR/new.jpg")
        return aioweb.Response(body=JPEG)

    app = aioweb.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = aioweb.AppRunner(app)
    await runner.setup()
    await aioweb.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        cam = CameraWeb("c", "127.0.0.1", runner.addresses[0][1], "admin", "x")
        assert await fetcher.fetch(cam, "/LPR/old.jpg", timeout=5) == JPEG
        assert moved == ["/LPR/old.jpg"]
    finally:
        await runner.cleanup()


async def test_fetches_of_one_camera_run_side_by_side(
    plain: CameraWebServer, fetcher: PictureFetcher
) -> None:
    paths = [plain.publish(fake_jpeg(5000, seed=i)) for i in range(10)]
    plain.faults.slow_seconds = 0.5
    started = asyncio.get_running_loop().time()
    results = await asyncio.gather(*(fetcher.fetch(cam_of(plain), p, timeout=5) for p in paths))
    assert [len(r) for r in results] == [5000] * 10
    assert asyncio.get_running_loop().time() - started < 2.0  # not 10 x 0.5 s in a row
