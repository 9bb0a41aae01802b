"""Many simulated RTSP cameras in one process, for the benchmarks (runs on its own core).

Each camera is an RtspCameraServer on its own port, sending documents at
``--rate`` per second with a random phase; ``--analytics`` of them are scene
descriptions (tt:VideoAnalytics), the rest plate notifications with a unique
plate. Control and results are JSON lines:

    stdout  {"ready": [ports]}  once listening
            {"playing": n}      every second until "go"
            {"sent": [[plate, t_monotonic], ...]}  batches, after each document's
                                last fragment was handed to the socket
            {"done": {...}}     counts at the end
    stdin   "go\\n"             start sending for --seconds
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import UTC, datetime

from _sim_link import say, sent_log, stdin_reader, wait_for_go

from lprmeta.log import configure_logging
from lprmeta.simulator.rtsp import RtspCameraServer
from lprmeta.simulator.script import analytics_document, onvif_notification

_NS = 'xmlns:tt="http://www.onvif.org/ver10/schema"'


def scene_frame(now: datetime, n: int, plate: str | None, leaving: int | None) -> bytes:
    """A Profile M frame: two vehicles moving about, with ``plate`` a third object whose
    plate is read, and the object of the frame before deleted (the car left)."""
    when = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    objects = "".join(
        f'<tt:Object ObjectId="{k}"><tt:Appearance><tt:Shape><tt:BoundingBox left="0.{k}" '
        f'top="0.2" right="0.{k + 2}" bottom="0.6"/><tt:CenterOfGravity x="0.{k + 1}" y="0.4"/>'
        '</tt:Shape><tt:Class><tt:Type Likelihood="0.8">Vehicle</tt:Type></tt:Class>'
        "</tt:Appearance></tt:Object>"
        for k in (1, 2)
    )
    if plate is not None:
        objects += (
            f'<tt:Object ObjectId="{n + 100}"><tt:Appearance><tt:LicensePlateInfo>'
            f'<tt:PlateNumber Likelihood="0.9">{plate}</tt:PlateNumber>'
            '<tt:CountryCode Likelihood="0.9">NL</tt:CountryCode></tt:LicensePlateInfo>'
            "</tt:Appearance></tt:Object>"
        )
    tree = (
        f'<tt:ObjectTree><tt:Delete ObjectId="{leaving + 100}"/></tt:ObjectTree>'
        if leaving is not None
        else ""
    )
    return (
        f'<tt:MetadataStream {_NS}><tt:VideoAnalytics><tt:Frame UtcTime="{when}">'
        f"{objects}{tree}</tt:Frame></tt:VideoAnalytics></tt:MetadataStream>"
    ).encode()


async def camera(
    i: int, server: RtspCameraServer, args: argparse.Namespace, log: list[list[object]]
) -> dict[str, int]:
    rng = random.Random(i)
    period = 1 / args.rate
    await asyncio.sleep(rng.uniform(0, period))
    end = time.monotonic() + args.seconds
    counts = {"plates": 0, "analytics": 0, "missed": 0}
    n = 0
    next_at = time.monotonic()
    leaving: int | None = None  # the car whose plate the last frame carried
    while time.monotonic() < end:
        n += 1
        now = datetime.now(UTC)
        if args.scene_plates > 0:  # Profile M: every document a frame, some with a plate
            plate = f"C{i:03d}M{n:06d}"
            with_plate = rng.random() < args.scene_plates
            doc = scene_frame(now, n, plate if with_plate else None, leaving)
            leaving = n if with_plate else None
            kind = "plates" if with_plate else "analytics"
        elif rng.random() < args.analytics:
            doc = analytics_document(now, objects=3, seed=n)
            kind = "analytics"
        else:
            plate = f"C{i:03d}S{n:06d}"
            doc = onvif_notification(plate=plate, when=now, picture_path=None)
            kind = "plates"
        if server.broadcast(doc):
            counts[kind] += 1
            if kind == "plates":
                log.append([plate, time.monotonic()])
        else:
            counts["missed"] += 1
        next_at += period
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    return counts


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=200)
    ap.add_argument(
        "--base-port", type=int, default=0, help="first port (0: any free ports, reported)"
    )
    ap.add_argument("--rate", type=float, default=10.0)
    ap.add_argument("--analytics", type=float, default=0.0, help="share of scene descriptions")
    ap.add_argument(
        "--scene-plates",
        type=float,
        default=0.0,
        help="Profile M: every document a scene description; this share with a plate",
    )
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    configure_logging(fmt="json", level="warning")
    servers = [
        RtspCameraServer(
            port=args.base_port + i if args.base_port else 0, auth="digest", session_timeout=60
        )
        for i in range(args.cameras)
    ]
    for s in servers:
        await s.start()
    say({"ready": [s.port for s in servers]})
    reader = await stdin_reader()
    await wait_for_go(reader, lambda: {"playing": sum(len(s.playing) for s in servers)})
    async with sent_log() as log:
        results = await asyncio.gather(*(camera(i, s, args, log) for i, s in enumerate(servers)))
    totals = {k: sum(r[k] for r in results) for k in ("plates", "analytics", "missed")}
    say({"done": totals})
    await reader.readline()  # hold the streams open until told to stop
    for s in servers:
        await s.close()


if __name__ == "__main__":
    asyncio.run(main())
