"""MQTT sink throughput against a real mosquitto on loopback (issue 8).

Two figures, QoS 1 (each event acknowledged by the broker before the next):

* live: events handed to the daemon as fast as it takes them; events/s until
  the broker has acknowledged the last one;
* catch-up: the broker is stopped, ``--backlog`` events arrive (held in the
  buffer, or with ``--spool`` in the spool file), the broker is started again;
  events/s from its return until the backlog is sent, and whether all of them
  reached a subscriber in order.

Usage: ``python bench/mqtt_bench.py [--events 20000] [--backlog 10000] [--spool]``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, machine, save, table

sys.path.insert(0, str(ROOT))

from lprmeta.config import parse_config
from lprmeta.daemon import Daemon
from lprmeta.events import Event, Kind, Source
from tests.sinks.mosquitto import Broker, recording


def car(i: int) -> Event:
    return Event(kind=Kind.PLATE, camera=f"cam{i % 50}", source=Source.TCP, plate=f"B{i:07d}")


async def wait_for(cond: Any, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError
        await asyncio.sleep(0.005)


async def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    broker = Broker(work / "broker")
    broker.workdir.mkdir()
    broker.start()
    mqtt: dict[str, Any] = {
        "port": broker.port,
        "prefix": "bench",
        "client_id": "bench",
        "qos": 1,
        "buffer": args.events + args.backlog,  # the bench measures speed, not overflow
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
    }
    if args.spool:
        mqtt["spool"] = str(work / "mqtt.spool")
    mqtt["discovery"] = args.discovery
    config = parse_config(
        {
            "output": {"snapshot_dir": str(work / "snap")},
            "store": {"enabled": False},  # the MQTT sink alone
            "bus": {"dedup_window": 0},
            "mqtt": mqtt,
        }
    )
    out: dict[str, Any] = {}
    try:
        async with recording(broker, "bench/+/plate") as rec:
            async with Daemon(config, stdout=io.BytesIO()) as d:
                sent = lambda: d.stats.total("mqtt_sent:mqtt")  # noqa: E731
                await wait_for(lambda: d.health.sinks["mqtt"].state == "up")
                t0 = time.perf_counter()
                for i in range(args.events):
                    d.deliver(car(i))
                    if i % 500 == 499:
                        await asyncio.sleep(0)  # let the sink run, as inputs would
                await wait_for(lambda: sent() >= args.events)
                live = args.events / (time.perf_counter() - t0)
                out["live_events_s"] = round(live)

                broker.stop()
                await wait_for(lambda: d.health.sinks["mqtt"].state == "down")
                base = sent()
                for i in range(args.events, args.events + args.backlog):
                    d.deliver(car(i))
                broker.start()
                t0 = time.perf_counter()
                await wait_for(lambda: sent() >= base + args.backlog)
                out["catch_up_events_s"] = round(args.backlog / (time.perf_counter() - t0))
                out["dropped"] = d.stats.total("dropped:mqtt")
            total = args.events + args.backlog
            await wait_for(lambda: len({m.payload for m in rec.messages}) >= total, 120)
            seen = list(dict.fromkeys(json.loads(m.payload)["plate"] for m in rec.messages))
            out["received_in_order"] = seen == [car(i).plate for i in range(total)]
            out["received"] = len(seen)
    finally:
        broker.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--backlog", type=int, default=10_000)
    ap.add_argument("--spool", action="store_true", help="buffer in the spool file")
    ap.add_argument(
        "--discovery",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Home Assistant discovery on (the default) or off",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(bench(args, Path(tmp)))
    mode = "spool" if args.spool else "memory"
    total = args.events + args.backlog
    ok = result["received_in_order"] and not result["dropped"] and result["received"] == total
    rows = [
        ("MQTT QoS 1 events/s, live", str(result["live_events_s"]), "", ""),
        (
            f"MQTT catch-up after a broker restart ({mode}), events/s",
            str(result["catch_up_events_s"]),
            "",
            "",
        ),
        (
            "received by a subscriber, in order, dropped",
            f"{result['received']}/{total}, {result['received_in_order']}, {result['dropped']}",
            f"{total}/{total}, True, 0",
            "yes" if ok else "NO",
        ),
    ]
    print(table(rows))
    save("mqtt" if not args.spool else "mqtt-spool", {"machine": machine(), **vars(args), **result})


if __name__ == "__main__":
    main()
