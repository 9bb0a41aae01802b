"""The simulated camera's web server: its picture endpoint and its ONVIF service.

* Pictures: ``GET /LPR/<name>.jpg``, as the guide's "3. RTSP Type" says;
  **only the 10 latest pictures** are kept (older ones answer 404), with
  Basic or Digest authentication like the camera's web login.
* ONVIF (SOAP 1.2 on ``/onvif/device_service`` and ``/onvif/media_service``):
  GetServices, GetCapabilities, GetDeviceInformation, GetSystemDateAndTime,
  GetProfiles, GetStreamUri, GetSnapshotUri; requests must carry a WS-Security
  UsernameToken (digest or text) with the camera's credentials.
* ONVIF events, PullPoint (``/onvif/events_service``): CreatePullPointSubscription
  gives a subscription of its own address with a termination time (enforced: an
  expired or unknown subscription is a fault), PullMessages waits up to its Timeout
  for what :meth:`CameraWebServer.publish_event` queued, Renew, Unsubscribe,
  SetSynchronizationPoint. :meth:`CameraWebServer.reboot` forgets every
  subscription, as a camera that restarts does.
* Fault modes (:class:`WebFaults`) for the pictures: stall, a fixed status, a
  body that is not a JPEG, a redirect, an oversize body, a slow body.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from lxml import etree

from ..log import get_logger
from ..protocol.auth import check_basic, check_digest, digest_challenge
from .script import fake_jpeg

__all__ = ["CameraWebServer", "WebFaults"]

_SOAP = "http://www.w3.org/2003/05/soap-envelope"
_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
_WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_NS = (
    f'xmlns:s="{_SOAP}" xmlns:tt="http://www.onvif.org/ver10/schema" '
    'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" '
    'xmlns:trt="http://www.onvif.org/ver10/media/wsdl" '
    'xmlns:ter="http://www.onvif.org/ver10/error" '
    'xmlns:tev="http://www.onvif.org/ver10/events/wsdl" '
    'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" '
    'xmlns:wsa5="http://www.w3.org/2005/08/addressing" '
    'xmlns:tns1="http://www.onvif.org/ver10/topics" '
    'xmlns:tnsaxis="http://www.axis.com/2009/event/topics" '
    'xmlns:wsrf-rw="http://docs.oasis-open.org/wsrf/rw-2"'
)
_DURATION = re.compile(r"^P(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)$")
_NOTIFICATION = re.compile(rb"<(\w+:)?NotificationMessage\b.*?</(\w+:)?NotificationMessage>", re.S)
MAX_QUEUED = 1000  # notifications a subscription keeps for its next pull


class _SoapFault(Exception):
    def __init__(self, subcode: str, reason: str) -> None:
        super().__init__(reason)
        self.subcode = subcode
        self.reason = reason


@dataclass
class _Subscription:
    terminates: float  # time.time()
    queue: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_QUEUED))
    more: asyncio.Event = field(default_factory=asyncio.Event)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _seconds(text: str | None, default: float) -> float:
    """An xs:duration (PT60S, PT1M) or an xs:dateTime (until then), in seconds."""
    if not text:
        return default
    text = text.strip()
    m = _DURATION.match(text)
    if m:
        h, mi, s = (float(x) if x else 0.0 for x in m.groups())
        return h * 3600 + mi * 60 + s
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return default
    return max(0.0, when.timestamp() - time.time())


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@dataclass
class WebFaults:
    """Picture-endpoint misbehaviour, switched on by tests and demos."""

    stall: bool = False  # hold every picture response until released
    status: int | None = None  # answer every picture request with this status
    not_jpeg: bool = False
    redirect_to: str | None = None  # 302 to this URL
    oversize: int | None = None  # serve this many bytes instead of the picture
    slow_seconds: float = 0.0  # spread the body over this long


@dataclass
class DeviceIdentity:
    manufacturer: str = "Milesight Technology Co.,Ltd."
    model: str = "MS-C5367-X23LPC"
    firmware: str = "45.8.0.3-LPR_XX-r9"
    serial: str = "6016D1B2C3D4"
    hardware_id: str = "V1.0"


@dataclass
class _Stats:
    served: int = 0
    not_found: int = 0
    unauthorized: int = 0
    soap: dict[str, int] = field(default_factory=dict)
    subscriptions: int = 0  # CreatePullPointSubscription answered
    renewals: int = 0
    unsubscribed: int = 0
    notifications: int = 0  # handed out by PullMessages


class CameraWebServer:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "admin",
        password: str = "sim-password",
        auth: str = "digest",
        keep: int = 10,
        rtsp_url: str | None = None,
        identity: DeviceIdentity | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.auth = auth
        self.keep = keep
        self.rtsp_url = rtsp_url  # what GetStreamUri answers
        self.identity = identity or DeviceIdentity()
        self.faults = WebFaults()
        self.stats = _Stats()
        self.realm = "LPR Camera"
        self.pictures: OrderedDict[str, bytes] = OrderedDict()
        self._nonces: list[str] = []
        self._released = asyncio.Event()
        self._released.set()
        self._runner: web.AppRunner | None = None
        self._seq = 0
        self.subscriptions: dict[str, _Subscription] = {}
        self._service = ""  # the path of the SOAP call being answered
        self._log = get_logger("lprmeta.simulator.web")

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/onvif/{service}", self._soap)
        app.router.add_get("/snapshot.jpg", self._snapshot)
        app.router.add_get("/{tail:.*}", self._picture)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def close(self) -> None:
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------ pictures

    def publish(self, data: bytes, when: datetime | None = None) -> str:
        """Keep a new picture (evicting beyond the latest ``keep``); returns its path."""
        when = when or datetime.now(UTC)
        self._seq += 1
        path = f"/LPR/{when:%Y%m%d%H%M%S}{self._seq:04d}.jpg"
        self.pictures[path] = data
        while len(self.pictures) > self.keep:
            self.pictures.popitem(last=False)
        return path

    def stall(self) -> None:
        self.faults.stall = True
        self._released.clear()

    def release(self) -> None:
        self.faults.stall = False
        self._released.set()

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization")
        if self.auth == "none":
            return True
        if self.auth == "basic":
            return check_basic(header, self.username, self.password)
        return check_digest(
            header,
            user=self.username,
            password=self.password,
            realm=self.realm,
            method=request.method,
            nonce_ok=self._nonces.__contains__,
        )

    def _challenge(self) -> web.Response:
        self.stats.unauthorized += 1
        if self.auth == "basic":
            value = f'Basic realm="{self.realm}"'
        else:
            nonce = secrets.token_hex(16)
            self._nonces = [*self._nonces[-63:], nonce]
            value = digest_challenge(self.realm, nonce)
        return web.Response(status=401, headers={"WWW-Authenticate": value})

    async def _picture(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._challenge()
        await self._released.wait()
        f = self.faults
        if f.status is not None:
            return web.Response(status=f.status)
        if f.redirect_to is not None:
            return web.Response(status=302, headers={"Location": f.redirect_to})
        data = self.pictures.get(request.path)
        if data is None:
            self.stats.not_found += 1
            return web.Response(status=404, text="no such picture (only the 10 latest are kept)")
        if f.not_jpeg:
            data = b"<html><body>Please log in</body></html>"
        if f.oversize is not None:
            data = fake_jpeg(f.oversize)
        self.stats.served += 1
        if not f.slow_seconds:
            return web.Response(body=data, content_type="image/jpeg")
        resp = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
        resp.content_length = len(data)
        await resp.prepare(request)
        steps = 10
        for i in range(steps):
            await resp.write(data[i * len(data) // steps : (i + 1) * len(data) // steps])
            await asyncio.sleep(f.slow_seconds / steps)
        await resp.write_eof()
        return resp

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return self._challenge()
        latest = next(reversed(self.pictures.values()), None) if self.pictures else None
        return web.Response(body=latest or fake_jpeg(4096), content_type="image/jpeg")

    # ------------------------------------------------------------ ONVIF

    def _token_ok(self, envelope: Any) -> bool:
        """WS-Security UsernameToken: PasswordDigest = B64(SHA1(nonce + created + password))."""
        token = envelope.find(f".//{{{_WSSE}}}UsernameToken")
        if token is None:
            return False
        user = token.findtext(f"{{{_WSSE}}}Username") or ""
        pw_el = token.find(f"{{{_WSSE}}}Password")
        given = (pw_el.text or "") if pw_el is not None else ""
        if pw_el is not None and pw_el.get("Type", "").endswith("#PasswordDigest"):
            nonce = base64.b64decode(token.findtext(f"{{{_WSSE}}}Nonce") or "")
            created = token.findtext(f"{{{_WSU}}}Created") or ""
            raw = nonce + created.encode() + self.password.encode()
            expected = base64.b64encode(hashlib.sha1(raw, usedforsecurity=False).digest()).decode()
        else:
            expected = self.password
        ok_user = hmac.compare_digest(user.encode(), self.username.encode())
        ok_pw = hmac.compare_digest(given.encode(), expected.encode())
        return ok_user and ok_pw

    async def _soap(self, request: web.Request) -> web.Response:
        try:
            envelope = etree.fromstring(await request.read(), _PARSER)
        except etree.XMLSyntaxError:
            return self._fault("ter:InvalidArgs", "not XML", 400)
        body = envelope.find(f"{{{_SOAP}}}Body")
        op = etree.QName(body[0]).localname if body is not None and len(body) else ""
        self.stats.soap[op] = self.stats.soap.get(op, 0) + 1
        if op != "GetSystemDateAndTime" and not self._token_ok(envelope):
            return self._fault("ter:NotAuthorized", "Sender not Authorized", 400)
        handler = getattr(self, f"_op_{op}", None)
        if handler is None:
            return self._fault("ter:ActionNotSupported", f"{op} is not supported", 400)
        self._service = request.match_info.get("service", "")  # read before any await
        try:
            xml = handler(body[0] if body is not None else None)
            if not isinstance(xml, str):
                xml = await xml
        except _SoapFault as fault:
            return self._fault(fault.subcode, fault.reason, 400)
        return web.Response(
            text=f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope {_NS}><s:Body>{xml}'
            "</s:Body></s:Envelope>",
            content_type="application/soap+xml",
        )

    def _fault(self, subcode: str, reason: str, status: int) -> web.Response:
        xml = (
            f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope {_NS}><s:Body><s:Fault>'
            "<s:Code><s:Value>s:Sender</s:Value>"
            f"<s:Subcode><s:Value>{subcode}</s:Value></s:Subcode></s:Code>"
            f'<s:Reason><s:Text xml:lang="en">{reason}</s:Text></s:Reason>'
            "</s:Fault></s:Body></s:Envelope>"
        )
        return web.Response(text=xml, status=status, content_type="application/soap+xml")

    def _version(self) -> str:
        return "<tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version>"

    def _op_GetServices(self, _req: Any) -> str:  # named after the ONVIF operations
        services = [
            ("http://www.onvif.org/ver10/device/wsdl", "device_service"),
            ("http://www.onvif.org/ver10/media/wsdl", "media_service"),
            ("http://www.onvif.org/ver10/events/wsdl", "events_service"),
        ]
        return (
            "<tds:GetServicesResponse>"
            + "".join(
                f"<tds:Service><tds:Namespace>{ns}</tds:Namespace>"
                f"<tds:XAddr>{self.base}/onvif/{path}</tds:XAddr>{self._version()}</tds:Service>"
                for ns, path in services
            )
            + "</tds:GetServicesResponse>"
        )

    def _op_GetCapabilities(self, _req: Any) -> str:
        return (
            "<tds:GetCapabilitiesResponse><tds:Capabilities>"
            f"<tt:Device><tt:XAddr>{self.base}/onvif/device_service</tt:XAddr></tt:Device>"
            f"<tt:Media><tt:XAddr>{self.base}/onvif/media_service</tt:XAddr>"
            "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
            "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
            "</tt:StreamingCapabilities></tt:Media>"
            f"<tt:Events><tt:XAddr>{self.base}/onvif/events_service</tt:XAddr>"
            "<tt:WSSubscriptionPolicySupport>false</tt:WSSubscriptionPolicySupport>"
            "<tt:WSPullPointSupport>true</tt:WSPullPointSupport>"
            "<tt:WSPausableSubscriptionManagerInterfaceSupport>false"
            "</tt:WSPausableSubscriptionManagerInterfaceSupport></tt:Events>"
            "</tds:Capabilities></tds:GetCapabilitiesResponse>"
        )

    def _op_GetDeviceInformation(self, _req: Any) -> str:
        d = self.identity
        return (
            "<tds:GetDeviceInformationResponse>"
            f"<tds:Manufacturer>{d.manufacturer}</tds:Manufacturer><tds:Model>{d.model}</tds:Model>"
            f"<tds:FirmwareVersion>{d.firmware}</tds:FirmwareVersion>"
            f"<tds:SerialNumber>{d.serial}</tds:SerialNumber>"
            f"<tds:HardwareId>{d.hardware_id}</tds:HardwareId>"
            "</tds:GetDeviceInformationResponse>"
        )

    def _op_GetSystemDateAndTime(self, _req: Any) -> str:
        now = datetime.now(UTC)
        return (
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
            "<tt:UTCDateTime>"
            f"<tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}</tt:Minute>"
            f"<tt:Second>{now.second}</tt:Second></tt:Time>"
            f"<tt:Date><tt:Year>{now.year}</tt:Year><tt:Month>{now.month}</tt:Month>"
            f"<tt:Day>{now.day}</tt:Day></tt:Date>"
            "</tt:UTCDateTime></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
        )

    def _op_GetProfiles(self, _req: Any) -> str:
        video = (
            '<tt:VideoEncoderConfiguration token="enc0"><tt:Name>enc0</tt:Name>'
            "<tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding>"
            "<tt:Resolution><tt:Width>1920</tt:Width><tt:Height>1080</tt:Height></tt:Resolution>"
            "<tt:Quality>5</tt:Quality></tt:VideoEncoderConfiguration>"
        )
        metadata = (
            '<tt:MetadataConfiguration token="meta0"><tt:Name>meta0</tt:Name>'
            "<tt:UseCount>1</tt:UseCount><tt:SessionTimeout>PT60S</tt:SessionTimeout>"
            "</tt:MetadataConfiguration>"
        )
        return (
            "<trt:GetProfilesResponse>"
            f'<trt:Profiles token="main" fixed="true"><tt:Name>Main</tt:Name>{video}</trt:Profiles>'
            f'<trt:Profiles token="lpr" fixed="true"><tt:Name>LPR metadata</tt:Name>{video}'
            f"{metadata}</trt:Profiles>"
            "</trt:GetProfilesResponse>"
        )

    def _media_uri(self, tag: str, uri: str) -> str:
        return (
            f"<trt:{tag}><trt:MediaUri><tt:Uri>{uri}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
            "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
            f"<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:{tag}>"
        )

    def _op_GetStreamUri(self, _req: Any) -> str:
        return self._media_uri("GetStreamUriResponse", self.rtsp_url or "rtsp://0.0.0.0/")

    def _op_GetSnapshotUri(self, _req: Any) -> str:
        return self._media_uri("GetSnapshotUriResponse", f"{self.base}/snapshot.jpg")

    # ----------------------------------------------------------------- events (PullPoint)

    def publish_event(self, document: bytes) -> int:
        """Queue the notifications of a metadata document (``tt:MetadataStream``) for every
        live subscription; returns how many subscriptions took them."""
        now = time.time()
        messages = [m.group(0).decode() for m in _NOTIFICATION.finditer(document)]
        live = [s for s in self.subscriptions.values() if s.terminates > now]
        for sub in live:
            sub.queue.extend(messages)
            sub.more.set()
        return len(live)

    def reboot(self) -> None:
        """A camera that restarts forgets its subscriptions."""
        for sub in self.subscriptions.values():
            sub.more.set()  # a pull waiting on it answers (with a fault)
        self.subscriptions.clear()

    def _subscription(self) -> tuple[str, _Subscription]:
        sid = self._service.removeprefix("subscription_")
        sub = self.subscriptions.get(sid)
        if sub is None or sub.terminates <= time.time():
            self.subscriptions.pop(sid, None)
            raise _SoapFault("wsrf-rw:ResourceUnknownFault", "no such subscription")
        return sid, sub

    def _op_CreatePullPointSubscription(self, req: Any) -> str:
        wanted = req.findtext("{*}InitialTerminationTime") if req is not None else None
        seconds = min(_seconds(wanted, 60.0), 3600.0)
        sid = secrets.token_hex(6)
        now = time.time()
        self.subscriptions[sid] = _Subscription(now + seconds)
        self.stats.subscriptions += 1
        return (
            "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>"
            f"<wsa5:Address>{self.base}/onvif/subscription_{sid}</wsa5:Address>"
            f"</tev:SubscriptionReference><wsnt:CurrentTime>{_iso(now)}</wsnt:CurrentTime>"
            f"<wsnt:TerminationTime>{_iso(now + seconds)}</wsnt:TerminationTime>"
            "</tev:CreatePullPointSubscriptionResponse>"
        )

    async def _op_PullMessages(self, req: Any) -> str:
        sid, sub = self._subscription()
        timeout = min(_seconds(req.findtext("{*}Timeout") if req is not None else None, 10), 60)
        limit = int((req.findtext("{*}MessageLimit") if req is not None else None) or 100)
        if not sub.queue:
            sub.more.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await sub.more.wait()
            if sid not in self.subscriptions:
                raise _SoapFault("wsrf-rw:ResourceUnknownFault", "no such subscription")
        messages = [sub.queue.popleft() for _ in range(min(limit, len(sub.queue)))]
        self.stats.notifications += len(messages)
        now = time.time()
        return (
            f"<tev:PullMessagesResponse><tev:CurrentTime>{_iso(now)}</tev:CurrentTime>"
            f"<tev:TerminationTime>{_iso(sub.terminates)}</tev:TerminationTime>"
            + "".join(messages)
            + "</tev:PullMessagesResponse>"
        )

    def _op_Renew(self, req: Any) -> str:
        _, sub = self._subscription()
        wanted = req.findtext("{*}TerminationTime") if req is not None else None
        now = time.time()
        sub.terminates = now + min(_seconds(wanted, 60.0), 3600.0)
        self.stats.renewals += 1
        return (
            f"<wsnt:RenewResponse><wsnt:TerminationTime>{_iso(sub.terminates)}"
            f"</wsnt:TerminationTime><wsnt:CurrentTime>{_iso(now)}</wsnt:CurrentTime>"
            "</wsnt:RenewResponse>"
        )

    def _op_Unsubscribe(self, _req: Any) -> str:
        sid, _ = self._subscription()
        del self.subscriptions[sid]
        self.stats.unsubscribed += 1
        return "<wsnt:UnsubscribeResponse/>"

    def _op_SetSynchronizationPoint(self, _req: Any) -> str:
        self._subscription()
        return "<tev:SetSynchronizationPointResponse/>"
