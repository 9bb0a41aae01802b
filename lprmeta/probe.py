"""``lprmeta probe``: try each transport of a configured camera and say what works.

It runs the daemon's own code paths, once, against the camera: the TCP login
and registration, the ONVIF service (model, firmware, profiles, stream URI),
the RTSP DESCRIBE of the stream, the ONVIF event service's PullPoint (subscribe,
one pull, unsubscribe) when ``[cameras.onvif_events]`` is set, and, for ``--wait``
seconds, the RTSP input
itself, so a car passing shows that notifications arrive and that their
pictures can be fetched (otherwise the ONVIF snapshot is fetched to check the
picture endpoint and credentials). What does not work comes with the reason.

The report goes to stdout (this is not the daemon: no events are printed);
nothing in it, or in the logs, contains a password.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .bus import Bus
from .config import CameraConfig, Config
from .daemon import Input, camera_inputs
from .errors import LprmetaError, SnapshotError, TransportError
from .events import Event
from .firmware import check_features, recommendation
from .inputs.onvif import OnvifInfo, query_onvif
from .inputs.rtsp import RtspInput
from .inputs.rtsp_client import describe_stream
from .inputs.tcp import TcpInput
from .intake import Intake
from .log import redact_text
from .snapshots import CameraWeb, PictureFetcher
from .stats import Stats

__all__ = ["Check", "probe_camera", "render"]


@dataclass
class Check:
    transport: str  # tcp, onvif, rtsp, pictures, onvif_events, http
    ok: bool | None  # None: not configured, or not tried
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


async def probe_camera(
    cam: CameraConfig, config: Config, *, wait: float = 10.0, timeout: float = 10.0
) -> list[Check]:
    checks: list[Check] = []
    secrets = config.secrets()
    checks.append(await _tcp(cam, timeout))
    onvif, onvif_check = await _onvif(cam, timeout)
    checks.append(onvif_check)
    rtsp_check, url = await _rtsp(cam, onvif, onvif_check, timeout)
    checks.append(rtsp_check)
    checks.append(await _pictures(cam, url, onvif, wait=wait, timeout=timeout, ok=rtsp_check.ok))
    checks.append(await _events(cam, wait))
    checks.append(_http(cam, config))
    for check in checks:
        check.summary = redact_text(check.summary, secrets)
    return checks


async def _events(cam: CameraConfig, wait: float) -> Check:
    if cam.onvif_events is None:
        return Check("onvif_events", None, "not configured ([cameras.onvif_events] absent)")
    from .inputs.pullpoint import PullPointInput  # noqa: PLC0415

    where = {"host": cam.host, "port": cam.http_port}
    try:
        got = await PullPointInput(cam, deliver=lambda _read: None, stats=Stats()).probe(wait)
    except TransportError as exc:
        return Check("onvif_events", False, str(exc), where)
    summary = (
        f"subscribed (PullPoint); renewal due in {got['renew_in']:g} s; "
        f"{got['notifications']} notification(s) in the first pull"
    )
    return Check("onvif_events", True, summary, {**where, **got})


async def _tcp(cam: CameraConfig, timeout: float) -> Check:
    if cam.tcp is None:
        return Check("tcp", None, "not configured ([cameras.tcp] absent)")
    (tcp,) = (i for i in _pipeline(cam)[2] if isinstance(i, TcpInput))
    where = {"host": cam.host, "port": cam.tcp.port}
    try:
        async with asyncio.timeout(timeout):
            reply = await tcp.check()
    except TimeoutError:
        return Check("tcp", False, f"no answer within {timeout:g} s", where)
    except TransportError as exc:
        return Check("tcp", False, str(exc), where)
    registered = "all" if cam.tcp.register_all else ", ".join(cam.tcp.register or ())
    if reply is None:
        return Check("tcp", True, "login OK; the camera did not answer the registration", where)
    if not reply.ok:
        summary = f"login OK; registration of {registered} refused ({reply.result})"
        return Check("tcp", False, summary, where)
    return Check("tcp", True, f"login OK; registered {registered}", {**where, **reply.body})


async def _onvif(cam: CameraConfig, timeout: float) -> tuple[OnvifInfo | None, Check]:
    where = {"host": cam.host, "port": cam.http_port}
    try:
        info = await query_onvif(
            cam.host, cam.http_port, cam.username, cam.password.get(), timeout=timeout
        )
    except TransportError as exc:
        return None, Check("onvif", False, str(exc), where)
    device = info.device
    features = list(cam.tcp.register or ()) if cam.tcp is not None else []
    warnings = check_features(device.model, device.firmware, features) if device else []
    advice = recommendation(device.model, device.firmware) if device else None
    details = {
        **where,
        "device": asdict(device) if device else None,
        "profiles": [asdict(p) for p in info.profiles],
        "stream_uri": info.stream_uri,
        "notes": list(info.notes),
        "feature_warnings": warnings,
        "recommendation": advice,
    }
    model = f"{device.model} firmware {device.firmware}" if device else "unknown device"
    summary = f"{model}; {len(info.profiles)} profiles"
    if warnings:
        summary += "; " + "; ".join(warnings)
    return info, Check("onvif", True, summary, details)


async def _rtsp(
    cam: CameraConfig, onvif: OnvifInfo | None, onvif_check: Check, timeout: float
) -> tuple[Check, str | None]:
    if cam.rtsp is None:
        return Check("rtsp", None, "not configured ([cameras.rtsp] absent)"), None
    url = cam.rtsp.url or (onvif.stream_uri if onvif else None)
    if url is None:
        why = "it offers none" if onvif is not None else onvif_check.summary
        return Check("rtsp", False, f"no rtsp.url, and no stream URI from ONVIF: {why}"), None
    user = cam.rtsp.username if cam.rtsp.username is not None else cam.username
    secret = cam.rtsp.password if cam.rtsp.password is not None else cam.password
    try:
        info = await describe_stream(url, user, secret.get(), timeout=timeout)
    except TransportError as exc:
        return Check("rtsp", False, str(exc), {"url": url}), url
    details = {
        "url": url,
        "tracks": info.tracks,
        "session_timeout": info.session_timeout,
        "auth": info.auth,
        "server": info.server,
        "refresh": cam.rtsp.quiet_refresh(info.session_timeout),
    }
    timeout_text = f"{info.session_timeout} s" if info.session_timeout else "not advertised"
    summary = f"tracks: {', '.join(info.tracks)}; session timeout {timeout_text}"
    return Check("rtsp", True, summary, details), url


async def _pictures(
    cam: CameraConfig,
    url: str | None,
    onvif: OnvifInfo | None,
    *,
    wait: float,
    timeout: float,
    ok: bool | None,
) -> Check:
    if cam.rtsp is not None and ok and url is not None and wait > 0:
        event = await _watch(cam, url, wait)
        if event is not None:
            return _picture_check(event)
    async with PictureFetcher() as fetcher:
        if onvif is None or onvif.snapshot_uri is None:
            return Check("pictures", None, f"no plate passed within {wait:g} s; no snapshot URI")
        web = CameraWeb(cam.name, cam.host, cam.http_port, cam.username, cam.password.get())
        try:
            data = await fetcher.fetch(web, onvif.snapshot_uri, timeout=timeout)
        except SnapshotError as exc:
            return Check("pictures", False, f"snapshot: {exc.reason}", {"url": onvif.snapshot_uri})
    summary = f"no plate passed within {wait:g} s; the ONVIF snapshot came ({len(data)} bytes)"
    return Check("pictures", True, summary, {"url": onvif.snapshot_uri})


async def _watch(cam: CameraConfig, url: str, wait: float) -> Event | None:
    """Run the RTSP input for up to ``wait`` seconds; the first plate event, if any."""
    async with PictureFetcher() as fetcher:
        bus, intake, inputs = _pipeline(cam, fetcher)
        got = bus.subscribe("probe")
        (rtsp,) = (i for i in inputs if isinstance(i, RtspInput))
        rtsp.url = url
        async with rtsp:
            task = asyncio.create_task(rtsp.run())
            try:
                async with asyncio.timeout(wait):
                    while (event := await got.get()) is not None:
                        if event.plate or event.images:
                            return event
            except TimeoutError:
                pass
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, LprmetaError):
                    await task
                await intake.aclose(timeout=0.5)
    return None


def _pipeline(
    cam: CameraConfig, fetcher: PictureFetcher | None = None
) -> tuple[Bus, Intake, list[Input]]:
    """The daemon's own intake (without a store: pictures are fetched and hashed, not
    saved) and the camera's inputs, built as ``run`` builds them."""
    stats = Stats()
    bus = Bus(dedup_window=0, stats=stats)
    intake = Intake(bus=bus, stats=stats, cameras=[cam], fetcher=fetcher)
    return bus, intake, camera_inputs(cam, intake=intake, stats=stats)


def _picture_check(event: Event) -> Check:
    """The probe saves nothing: a fetched picture has its size and hash, and no path."""
    fetched = {i.role: i.bytes for i in event.images if not i.missing}
    missing = [i for i in event.images if i.missing]
    details = {"plate": event.plate, "fetched": fetched, "missing": [i.to_json() for i in missing]}
    if missing:
        summary = f"plate {event.plate}: picture missing: {missing[0].missing}"
        return Check("pictures", False, summary, details)
    if not fetched:
        return Check("pictures", None, f"plate {event.plate} came without a picture path", details)
    sizes = ", ".join(f"{role} {size} bytes" for role, size in fetched.items())
    return Check("pictures", True, f"plate {event.plate}: picture fetched ({sizes})", details)


def _http(cam: CameraConfig, config: Config) -> Check:
    if config.http is None:
        return Check("http", None, "the receiver is off ([http] absent)")
    host = config.http.host
    with contextlib.suppress(ValueError):  # a name, not an address
        if ipaddress.ip_address(host).is_unspecified:
            host = "<this host's address>"
    target = f"http://{host}:{config.http.port}{cam.http.path}"
    summary = f"cameras push to {target} (POST, or GET with the plate in the URL)"
    return Check("http", None, summary, {"url": target, "auth": bool(config.http.username)})


def render(camera: str, checks: list[Check], *, as_json: bool = False) -> str:
    if as_json:
        return json.dumps(
            {"camera": camera, "checks": [asdict(c) for c in checks]}, ensure_ascii=False
        )
    marks = {True: "ok  ", False: "FAIL", None: "-   "}
    lines = [f"camera {camera}:"]
    lines += [f"  {marks[c.ok]} {c.transport:<9} {c.summary}" for c in checks]
    return "\n".join(lines)
