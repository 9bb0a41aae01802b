"""Asking a camera's ONVIF service (onvif-zeep-async) for its model, firmware and stream URI.

Used when ``cameras.rtsp.url`` is not configured, and by ``lprmeta probe``.
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
import contextlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import AuthenticationFailed, ConnectError, NotResponding, TransportError
from ..log import redact_text

__all__ = ["DeviceInfo", "OnvifInfo", "Profile", "query_onvif"]

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
