"""Asking a camera's ONVIF service for its model, firmware and stream URI.

* :func:`query_onvif` (onvif-zeep-async): device information, media
  profiles and the RTSP URI. Used when ``cameras.rtsp.url`` is not configured,
  and by ``lprmeta probe``.
* :func:`device_information`: model and firmware only, for cameras whose URL
  is configured. It is one SOAP call (``GetDeviceInformation`` on the
  ONVIF-mandated ``/onvif/device_service``), written here with a WS-Security
  UsernameToken digest, so that identifying 200 cameras does not load zeep's
  WSDL machinery (~25-35 MiB) into a daemon that otherwise never needs it.

The service lives on the camera's web port (``cameras.http_port``). Errors
come back as :class:`~lprmeta.errors.TransportError` subclasses whose text
carries no password.

The stream URI a camera returns names the address the camera believes it
has; behind NAT that address is unreachable, and in any case lprmeta only
ever connects to the configured host. So the URI's host is replaced by the
configured one (and the replacement logged).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from xml.sax.saxutils import escape

import aiohttp
from lxml import etree

from ..errors import AuthenticationFailed, ConnectError, NotResponding, TransportError
from ..log import redact_text

__all__ = ["DeviceInfo", "OnvifInfo", "Profile", "device_information", "query_onvif"]

# onvif-zeep-async builds a zeep client per service and camera. Twenty of them
# being built at once left ~80 MiB behind (heap fragmentation), one at a time
# ~24 MiB in all, however many cameras (measured here). A few at a time keeps
# discovery moving when some cameras are slow to answer.
_CONCURRENT_QUERIES = 3
_slots: asyncio.Semaphore | None = None


def _query_slots() -> asyncio.Semaphore:
    global _slots  # noqa: PLW0603  # one limit per process, made lazily (needs no loop in 3.11)
    if _slots is None:
        _slots = asyncio.Semaphore(_CONCURRENT_QUERIES)
    return _slots


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    hardware_id: str | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    token: str
    name: str
    video: bool
    metadata: bool


@dataclass(frozen=True, slots=True)
class OnvifInfo:
    device: DeviceInfo | None
    profiles: tuple[Profile, ...] = ()
    stream_uri: str | None = None  # for the chosen profile, host = the configured host
    snapshot_uri: str | None = None
    profile: str | None = None  # token of the chosen profile
    notes: tuple[str, ...] = field(default=())


def _str(obj: Any, name: str) -> str | None:
    value = getattr(obj, name, None)
    return str(value) if value not in (None, "") else None


def pin_host(uri: str, host: str) -> tuple[str, bool]:
    """``uri`` with its host replaced by ``host`` (the port kept); True if it changed."""
    parts = urlsplit(uri)
    if (parts.hostname or "").lower() == host.lower():
        return uri, False
    port = f":{parts.port}" if parts.port else ""
    netloc = (f"[{host}]" if ":" in host else host) + port
    return urlunsplit(parts._replace(netloc=netloc)), True


async def query_onvif(
    host: str,
    port: int,
    username: str,
    password: str,
    *,
    timeout: float = 10.0,
    stream: bool = True,
) -> OnvifInfo:
    """Device information, media profiles and (with ``stream``) the RTSP URI of the
    profile that carries metadata (else the first)."""
    async with _query_slots():
        return await _query_one(host, port, username, password, timeout=timeout, stream=stream)


async def _query_one(
    host: str, port: int, username: str, password: str, *, timeout: float, stream: bool
) -> OnvifInfo:
    from onvif import ONVIFCamera  # noqa: PLC0415  # loads WSDLs: only when needed
    from onvif.exceptions import ONVIFAuthError, ONVIFError, ONVIFTimeoutError  # noqa: PLC0415
    from zeep.exceptions import Fault  # noqa: PLC0415

    cam = ONVIFCamera(host, port, username, password)
    try:
        async with asyncio.timeout(timeout):
            return await _query(cam, host, stream=stream)
    except TimeoutError as exc:
        raise NotResponding(
            f"ONVIF service at {host}:{port} did not answer within {timeout:g} s"
        ) from exc
    except ONVIFAuthError as exc:
        text = _clean(exc, password)
        raise AuthenticationFailed(f"ONVIF refused the credentials: {text}") from exc
    except Fault as exc:
        text = _clean(exc, password)
        if "notauthorized" in text.lower().replace(" ", "") or "sender not authorized" in text:
            raise AuthenticationFailed(f"ONVIF refused the credentials: {text}") from exc
        raise TransportError(f"ONVIF request failed: {text}") from exc
    except ONVIFTimeoutError as exc:
        raise NotResponding(f"ONVIF service timed out: {_clean(exc, password)}") from exc
    except ONVIFError as exc:
        raise ConnectError(f"ONVIF service unusable: {_clean(exc, password)}") from exc
    except OSError as exc:
        raise ConnectError(f"cannot reach the ONVIF service: {exc.strerror or exc}") from exc
    except Exception as exc:  # the library's error surface is open-ended
        # A web port that answers with an HTML login page (zeep's XMLSyntaxError), a 404
        # with no body (zeep's TransportError), or SOAP of an unexpected shape: translated
        # here, at the library's boundary, into the one error the RTSP input retries.
        raise ConnectError(
            f"the camera's web port did not answer as an ONVIF service: "
            f"{type(exc).__name__}: {_clean(exc, password)[:200]}"
        ) from exc
    finally:
        with contextlib.suppress(Exception):  # closing must never mask the answer
            await cam.close()


def _clean(exc: BaseException, password: str) -> str:
    return redact_text(str(exc), [password] if password else [])


async def _query(cam: Any, host: str, *, stream: bool) -> OnvifInfo:
    await cam.update_xaddrs()
    devicemgmt = await cam.create_devicemgmt_service()
    info = await devicemgmt.GetDeviceInformation()
    device = DeviceInfo(
        manufacturer=_str(info, "Manufacturer"),
        model=_str(info, "Model"),
        firmware=_str(info, "FirmwareVersion"),
        serial=_str(info, "SerialNumber"),
        hardware_id=_str(info, "HardwareId"),
    )
    media = await cam.create_media_service()
    raw_profiles = await media.GetProfiles() or []
    profiles = tuple(
        Profile(
            token=str(p.token),
            name=str(getattr(p, "Name", "") or p.token),
            video=getattr(p, "VideoEncoderConfiguration", None) is not None,
            metadata=getattr(p, "MetadataConfiguration", None) is not None,
        )
        for p in raw_profiles
    )
    chosen = next((p for p in profiles if p.metadata), profiles[0] if profiles else None)
    notes: list[str] = []
    uri = snapshot = None
    if stream and chosen is not None:
        reply = await media.GetStreamUri(
            {
                "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                "ProfileToken": chosen.token,
            }
        )
        uri, moved = pin_host(str(reply.Uri), host)
        if moved:
            notes.append(f"stream URI named another host ({reply.Uri}); using {host}")
        if not chosen.metadata:
            notes.append(f"no profile has a metadata configuration; using {chosen.name}")
        with contextlib.suppress(Exception):  # optional: not every camera offers it
            snap = await media.GetSnapshotUri({"ProfileToken": chosen.token})
            snapshot, _ = pin_host(str(snap.Uri), host)
    return OnvifInfo(
        device=device,
        profiles=profiles,
        stream_uri=uri,
        snapshot_uri=snapshot,
        profile=chosen.token if chosen else None,
        notes=tuple(notes),
    )


_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
_WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_OASIS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-"
_DIGEST_TYPE = _OASIS + "username-token-profile-1.0#PasswordDigest"
_BASE64_TYPE = _OASIS + "soap-message-security-1.0#Base64Binary"
_SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _username_token(username: str, password: str) -> str:
    """WS-Security UsernameToken with PasswordDigest = B64(SHA1(nonce + created + password))."""
    nonce = secrets.token_bytes(16)
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    digest = hashlib.sha1(nonce + created.encode() + password.encode(), usedforsecurity=False)
    return (
        f'<wsse:Security xmlns:wsse="{_WSSE}" xmlns:wsu="{_WSU}"><wsse:UsernameToken>'
        f"<wsse:Username>{escape(username)}</wsse:Username>"
        f'<wsse:Password Type="{_DIGEST_TYPE}">'
        f"{base64.b64encode(digest.digest()).decode()}</wsse:Password>"
        f'<wsse:Nonce EncodingType="{_BASE64_TYPE}">'
        f"{base64.b64encode(nonce).decode()}</wsse:Nonce>"
        f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"
    )


async def device_information(
    host: str, port: int, username: str, password: str, *, timeout: float = 10.0
) -> DeviceInfo:
    """GetDeviceInformation, without zeep (see the module docstring)."""
    envelope = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
        f"<s:Header>{_username_token(username, password)}</s:Header><s:Body>"
        '<GetDeviceInformation xmlns="http://www.onvif.org/ver10/device/wsdl"/>'
        "</s:Body></s:Envelope>"
    )
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/onvif/device_service"
    headers = {"Content-Type": "application/soap+xml; charset=utf-8"}
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.post(url, data=envelope.encode(), headers=headers) as resp,
        ):
            body = await resp.content.read(1024 * 1024)
    except TimeoutError as exc:
        raise NotResponding(f"ONVIF service at {host}:{port} did not answer in time") from exc
    except aiohttp.ClientError as exc:
        raise ConnectError(f"cannot reach the ONVIF service: {_clean(exc, password)}") from exc
    try:
        root = etree.fromstring(body, _SAFE_XML)
    except etree.XMLSyntaxError as exc:
        raise TransportError(f"ONVIF answered {resp.status} with no SOAP: {exc}") from exc
    fault = next(root.iter("{*}Fault"), None)
    if fault is not None:
        text = " ".join(t.strip() for t in fault.itertext() if t.strip())
        if "notauthorized" in text.lower().replace(" ", "") or resp.status == 401:
            raise AuthenticationFailed(f"ONVIF refused the credentials: {text}")
        raise TransportError(f"ONVIF request failed: {text}")
    reply = next(root.iter("{*}GetDeviceInformationResponse"), None)
    if reply is None:
        raise TransportError(f"ONVIF answered {resp.status} without device information")

    def field(name: str) -> str | None:
        el = next(reply.iterchildren(f"{{*}}{name}"), None)
        return el.text.strip() if el is not None and el.text and el.text.strip() else None

    return DeviceInfo(
        manufacturer=field("Manufacturer"),
        model=field("Model"),
        firmware=field("FirmwareVersion"),
        serial=field("SerialNumber"),
        hardware_id=field("HardwareId"),
    )
