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
from typing import Any

import aiohttp

from ..log import get_logger
from ..protocol.tcp import COMM_COUNTING_POST, COMM_PARKING_POST
from .http import HttpPusher
from .script import Read, ReadFactory, counting_post, parking_post
from .tcp import TcpCameraServer

__all__ = ["add_simulate_parser", "cmd_simulate"]


def add_simulate_parser(sub: Any, add_logging: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "simulate",
        help="run a simulated Milesight LPR camera on loopback (for demos and tests)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--tcp-port", type=int, default=None, help="serve the LPR TCP protocol here")
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
    p.add_argument("--username", default="admin")
    p.add_argument("--password", default="sim-password")
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


async def simulate(args: argparse.Namespace) -> int:
    log = get_logger("lprmeta.simulator")
    if args.tcp_port is None and args.http_target is None:
        log.error("nothing to simulate: give --tcp-port and/or --http-target")
        return 2
    server: TcpCameraServer | None = None
    if args.tcp_port is not None:
        server = TcpCameraServer(
            host=args.host, port=args.tcp_port, username=args.username, password=args.password
        )
        await server.start()
        log.info("simulated camera listening", transport="tcp", host=args.host, port=server.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    factory = ReadFactory(seed=args.seed, picture_bytes=args.picture_bytes)
    pusher = (
        HttpPusher(args.http_target, username=args.http_username, password=args.http_password)
        if args.http_target
        else None
    )
    sent = 0
    try:
        if pusher is not None:
            await pusher.__aenter__()
        while not stop.is_set() and (args.count == 0 or sent < args.count):
            if server is not None and pusher is None and not server.clients:
                with contextlib.suppress(TimeoutError):
                    await server.wait_for_clients(1, timeout=1.0)
                continue
            read = factory.next()
            sent += 1
            posts = bool(args.posts_every) and sent % args.posts_every == 0
            if server is not None:
                await server.send_read(read)
                if posts:
                    await server.send_post(COMM_PARKING_POST, parking_post(read))
                    await server.send_post(COMM_COUNTING_POST, counting_post(read.time, cars=sent))
            if pusher is not None:
                await _push(pusher, read, args, n=sent, posts=posts, log=log)
            log.info("sent read", plate=read.plate, seq=read.seq)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1 / args.rate):
                    await stop.wait()
    finally:
        if pusher is not None:
            await pusher.__aexit__(None, None, None)
        if server is not None:
            await server.close()
    log.info("simulated camera stopped", reads=sent)
    return 0


async def _push(
    pusher: HttpPusher, read: Read, args: argparse.Namespace, *, n: int, posts: bool, log: Any
) -> None:
    era = args.http_era if args.http_era != "mixed" else ("old", "new")[n % 2]
    try:
        if args.http_get_every and n % args.http_get_every == 0:
            await pusher.push_get(read, glued=n % 2 == 0)
        else:
            await pusher.push_read(read, era=era)
        if posts:
            await pusher.post(parking_post(read))
            await pusher.post(counting_post(read.time, cars=n))
    except (OSError, aiohttp.ClientError, TimeoutError) as exc:
        log.warning("HTTP push failed", target=args.http_target, error=str(exc))


def cmd_simulate(args: argparse.Namespace) -> int:
    return asyncio.run(simulate(args))
