"""Home Assistant discovery (issue 15): a camera's read to its ``event`` entity message.

One daemon (in this process) with 200 HTTP cameras and the MQTT sink with discovery
on, against a real mosquitto on loopback. Every camera POSTs one read a second
(with a 20 KB plate picture, so the image entity is published too); a subscriber
takes ``<prefix>/+/ha/event``. Latency: from the start of the POST to the event
entity's message arriving at the subscriber. The store is off (this is the MQTT
path); QoS 1.

Usage: ``python bench/ha_bench.py [--cameras 200] [--seconds 30]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, free_port, machine, percentiles, save, table

sys.path.insert(0, str(ROOT))

import aiohttp
import aiomqtt

from lprmeta.config import parse_config
from lprmeta.daemon import Daemon
from lprmeta.simulator.http import HttpPusher
from lprmeta.simulator.script import ReadFactory
from tests.sinks.mosquitto import Broker


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    broker = Broker(work / "broker")
    broker.workdir.mkdir()
    broker.start()
    http_port = free_port()
    names = [f"cam{i:03d}" for i in range(args.cameras)]
    config = parse_config(
        {
            "output": {"snapshot_dir": str(work / "snaps"), "stdout": False},
            "store": {"enabled": False},
            "http": {"listen": f"127.0.0.1:{http_port}"},
            "mqtt": {"port": broker.port, "prefix": "bench", "client_id": "bench", "qos": 1},
            "cameras": [{"name": n, "host": "127.0.0.1", "http": {}} for n in names],
        }
    )
    sent: dict[str, float] = {}
    arrived: dict[str, float] = {}
    subscribed = asyncio.Event()

    async def subscriber() -> None:
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier="bench-ha") as client:
            await client.subscribe("bench/+/ha/event", qos=1)
            subscribed.set()
            async for m in client.messages:
                now = time.monotonic()
                if isinstance(m.payload, bytes):
                    arrived.setdefault(json.loads(m.payload).get("plate"), now)

    listener = asyncio.create_task(subscriber())
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        async with Daemon(config):
            await asyncio.sleep(2)  # discovery published, everything connected
            connector = aiohttp.TCPConnector(limit=args.cameras)
            async with aiohttp.ClientSession(connector=connector) as session:

                async def camera(i: int, name: str) -> None:
                    factory = ReadFactory(seed=i, picture_bytes=20_000, with_full=False)
                    push = HttpPusher(f"http://127.0.0.1:{http_port}/lpr/{name}", session=session)
                    await asyncio.sleep(random.Random(i).random())  # spread over the second
                    start = time.monotonic()
                    n = 0
                    while time.monotonic() - start < args.seconds:
                        plate = f"{name.upper()}N{n:05d}"
                        sent[plate] = time.monotonic()
                        await push.push_read(factory.next(plate=plate))
                        n += 1
                        await asyncio.sleep(max(0.0, start + n - time.monotonic()))

                await asyncio.gather(*(camera(i, n) for i, n in enumerate(names)))
            deadline = time.monotonic() + 10
            while len(arrived) < len(sent) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        broker.stop()
    lat = [(arrived[p] - t) * 1000 for p, t in sent.items() if p in arrived]
    return {
        "machine": machine(),
        "cameras": args.cameras,
        "seconds": args.seconds,
        "reads": len(sent),
        "events_fired": len(lat),
        "latency_ms": {k: round(v, 2) for k, v in percentiles(lat).items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lprmeta-bench-ha-") as tmp:
        result = asyncio.run(bench(args, Path(tmp)))
    save("ha", result)
    lat = result["latency_ms"]
    print(f"Home Assistant event entity on {result['machine']}:")
    print(
        table(
            [
                ("cameras x 1 read/s, with a picture", f"{args.cameras}", "", ""),
                (
                    "reads sent / event entity messages",
                    f"{result['reads']} / {result['events_fired']}",
                    "",
                    "",
                ),
                (
                    "read -> event entity message, p50 / p99",
                    f"{lat['p50']:.1f} / {lat['p99']:.1f} ms",
                    "",
                    "",
                ),
            ]
        )
    )


if __name__ == "__main__":
    main()
