"""``lprmeta simulate``: run the simulated camera from the command line.

It logs what it sends to stderr and prints nothing on stdout, so it can run
beside ``lprmeta run`` in one terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..log import get_logger
from .camera import SimulatedCamera
from .script import ONVIF_FLAVOURS, ReadFactory, analytics_document

__all__ = ["add_simulate_parser", "cmd_simulate", "simulate"]


def add_simulate_parser(sub: Any, add_logging: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "simulate",
        help="run a simulated Milesight LPR camera on loopback (for demos and tests)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--tcp-port", type=int, default=None, help="serve the LPR TCP protocol here")
    p.add_argument(
        "--rtsp-port", type=int, default=None, help="serve the ONVIF metadata stream here"
    )
    p.add_argument(
        "--web-port",
        type=int,
        default=None,
        help="the camera's web port: pictures and ONVIF (default: any free port with RTSP)",
    )
    p.add_argument(
        "--http-target",
        default=None,
        metavar="URL",
        help="push reads to this URL, as a camera's HTTP Post setting does",
    )
    p.add_argument(
        "--http-era",
        choices=["old", "new", "mixed"],
        default="mixed",
        help="field naming: abc_def (old firmware), Abc Def (new), or alternate",
    )
    p.add_argument(
        "--http-get-every",
        type=int,
        default=0,
        help="every Nth HTTP push is a GET with the plate in the URL (0 = never)",
    )
    p.add_argument("--http-username", default="", help="credentials for the receiver")
    p.add_argument("--http-password", default="")
    p.add_argument("--username", default="admin", help="the camera account")
    p.add_argument("--password", default="sim-password")
    p.add_argument("--rtsp-auth", choices=["none", "basic", "digest"], default="digest")
    p.add_argument("--web-auth", choices=["none", "basic", "digest"], default="digest")
    p.add_argument(
        "--session-timeout", type=int, default=60, help="RTSP session timeout it enforces (s)"
    )
    p.add_argument("--video", action="store_true", help="add an H.264 track to the RTSP stream")
    p.add_argument("--mtu", type=int, default=1200, help="largest RTP payload of a document")
    p.add_argument(
        "--onvif-flavour",
        choices=ONVIF_FLAVOURS,
        default="milesight",
        help="what the metadata track carries: Milesight's LicensePlateDetector, ONVIF "
        "Profile M's plate event, Profile M scene descriptions (object metadata), or Axis "
        "License Plate Verifier's event",
    )
    p.add_argument(
        "--analytics-rate",
        type=float,
        default=0.0,
        help="scene descriptions (tt:VideoAnalytics) per second on the RTSP stream",
    )
    p.add_argument("--rate", type=float, default=1.0, help="plate reads per second")
    p.add_argument("--count", type=int, default=0, help="stop after this many reads (0 = forever)")
    p.add_argument("--picture-bytes", type=int, default=20_000, help="bytes of pictures per read")
    p.add_argument(
        "--posts-every",
        type=int,
        default=5,
        help="every Nth read also sends a parking and a counting post (0 = never)",
    )
    p.add_argument("--seed", type=int, default=1)
    add_logging(p)


def camera_from_args(args: argparse.Namespace) -> SimulatedCamera:
    return SimulatedCamera(
        host=args.host,
        username=args.username,
        password=args.password,
        tcp_port=args.tcp_port,
        rtsp_port=args.rtsp_port,
        web_port=args.web_port,
        http_target=args.http_target,
        http_username=args.http_username,
        http_password=args.http_password,
        http_era=args.http_era,
        rtsp_auth=args.rtsp_auth,
        web_auth=args.web_auth,
        session_timeout=args.session_timeout,
        video=args.video,
        mtu=args.mtu,
        onvif_flavour=args.onvif_flavour,
    )


async def _analytics(cam: SimulatedCamera, rate: float) -> None:
    assert cam.rtsp is not None
    n = 0
    while True:
        await asyncio.sleep(1 / rate)
        n += 1
        await cam.rtsp.send_document(analytics_document(datetime.now(UTC), seed=n))


async def simulate(args: argparse.Namespace, stop: asyncio.Event | None = None) -> int:
    log = get_logger("lprmeta.simulator")
    if args.tcp_port is None and args.rtsp_port is None and args.http_target is None:
        log.error("nothing to simulate: give --tcp-port, --rtsp-port and/or --http-target")
        return 2
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    factory = ReadFactory(seed=args.seed, picture_bytes=args.picture_bytes)
    async with camera_from_args(args) as cam:
        for name, part in (("tcp", cam.tcp), ("rtsp", cam.rtsp), ("web", cam.web)):
            if part is not None:
                log.info(
                    "simulated camera listening", transport=name, host=args.host, port=part.port
                )
        extra = (
            asyncio.create_task(_analytics(cam, args.analytics_rate))
            if cam.rtsp is not None and args.analytics_rate > 0
            else None
        )
        sent = 0
        try:
            while not stop.is_set() and (args.count == 0 or sent < args.count):
                if cam.pusher is None and not cam.consumers:
                    with contextlib.suppress(TimeoutError):  # nobody listens yet: wait
                        async with asyncio.timeout(0.2):
                            await stop.wait()
                    continue
                read = factory.next()
                sent += 1
                get = bool(args.http_get_every) and sent % args.http_get_every == 0
                result = await cam.send_read(read, http_get=get, glued=sent % 2 == 0)
                for error in result.errors:
                    log.warning("push failed", target=args.http_target, error=error)
                if args.posts_every and sent % args.posts_every == 0:
                    await cam.send_posts(read, cars=sent)
                log.info("sent read", plate=read.plate, seq=read.seq)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1 / args.rate):
                        await stop.wait()
        finally:
            if extra is not None:
                extra.cancel()
    log.info("simulated camera stopped", reads=sent)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    return asyncio.run(simulate(args))
