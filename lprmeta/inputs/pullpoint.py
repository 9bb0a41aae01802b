"""The camera's ONVIF event service, PullPoint: a fourth way in, for cameras whose RTSP
metadata track is off or absent (``[cameras.onvif_events]``).

With onvif-zeep-async, on the camera's web port and with its credentials:

1. ``CreatePullPointSubscription`` on the event service, asking for
   ``subscription`` seconds (``InitialTerminationTime``); the subscription's
   address is used on the **configured host and port only** (a camera behind NAT
   names an address of its own; lprmeta never connects anywhere else);
2. ``PullMessages`` in a loop (``Timeout`` ``pull_timeout``, ``MessageLimit``
   ``message_limit``); each ``wsnt:NotificationMessage`` of the answer, taken as XML
   from the SOAP envelope, goes through the **same parser as the metadata track's**
   (:func:`lprmeta.protocol.onvif.document_events`): same topics, same vocabulary,
   same bounds; its reads say ``"source": "onvif"``;
3. ``Renew`` once 80% of the time the camera granted has passed (the camera's
   ``CurrentTime`` and ``TerminationTime``, so its clock does not matter);
4. ``Unsubscribe`` when the daemon stops.

A pull or a renewal the camera refuses (a camera that rebooted has forgotten the
subscription: a SOAP fault), or a connection that fails, ends the subscription:
after the backoff a new one is made. A camera that also streams its metadata
track is read once: the bus merges the two reads of one car as it merges TCP
and HTTP.

onvif-zeep-async's own PullPointManager is not used: it never renews sooner than
48 s (it takes a subscription shorter than 60 s for 60 s), so a camera that grants
30 s would lose its subscription between renewals.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lxml import etree

from ..config import CameraConfig, OnvifEventsConfig
from ..envelope import Read
from ..errors import AuthenticationFailed, ConnectError, ProtocolError, TransportError
from ..events import Source
from ..health import Health
from ..log import get_logger, log_counted, redact_text
from ..protocol.onvif import document_events
from ..retry import Backoff, Outcome, StateLog, credentials_refused, reconnect
from ..stats import Stats

__all__ = ["PullPointInput"]

_WSNT = "http://docs.oasis-open.org/wsn/b-2"
_PULLPOINT = "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"
_RENEW_AT = 0.8  # of the time granted
_RENEW_MARGIN = 0.25  # seconds: closer than this to the renewal, renew before pulling
_DOC_HEAD = b'<tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema"><tt:Event>'
_DOC_TAIL = b"</tt:Event></tt:MetadataStream>"


class _Envelopes:
    """A zeep plugin: the last answer's notifications, as XML (zeep would turn them into
    objects of its own; the parser wants the XML the camera sent)."""

    def __init__(self) -> None:
        self.notifications: list[bytes] = []

    def ingress(self, envelope: Any, http_headers: Any, _operation: Any) -> tuple[Any, Any]:
        self.notifications = [
            etree.tostring(el) for el in envelope.iter(f"{{{_WSNT}}}NotificationMessage")
        ]
        return envelope, http_headers

    def egress(self, envelope: Any, http_headers: Any, _operation: Any, _binding: Any) -> Any:
        return envelope, http_headers


class _SubscriptionLost(TransportError):
    """The camera no longer knows the subscription (it rebooted, or it expired)."""


class PullPointInput:
    def __init__(
        self,
        camera: CameraConfig,
        *,
        deliver: Callable[[Read], None],
        stats: Stats,
        health: Health | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        assert camera.onvif_events is not None
        self.camera = camera
        self.cfg: OnvifEventsConfig = camera.onvif_events
        self.name = f"onvif:{camera.name}"
        self._deliver = deliver
        self.stats = stats
        self._now = now
        self._sleep = sleep
        self._password = camera.password.get()
        self._secrets = [self._password] if self._password else []
        self._log = get_logger("lprmeta.inputs.pullpoint", camera=camera.name)
        self._state = StateLog(
            self._log,
            (lambda state: health.set(camera.name, "onvif", state)) if health else None,
        )
        self.backoff = Backoff(self.cfg.backoff_initial, self.cfg.backoff_max)
        self.connected = asyncio.Event()
        self.subscriptions = 0  # made so far
        self.renewals = 0

    async def __aenter__(self) -> PullPointInput:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def run(self) -> None:
        await reconnect(
            self._subscribed,
            classify=self._classify,
            backoff=self.backoff,
            state=self._state,
            ended=self.connected.clear,
            retrying=lambda: self.stats.inc("reconnects", self.camera.name),
            sleep=self._sleep,
        )

    def _classify(self, exc: Exception) -> Outcome | None:
        name = self.camera.name
        if isinstance(exc, AuthenticationFailed):
            self.stats.inc("auth_failures", name)
            return credentials_refused("ONVIF", self._clean(exc), self.cfg.auth_retry)
        if isinstance(exc, _SubscriptionLost):
            self.stats.inc("onvif_subscriptions_lost", name)
            return Outcome(
                "down:SubscriptionLost",
                "camera forgot the event subscription (rebooted?); subscribing again",
                fields={"reason": str(exc)},
            )
        if isinstance(exc, TransportError | OSError | TimeoutError):
            return Outcome(
                f"down:{type(exc).__name__}",
                "camera's event service lost"
                if self.connected.is_set()
                else "cannot reach the camera's event service",
                fields={"reason": self._clean(exc)},
            )
        return None

    def _clean(self, exc: BaseException) -> str:
        return redact_text(f"{exc}", self._secrets)[:300]

    def _on_camera_host(self, address: str) -> str:
        """The subscription's address, on the configured host and port."""
        parts = urlsplit(address)
        netloc = f"{self.camera.host}:{self.camera.http_port}"
        if parts.hostname and parts.hostname != self.camera.host:
            self._log.info(
                "subscription address names another host; using the configured one",
                named=parts.hostname,
                used=self.camera.host,
            )
        return urlunsplit(("http", netloc, parts.path or "/", parts.query, ""))

    async def _subscribed(self) -> bool:
        """One subscription, pulled until it is lost (raises) or the input is stopped."""
        from onvif import ONVIFCamera  # noqa: PLC0415  # loads WSDLs: only when needed

        cam = ONVIFCamera(
            self.camera.host, self.camera.http_port, self.camera.username, self._password
        )
        subscription: Any = None
        try:
            subscription, pullpoint, renew_at, envelopes = await self._subscribe(cam)
            self.backoff.connected()
            self.connected.set()
            self._state.change(
                "up",
                "subscribed to the camera's events (PullPoint)",
                renew_in=round(renew_at - asyncio.get_running_loop().time(), 1),
            )
            await self._pull(subscription, pullpoint, renew_at, envelopes)
            return True  # not reached: _pull ends by raising or by cancellation
        finally:
            if subscription is not None:
                with contextlib.suppress(Exception):  # a courtesy; it expires anyway
                    async with asyncio.timeout(2):
                        await subscription.Unsubscribe()
            with contextlib.suppress(Exception):
                await cam.close()

    async def probe(self, wait: float) -> dict[str, Any]:
        """Subscribe once, pull for up to ``wait`` seconds, unsubscribe: what ``lprmeta
        probe`` reports. Raises the input's own errors."""
        from onvif import ONVIFCamera  # noqa: PLC0415

        cam = ONVIFCamera(
            self.camera.host, self.camera.http_port, self.camera.username, self._password
        )
        subscription: Any = None
        try:
            subscription, pullpoint, renew_at, envelopes = await self._subscribe(cam)
            granted = round(renew_at - asyncio.get_running_loop().time(), 1)
            wait = max(0.5, min(wait, self.cfg.pull_timeout))
            await self._call(
                "PullMessages",
                pullpoint.PullMessages(
                    {"MessageLimit": self.cfg.message_limit, "Timeout": timedelta(seconds=wait)}
                ),
                wait + self.cfg.timeout,
            )
            return {"renew_in": granted, "notifications": len(envelopes.notifications)}
        finally:
            if subscription is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2):
                        await subscription.Unsubscribe()
            with contextlib.suppress(Exception):
                await cam.close()

    async def _call(self, what: str, call: Awaitable[Any], timeout: float) -> Any:
        """One SOAP call within ``timeout``, its errors as the input's own."""
        from onvif.exceptions import ONVIFAuthError, ONVIFError  # noqa: PLC0415
        from zeep.exceptions import Fault  # noqa: PLC0415

        try:
            async with asyncio.timeout(timeout):
                return await call
        except TimeoutError:
            raise ConnectError(f"{what}: no answer within {timeout:g} s") from None
        except ONVIFAuthError as exc:
            raise AuthenticationFailed(f"{what}: {self._clean(exc)}") from exc
        except Fault as exc:
            text = self._clean(exc)
            folded = text.lower().replace(" ", "")
            if "notauthorized" in folded or "senderwasnotauthorized" in folded:
                raise AuthenticationFailed(f"{what}: {text}") from exc
            if what in ("PullMessages", "Renew"):
                raise _SubscriptionLost(f"{what}: {text}") from exc
            raise ConnectError(f"{what}: {text}") from exc
        except ONVIFError as exc:
            text = self._clean(exc)
            if "notauthorized" in text.lower().replace(" ", ""):
                raise AuthenticationFailed(f"{what}: {text}") from exc
            raise ConnectError(f"{what}: {text}") from exc
        except Exception as exc:  # aiohttp, zeep's transport and parse errors: open-ended
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise ConnectError(f"{what}: {type(exc).__name__}: {self._clean(exc)}") from exc

    async def _subscribe(self, cam: Any) -> tuple[Any, Any, float, _Envelopes]:
        cfg = self.cfg
        await self._call("GetServices", cam.update_xaddrs(), cfg.timeout)
        events = await self._call("events service", cam.create_events_service(), cfg.timeout)
        result = await self._call(
            "CreatePullPointSubscription",
            events.CreatePullPointSubscription(
                {"InitialTerminationTime": f"PT{int(cfg.subscription)}S"}
            ),
            cfg.timeout,
        )
        address = result.SubscriptionReference.Address._value_1
        cam.xaddrs[_PULLPOINT] = self._on_camera_host(str(address))
        subscription = await self._call(
            "subscription service",
            cam.create_subscription_service("PullPointSubscription"),
            cfg.timeout,
        )
        pullpoint = await self._call(
            "pullpoint service", cam.create_pullpoint_service(), cfg.timeout
        )
        envelopes = _Envelopes()
        pullpoint.zeep_client.plugins.append(envelopes)
        self.subscriptions += 1
        self.stats.inc("onvif_subscriptions", self.camera.name)
        return subscription, pullpoint, self._renew_at(result), envelopes

    def _renew_at(self, result: Any) -> float:
        """When to renew: 80% of what the camera granted, by the camera's own clock."""
        granted = self.cfg.subscription
        current = getattr(result, "CurrentTime", None)
        termination = getattr(result, "TerminationTime", None)
        if isinstance(current, datetime) and isinstance(termination, datetime):
            granted = (termination - current).total_seconds()
        granted = max(1.0, min(granted, self.cfg.subscription * 10))
        return asyncio.get_running_loop().time() + granted * _RENEW_AT

    async def _pull(
        self, subscription: Any, pullpoint: Any, renew_at: float, envelopes: _Envelopes
    ) -> None:
        cfg = self.cfg
        loop = asyncio.get_running_loop()
        while True:
            left = renew_at - loop.time()
            if left <= _RENEW_MARGIN:  # no pull would end before it is due
                result = await self._call(
                    "Renew",
                    subscription.Renew({"TerminationTime": f"PT{int(cfg.subscription)}S"}),
                    cfg.timeout,
                )
                renew_at = self._renew_at(result)
                self.renewals += 1
                self.stats.inc("onvif_renewals", self.camera.name)
                continue
            wait = min(cfg.pull_timeout, left)
            await self._call(
                "PullMessages",
                pullpoint.PullMessages(
                    {"MessageLimit": cfg.message_limit, "Timeout": timedelta(seconds=wait)}
                ),
                wait + cfg.timeout,
            )
            notifications, envelopes.notifications = envelopes.notifications, []
            for xml in notifications:
                self._notification(xml)

    def _notification(self, xml: bytes) -> None:
        """One notification, through the metadata track's parser."""
        name = self.camera.name
        self.stats.inc("onvif_notifications", name)
        try:
            reads, _ = document_events(
                _DOC_HEAD + xml + _DOC_TAIL,
                camera=name,
                received=self._now(),
                max_size=self.cfg.max_document,
                source=Source.ONVIF,
            )
        except ProtocolError as exc:
            n = self.stats.inc("bad_documents", name)
            log_counted(
                self._log, n, "warning", "bad event notification", error=str(exc), bad_documents=n
            )
            return
        for read in reads:
            self._deliver(read)
