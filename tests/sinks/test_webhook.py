"""Webhooks against a real aiohttp receiver on loopback: signatures, retries, pictures, limits."""

from __future__ import annotations

import asyncio
import email.policy
import hashlib
import hmac
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from lprmeta.daemon import Daemon
from lprmeta.envelope import Picture, Read
from lprmeta.events import Event, Kind, Source
from lprmeta.simulator.script import fake_jpeg
from lprmeta.sinks.webhook import sign

from ..conftest import check_line, free_port, make_config

SECRET = "hook-secret-7f3a"  # a test key


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A webhook receiver; ``answers`` is popped per request (then 200 for ever)."""

    answers: list[int | float] = field(default_factory=list)  # status, or seconds to stall
    retry_after: str | None = None  # sent with a 429 or 503
    got: list[Received] = field(default_factory=list)
    multipart: list[dict[str, bytes]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.got.append(Received(dict(request.headers), body, time.monotonic()))
        if request.content_type == "multipart/form-data":
            # Parsed with the stdlib's MIME parser, not with anything lprmeta uses.
            head = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
            msg = BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
            parts: dict[str, bytes] = {}
            for part in msg.iter_parts():
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                parts[str(part.get_param("name", header="content-disposition"))] = payload
            self.multipart.append(parts)
        answer = self.answers.pop(0) if self.answers else 200
        if isinstance(answer, float):
            await asyncio.sleep(answer)
            answer = 200
        headers = (
            {"Retry-After": self.retry_after} if self.retry_after and answer in (429, 503) else {}
        )
        return web.Response(status=answer, text="ok" if answer == 200 else "no", headers=headers)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    rec.port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", rec.port)
    await site.start()
    yield rec
    await runner.cleanup()


def car(plate: str, *, pictures: tuple[Picture, ...] = ()) -> Read:
    return Read(Event(kind=Kind.PLATE, camera="gate", source=Source.HTTP, plate=plate), pictures)


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def verify(secret: str, got: Received, max_age: float = 300) -> dict[str, Any]:
    """What a receiver does, written from the README's description (not from sign())."""
    ts = got.headers["X-Lprmeta-Timestamp"]
    assert abs(time.time() - int(ts)) < max_age
    mac = hmac.new(secret.encode(), ts.encode() + b"." + got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(got.headers["X-Lprmeta-Signature"], f"sha256={mac}")
    return check_line(got.body)


def webhook(rec: Receiver, **extra: Any) -> dict[str, Any]:
    return {"url": rec.url, "backoff_initial": 0.05, "backoff_max": 0.2, **extra}


async def test_signed_json_and_transient_failures_retried(
    tmp_path: Path, receiver: Receiver
) -> None:
    # 500, 503 and a stall past the timeout are transient; the fourth try gets through.
    receiver.answers = [500, 503, 2.0]
    stdout = io.BytesIO()
    config = make_config(
        tmp_path,
        webhooks=[webhook(receiver, secret=SECRET, timeout=0.5, headers={"X-Api-Key": "k-1"})],
    )
    async with Daemon(config, stdout=stdout) as d:
        d.deliver(car("WH1"))
        await until(lambda: len(receiver.got) == 4)
        await until(lambda: d.stats.total("webhook_sent:webhook0:127.0.0.1") == 1)
        stats = d.stats
    line = verify(SECRET, receiver.got[-1])
    assert line["plate"] == "WH1"
    assert stdout.getvalue() == receiver.got[-1].body  # the same line stdout got
    assert {r.body for r in receiver.got} == {receiver.got[0].body}  # the same event each time
    headers = receiver.got[-1].headers
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Api-Key"] == "k-1"
    assert headers["X-Lprmeta-Event"] == "plate" and headers["X-Lprmeta-Id"] == line["id"]
    assert stats.total("webhook_retries:webhook0:127.0.0.1") == 3
    assert stats.total("webhook_failed:webhook0:127.0.0.1") == 0
    # Backoff: each retry waited (jittered half to full of 0.05, 0.1, 0.2 s).
    gaps = [b.at - a.at for a, b in zip(receiver.got, receiver.got[1:], strict=False)]
    assert gaps[0] >= 0.025 and gaps[1] >= 0.05


async def test_retry_after_is_honoured_up_to_the_cap(tmp_path: Path, receiver: Receiver) -> None:
    receiver.answers = [429, 503]
    receiver.retry_after = "1"
    config = make_config(
        tmp_path,
        webhooks=[webhook(receiver, backoff_initial=0.01, backoff_max=0.6)],
    )
    async with Daemon(config, stdout=io.BytesIO()) as d:
        d.deliver(car("LATER"))
        await until(lambda: len(receiver.got) == 3)
        await until(lambda: d.stats.total("webhook_sent:webhook0:127.0.0.1") == 1)
    gaps = [b.at - a.at for a, b in zip(receiver.got, receiver.got[1:], strict=False)]
    # Without Retry-After these waits would be 5-10 and 10-20 ms; with it, the cap
    # (0.6 s, jittered down to half) instead of the asked-for 1 s.
    assert all(0.29 <= g < 0.95 for g in gaps), gaps


def test_a_tampered_body_fails_verification() -> None:
    body = b'{"plate":"X"}\n'
    good = Received({"X-Lprmeta-Timestamp": str(int(time.time()))}, body, 0)
    good.headers["X-Lprmeta-Signature"] = sign(SECRET, good.headers["X-Lprmeta-Timestamp"], body)
    with pytest.raises(AssertionError):
        verify(SECRET, Received(good.headers, body.replace(b"X", b"Y"), 0))
    with pytest.raises(AssertionError):
        verify("another-key", good)


async def test_a_4xx_is_final_and_the_next_event_still_goes(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.answers = [422]
    config = make_config(tmp_path, webhooks=[webhook(receiver)])
    async with Daemon(config, stdout=io.BytesIO()) as d:
        d.deliver(car("BAD1"))
        d.deliver(car("GOOD2"))
        await until(lambda: len(receiver.got) == 2)
        await until(lambda: d.stats.total("webhook_sent:webhook0:127.0.0.1") == 1)
        assert d.stats.total("webhook_failed:webhook0:127.0.0.1") == 1
        assert d.stats.total("webhook_retries:webhook0:127.0.0.1") == 0
    assert "X-Lprmeta-Signature" not in receiver.got[0].headers  # no secret, no signature
    assert [json.loads(r.body)["plate"] for r in receiver.got] == ["BAD1", "GOOD2"]


async def test_pictures_as_multipart(tmp_path: Path, receiver: Receiver) -> None:
    plate_jpeg, full_jpeg = fake_jpeg(3000, seed=1), fake_jpeg(9000, seed=2)
    config = make_config(tmp_path, webhooks=[webhook(receiver, pictures=True, secret=SECRET)])
    async with Daemon(config, stdout=io.BytesIO()) as d:
        d.deliver(car("PIC1", pictures=(Picture("plate", plate_jpeg), Picture("full", full_jpeg))))
        await until(lambda: len(receiver.multipart) == 1)
    got = receiver.got[0]
    assert got.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    parts = receiver.multipart[0]
    assert set(parts) == {"event", "plate", "full"}
    assert (parts["plate"], parts["full"]) == (plate_jpeg, full_jpeg)
    line = check_line(parts["event"])
    assert {i["role"]: i["sha256"] for i in line["images"]} == {
        "plate": hashlib.sha256(plate_jpeg).hexdigest(),
        "full": hashlib.sha256(full_jpeg).hexdigest(),
    }
    # The signature covers the whole multipart body as sent.
    ts = got.headers["X-Lprmeta-Timestamp"]
    assert got.headers["X-Lprmeta-Signature"] == sign(SECRET, ts, got.body)


async def test_a_dead_receiver_blocks_nothing_and_overflow_is_counted(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens: connection refused
    stdout = io.BytesIO()
    config = make_config(
        tmp_path,
        bus={"dedup_window": 0},
        webhooks=[{"url": dead, "queue_size": 5, "retries": 100, "backoff_initial": 1.0}],
    )
    async with Daemon(config, stdout=stdout, shutdown_timeout=1.0) as d:
        sub = d.events()
        for i in range(50):
            d.deliver(car(f"DEAD{i}"))
        for _ in range(50):
            assert await asyncio.wait_for(sub.get(), 5) is not None
        await until(lambda: stdout.getvalue().count(b"\n") == 50)
        stats = d.stats
    # The 50 were published in one go: five fit the queue, 45 were dropped and said so;
    # the five were still waiting (one of them retrying) at shutdown, and said so too.
    assert stats.total("dropped:webhook0:127.0.0.1") == 45
    assert stats.total("webhook_unsent:webhook0:127.0.0.1") == 5
    assert stats.total("webhook_sent:webhook0:127.0.0.1") == 0


async def test_only_lists(tmp_path: Path, receiver: Receiver) -> None:
    config = make_config(
        tmp_path,
        lists=[{"name": "residents", "plates": ["AB1234"], "tolerance": 1}],
        webhooks=[webhook(receiver, only_lists=["residents"])],
    )
    async with Daemon(config, stdout=io.BytesIO()) as d:
        for plate in ("ZZ9999", "A8I234", "QQ0000"):
            d.deliver(car(plate))
        await until(lambda: len(receiver.got) == 1)
        await asyncio.sleep(0.3)
    assert len(receiver.got) == 1
    line = json.loads(receiver.got[0].body)
    assert line["plate"] == "A8I234"
    assert line["matches"][0]["list"] == "residents"
