"""The HTTP receiver: real aiohttp server on loopback, real client requests."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lprmeta.bus import Subscription
from lprmeta.daemon import Daemon
from lprmeta.events import Event
from lprmeta.inputs.http import _Gather

from ..conftest import FIXTURES, check_event, free_port, make_config
from ..golden import assert_golden

HTTP = FIXTURES / "http"
JSON = FIXTURES / "json"
RENAMED = {"plate": "LicencePlate", "time": "When", "plate_color": "Colour", "full_image": "Snap"}


@dataclass
class Receiver:
    daemon: Daemon
    sub: Subscription
    base: str
    session: aiohttp.ClientSession

    async def post(self, path: str, body: Any, **kw: Any) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        kw.setdefault("headers", {"Content-Type": "application/json"})
        async with self.session.post(self.base + path, data=data, **kw) as resp:
            return resp.status, await resp.json()

    async def get(self, target: str, **kw: Any) -> tuple[int, dict[str, Any]]:
        async with self.session.get(self.base + target, **kw) as resp:
            return resp.status, await resp.json()

    async def event(self) -> Event:
        ev = await asyncio.wait_for(self.sub.get(), 5)
        assert ev is not None
        check_event(ev)
        return ev

    def nothing_emitted(self) -> bool:
        return self.sub.get_nowait() is None

    async def open_post(
        self, length: int, *, extra: bytes = b"", password: bytes = b"push-secret"
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A raw connection with a JSON POST's head written (credentials, Content-Length,
        ``extra`` header lines): the body is the caller's to send, as slowly or in as many
        pieces as it likes."""
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", int(self.base.rsplit(":", 1)[1])
        )
        auth = base64.b64encode(b"cam:" + password).decode()
        writer.write(
            b"POST /lpr/gate-1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Basic "
            + auth.encode()
            + b"\r\n"
            + extra
            + b"Content-Length: "
            + str(length).encode()
            + b"\r\n\r\n"
        )
        return reader, writer


def cameras() -> list[dict[str, Any]]:
    return [
        {"name": "gate-1", "host": "127.0.0.9"},
        {"name": "renamed", "host": "127.0.0.10", "http": {"fields": RENAMED}},
        {"name": "by-device", "host": "127.0.0.11"},
    ]


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Receiver]:
    port = free_port()
    config = make_config(
        tmp_path,
        bus={"dedup_window": 0},
        http={
            "listen": f"127.0.0.1:{port}",
            "username": "cam",
            "password": "push-secret",
            "max_body": 200_000,
            "read_timeout": 1.0,
        },
        cameras=cameras(),
    )
    auth = {"Authorization": aiohttp.encode_basic_auth("cam", "push-secret")}
    async with Daemon(config, stdout=io.BytesIO()) as d, aiohttp.ClientSession(headers=auth) as s:
        yield Receiver(d, d.events(), f"http://127.0.0.1:{port}", s)


def cases(folder: Path, pattern: str) -> list[Path]:
    return sorted(p for p in folder.glob(pattern) if not p.name.endswith(".expected.json"))


BODIES = cases(HTTP, "lpr_*.json")
SHARED = cases(JSON, "*.json")


@pytest.mark.parametrize("fixture", BODIES + SHARED, ids=lambda p: p.stem)
async def test_post_fixture(receiver: Receiver, fixture: Path) -> None:
    path = "/lpr/renamed" if "renamed" in fixture.stem else "/lpr/gate-1"
    status, reply = await receiver.post(path, json.loads(fixture.read_text()))
    assert status == 200, reply
    ev = await receiver.event()
    assert reply["id"] == ev.id
    for img in ev.images:
        assert img.path is not None
        assert hashlib.sha256(Path(img.path).read_bytes()).hexdigest() == img.sha256
    assert "base64" not in json.dumps(ev.to_json())
    assert_golden(ev, fixture, tag="http" if fixture.parent == JSON else "")


async def test_both_eras_agree(receiver: Receiver) -> None:
    old = json.loads((HTTP / "lpr_old_era.json").read_text())
    await receiver.post("/lpr/gate-1", old)
    a = await receiver.event()
    assert (a.plate, a.country, a.roi, a.plate_box) == ("NSC5870", "NLD", 2, (539, 736, 699, 874))
    assert a.speed_kmh is None and a.direction is None and a.confidence is None  # "-"
    assert a.list is not None and a.list.value == "visitor"
    assert (a.vehicle.type, a.vehicle.color, a.vehicle.brand) == ("car", "red", "Volkswagen")
    assert a.time is not None and a.time.microsecond == 267000  # time_msec wins
    new = json.loads((HTTP / "lpr_new_era.json").read_text())
    await receiver.post("/lpr/gate-1", new)
    b = await receiver.event()
    assert (b.speed_kmh, b.direction, b.confidence) == (42.0, "out", 0.91)
    assert (b.vehicle.type, b.vehicle.brand, b.plate_color) == ("suv", "Mercedes-Benz", "yellow")
    assert b.time is not None and b.time.microsecond == 267000


@pytest.mark.parametrize(
    ("fixture", "plate", "kind"),
    [
        ("get_query", "MS12345", "plate"),
        ("get_glued", "MS12345", "plate"),
        ("get_caption_spaces", "MS 12345", "plate"),
        ("get_other_source", None, "event"),
    ],
)
async def test_get_pushes(receiver: Receiver, fixture: str, plate: str | None, kind: str) -> None:
    target = (HTTP / f"{fixture}.url").read_text().strip()
    status, _ = await receiver.get(target)
    assert status == 200
    ev = await receiver.event()
    assert (ev.camera, ev.plate, ev.kind.value) == ("gate-1", plate, kind)
    assert ev.raw  # the URL's parameters are kept


async def test_camera_attribution(receiver: Receiver, tmp_path: Path) -> None:
    body = json.loads((HTTP / "lpr_old_era.json").read_text())
    await receiver.post("/lpr/gate-1", body)
    assert (await receiver.event()).camera == "gate-1"  # by path
    await receiver.post("/anything", {**body, "device": "by-device"})
    assert (await receiver.event()).camera == "by-device"  # by the device field
    await receiver.post("/anything", body)
    assert (await receiver.event()).camera == "http-127001"  # unknown: labelled, kept


async def test_attribution_by_source_address(tmp_path: Path) -> None:
    port = free_port()
    config = make_config(
        tmp_path,
        http={"listen": f"127.0.0.1:{port}"},
        cameras=[{"name": "lane-3", "host": "127.0.0.1"}],
    )
    async with Daemon(config, stdout=io.BytesIO()) as d, aiohttp.ClientSession() as s:
        sub = d.events()
        async with s.post(
            f"http://127.0.0.1:{port}/api/httpEvent", json={"plate": "ADDR01"}
        ) as resp:
            assert resp.status == 200
        ev = await asyncio.wait_for(sub.get(), 5)
        assert ev is not None and ev.camera == "lane-3"


async def reject(receiver: Receiver, status: int, **kw: Any) -> dict[str, Any]:
    async with receiver.session.post(receiver.base + "/lpr/gate-1", **kw) as resp:
        assert resp.status == status
        reply = await resp.json()
    assert reply["error"]
    await asyncio.sleep(0.05)
    assert receiver.nothing_emitted()
    # ... and the next good request still works
    status2, _ = await receiver.post("/lpr/gate-1", {"plate": "NEXT1"})
    assert status2 == 200 and (await receiver.event()).plate == "NEXT1"
    return reply


async def test_broken_json_is_400(receiver: Receiver) -> None:
    reply = await reject(
        receiver, 400, data=b'{"plate": ', headers={"Content-Type": "application/json"}
    )
    assert "not JSON" in reply["error"]
    await reject(receiver, 400, data=b"[1,2]", headers={"Content-Type": "application/json"})
    assert receiver.daemon.stats.get("http_rejected:400") == 2


async def test_bad_base64_keeps_the_read(receiver: Receiver) -> None:
    """A picture that is not base64 costs the picture, not the read: 200, the problem in
    the reply, the picture marked missing with the reason, the plate out."""
    good = base64.b64encode(b"\xff\xd8\xff" + b"\x00" * 64).decode()
    body = {"plate": "B64BAD", "plate_image": "not*base64!", "full_image": good}
    async with receiver.session.post(receiver.base + "/lpr/gate-1", json=body) as resp:
        assert resp.status == 200
        reply = await resp.json()
    assert any(p.startswith("plate: picture is not valid base64") for p in reply["problems"])
    ev = await receiver.event()
    assert ev.plate == "B64BAD"
    roles = {i.role: i for i in ev.images}
    assert roles["plate"].missing and "base64" in roles["plate"].missing
    assert roles["full"].path is not None and roles["full"].missing is None


async def test_oversize_body_is_413(receiver: Receiver) -> None:
    big = {"plate": "BIG", "full_image": base64.b64encode(b"\xff" * 300_000).decode()}
    await reject(receiver, 413, json=big)


async def test_wrong_content_type_is_415(receiver: Receiver) -> None:
    await reject(
        receiver, 415, data=b"--x\r\n", headers={"Content-Type": "multipart/form-data; boundary=x"}
    )


async def test_wrong_credentials_are_401(receiver: Receiver) -> None:
    wrong = {"Authorization": aiohttp.encode_basic_auth("cam", "wrong")}
    await reject(receiver, 401, json={"plate": "X"}, headers=wrong)
    async with (
        aiohttp.ClientSession() as anon,
        anon.post(receiver.base + "/lpr/gate-1", json={"plate": "X"}) as resp,
    ):
        assert resp.status == 401
        assert resp.headers["WWW-Authenticate"].startswith("Basic")


async def test_slow_body_is_408(receiver: Receiver) -> None:
    reader, writer = await receiver.open_post(100)
    writer.write(b'{"pla')
    await writer.drain()
    head = await asyncio.wait_for(reader.readline(), 5)
    assert b" 408 " in head
    writer.close()
    assert receiver.nothing_emitted()


async def test_body_in_many_pieces_is_read_whole(receiver: Receiver) -> None:
    """A body trickled in 40 writes (more than the receiver keeps as separate chunks)
    arrives whole, its picture too: the chunks are gathered, not lost or reordered."""
    picture = base64.b64encode(b"\xff\xd8\xff" + bytes(range(256)) * 40).decode()
    body = json.dumps({"plate": "PIECES1", "plate_image": picture}).encode()
    reader, writer = await receiver.open_post(len(body))
    step = len(body) // 40 + 1
    for i in range(0, len(body), step):
        writer.write(body[i : i + step])
        await writer.drain()
        await asyncio.sleep(0.002)  # each piece its own read
    head = await asyncio.wait_for(reader.readline(), 5)
    assert b" 200 " in head
    writer.close()
    ev = await receiver.event()
    assert ev.plate == "PIECES1"
    (image,) = ev.images
    assert image.path is not None
    assert Path(image.path).read_bytes() == base64.b64decode(picture)


async def test_a_sender_that_expects_100_continue_is_told_to_send(receiver: Receiver) -> None:
    """curl sends ``Expect: 100-continue`` with a body over 1 KB and waits (a second) to
    hear it may send: it hears so at once, and its read goes out."""
    body = json.dumps({"plate": "EXPECT1", "pad": "x" * 2000}).encode()
    reader, writer = await receiver.open_post(len(body), extra=b"Expect: 100-continue\r\n")
    head = await asyncio.wait_for(reader.readline(), 0.5)
    assert head == b"HTTP/1.1 100 Continue\r\n"
    assert await reader.readline() == b"\r\n"
    writer.write(body)
    head = await asyncio.wait_for(reader.readline(), 5)
    assert b" 200 " in head
    writer.close()
    assert (await receiver.event()).plate == "EXPECT1"


@pytest.mark.parametrize(
    ("extra", "password", "status"),
    [
        (b"Expect: 100-continue\r\n", b"wrong", b" 401 "),
        (b"Expect: something-else\r\n", b"push-secret", b" 417 "),
    ],
)
async def test_a_body_that_would_be_refused_is_never_asked_for(
    receiver: Receiver, extra: bytes, password: bytes, status: bytes
) -> None:
    reader, writer = await receiver.open_post(100, extra=extra, password=password)
    head = await asyncio.wait_for(reader.readline(), 5)
    assert status in head  # the refusal, not "100 Continue" first
    writer.close()
    assert receiver.nothing_emitted()


async def test_form_encoded_post(receiver: Receiver) -> None:
    async with receiver.session.post(
        receiver.base + "/lpr/gate-1", data={"source": "LPR", "description": "FORM1"}
    ) as resp:
        assert resp.status == 200
    assert (await receiver.event()).plate == "FORM1"


@given(st.lists(st.binary(max_size=50), max_size=60))
def test_gather_gives_the_chunks_joined(chunks: list[bytes]) -> None:
    """The receiver's body gatherer: few chunks kept as they are, many in a bytearray;
    either way the body is the chunks in order, and its size their sum."""
    body = _Gather()
    for chunk in chunks:
        body.add(chunk)
    assert body.take() == b"".join(chunks)
    assert body.size == sum(map(len, chunks))
