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

from ..log import get_logger
from ..protocol.tcp import COMM_COUNTING_POST, COMM_PARKING_POST
from .script import ReadFactory, counting_post, parking_post
from .tcp import TcpCameraServer

__all__ = ["add_simulate_parser", "cmd_simulate"]


def add_simulate_parser(sub: Any, add_logging: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "simulate",
        help="run a simulated Milesight LPR camera on loopback (for demos and tests)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--tcp-port", type=int, default=None, help="serve the LPR TCP protocol here")
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
    if args.tcp_port is None:
        log.error("nothing to simulate: give --tcp-port")
        return 2
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
    sent = 0
    try:
        while not stop.is_set() and (args.count == 0 or sent < args.count):
            if not server.clients:
                with contextlib.suppress(TimeoutError):
                    await server.wait_for_clients(1, timeout=1.0)
                continue
            read = factory.next()
            await server.send_read(read)
            sent += 1
            log.info("sent read", plate=read.plate, seq=read.seq, clients=len(server.clients))
            if args.posts_every and sent % args.posts_every == 0:
                await server.send_post(COMM_PARKING_POST, parking_post(read))
                await server.send_post(COMM_COUNTING_POST, counting_post(read.time, cars=sent))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1 / args.rate):
                    await stop.wait()
    finally:
        await server.close()
    log.info("simulated camera stopped", reads=sent)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    return asyncio.run(simulate(args))
