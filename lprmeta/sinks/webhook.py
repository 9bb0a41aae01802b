"""Webhooks: POST each event to a URL, signed, retried, never in another sink's way.

Each ``[[webhooks]]`` entry is a sink of its own with its own bounded queue on
the bus: a receiver that is slow or down delays nothing else, and what its
queue cannot hold is dropped and counted (``dropped:<sink>``).

The body is the event's JSON line (``Content-Type: application/json``), or
with ``pictures = true`` a ``multipart/form-data`` body: an ``event`` part
(the JSON line) and one part per saved picture, named after its role.

Signature, when ``secret`` is set::

    X-Lprmeta-Timestamp: 1763980000
    X-Lprmeta-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>

A receiver recomputes it over the raw body and rejects old timestamps (replays).

Transient failures (connection errors, timeouts, 408, 425, 429, 5xx) are
retried up to ``retries`` times with jittered, doubling delays capped at
``backoff_max`` (a ``Retry-After`` is honoured within that cap); other answers
are final. Counted per camera: ``webhook_sent``, ``webhook_retries``,
``webhook_failed`` (each ``:<sink>``); events still queued at shutdown are
counted as ``webhook_unsent``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from ..bus import Subscription
from ..config import WebhookConfig
from ..events import Event
from ..log import get_logger, log_counted
from ..retry import Backoff
from ..stats import Stats
from .jsonl import encode_line

__all__ = ["WebhookSink", "sign"]

_TRANSIENT = {408, 425, 429}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


class WebhookSink:
    def __init__(
        self,
        cfg: WebhookConfig,
        *,
        index: int,
        stats: Stats | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.cfg = cfg
        self._sleep = sleep
        self._rng = rng
        self.name = f"webhook{index}:{urlsplit(cfg.url).hostname}"
        self.stats = stats if stats is not None else Stats()
        self._log = get_logger("lprmeta.sinks.webhook", sink=self.name)
        self._failures_logged = 0

    async def run(self, sub: Subscription) -> None:
        timeout = aiohttp.ClientTimeout(total=self.cfg.timeout)
        current: Event | None = None
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async for event in sub:
                    current = event
                    await self._send(session, event)
                    current = None
        except asyncio.CancelledError:
            left = sub.qsize() + (current is not None)
            if left:
                self.stats.inc(f"webhook_unsent:{self.name}", n=left)
                self._log.error("stopping with events not delivered", unsent=left)
            raise

    def _body(self, event: Event) -> tuple[bytes, str]:
        line = encode_line(event)
        if not self.cfg.pictures:
            return line, "application/json"
        boundary = f"lprmeta-{secrets.token_hex(12)}"
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="event"\r\n'
            f"Content-Type: application/json\r\n\r\n".encode()
            + line
            + b"\r\n"
        ]
        for image in event.images:
            if image.path is None:
                continue
            try:
                data = Path(image.path).read_bytes()
            except OSError:
                continue  # the line says where it was; it is gone now (cleaned up?)
            name = Path(image.path).name
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{image.role}"; '
                f'filename="{name}"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
                + data
                + b"\r\n"
            )
        parts.append(f"--{boundary}--\r\n".encode())
        return b"".join(parts), f"multipart/form-data; boundary={boundary}"

    def _headers(self, event: Event, body: bytes, content_type: str) -> dict[str, str]:
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": content_type,
            "User-Agent": "lprmeta",
            "X-Lprmeta-Event": event.kind.value,
            "X-Lprmeta-Id": event.id,
            "X-Lprmeta-Timestamp": timestamp,
            **{k: v.get() for k, v in self.cfg.headers.items()},
        }
        if self.cfg.secret:
            headers["X-Lprmeta-Signature"] = sign(self.cfg.secret.get(), timestamp, body)
        return headers

    async def _send(self, session: aiohttp.ClientSession, event: Event) -> None:
        if self.cfg.pictures and event.images:  # reading files: off the loop
            body, content_type = await asyncio.to_thread(self._body, event)
        else:
            body, content_type = self._body(event)
        backoff = Backoff(self.cfg.backoff_initial, self.cfg.backoff_max, rng=self._rng)
        wait = 0.0  # before the next attempt: the backoff's, or what Retry-After asked
        reason = ""
        for attempt in range(self.cfg.retries + 1):
            if attempt:
                self.stats.inc(f"webhook_retries:{self.name}", event.camera)
                await self._sleep(max(wait, backoff.next()))
                wait = 0.0
            headers = self._headers(event, body, content_type)
            try:
                async with session.post(
                    self.cfg.url, data=body, headers=headers, allow_redirects=False
                ) as resp:
                    await resp.read()
                    if 200 <= resp.status < 300:
                        self.stats.inc(f"webhook_sent:{self.name}", event.camera)
                        return
                    reason = f"HTTP {resp.status}"
                    if resp.status < 500 and resp.status not in _TRANSIENT:
                        break  # the receiver said no: retrying would not change its mind
                    retry_after = resp.headers.get("Retry-After", "")
                    if retry_after.isdecimal():  # honoured, up to backoff_max
                        wait = min(float(retry_after), self.cfg.backoff_max)
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        n = self.stats.inc(f"webhook_failed:{self.name}", event.camera)
        log_counted(
            self._log,
            n,
            "error",
            "event not delivered to webhook",
            id=event.id,
            camera=event.camera,
            reason=reason,
            failed=n,
        )
