"""Many simulated cameras on all three transports in one process, for the scale benchmark.

TCP cameras listen for lprmeta; RTSP cameras serve their metadata stream and
pictures; HTTP cameras push to lprmeta's receiver. Each sends ``--rate`` reads
a second with pictures, every plate unique. JSON lines on stdout:

    {"ready": {"tcp": [port, ...], "rtsp": [[rtsp_port, web_port], ...]}}
    {"consumers": n}          every second until "go" arrives on stdin
    {"sent": [[plate, t_monotonic, pictures], ...]}   in batches
    {"done": {...}}
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from _sim_link import say, sent_log, stdin_reader, wait_for_go

from lprmeta.log import configure_logging
from lprmeta.simulator.camera import SimulatedCamera
from lprmeta.simulator.script import ReadFactory


async def drive(
    name: str,
    cam: SimulatedCamera,
    *,
    factory: ReadFactory,
    args: argparse.Namespace,
    log: list[list[object]],
    end: float,
) -> dict[str, int]:
    rng = random.Random(name)
    period = 1 / args.rate
    await asyncio.sleep(rng.uniform(0, period))
    counts = {"sent": 0, "failed": 0}
    seq = 0
    next_at = time.monotonic()
    while time.monotonic() < end:
        seq += 1
        read = factory.next(plate=f"{name}N{seq:06d}")
        t0 = time.monotonic()
        result = await cam.send_read(read)
        delivered = result.tcp + result.rtsp + result.http
        if delivered:
            counts["sent"] += 1
            pictures = 1 if cam.rtsp is not None else len(read.pictures)
            log.append([read.plate, t0, pictures])
        else:
            counts["failed"] += 1
        next_at += period
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    return counts


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tcp", type=int, default=67)
    ap.add_argument("--rtsp", type=int, default=66)
    ap.add_argument("--http", type=int, default=67)
    ap.add_argument(
        "--http-target", required=True, help="receiver URL prefix; the camera name is appended"
    )
    ap.add_argument("--rate", type=float, default=1.0, help="reads per second per camera")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--picture-bytes", type=int, default=30_000)
    args = ap.parse_args()
    configure_logging(fmt="json", level="error")
    tcp = [SimulatedCamera(tcp_port=0) for _ in range(args.tcp)]
    rtsp = [SimulatedCamera(rtsp_port=0) for _ in range(args.rtsp)]
    http = [
        SimulatedCamera(http_target=f"{args.http_target}scale-h{i:03d}", http_era="mixed")
        for i in range(args.http)
    ]
    for cam in tcp + rtsp + http:
        await cam.start()
    say(
        {
            "ready": {
                "tcp": [c.tcp.port for c in tcp if c.tcp],
                "rtsp": [[c.rtsp.port, c.web.port] for c in rtsp if c.rtsp and c.web],
            }
        }
    )
    reader = await stdin_reader()
    await wait_for_go(reader, lambda: {"consumers": sum(c.consumers for c in tcp + rtsp)})
    async with sent_log() as log:
        end = time.monotonic() + args.seconds
        named = (
            [(f"T{i:03d}", c) for i, c in enumerate(tcp)]
            + [(f"R{i:03d}", c) for i, c in enumerate(rtsp)]
            + [(f"H{i:03d}", c) for i, c in enumerate(http)]
        )
        results = await asyncio.gather(
            *(
                drive(
                    name,
                    cam,
                    factory=ReadFactory(seed=k, picture_bytes=args.picture_bytes),
                    args=args,
                    log=log,
                    end=end,
                )
                for k, (name, cam) in enumerate(named)
            )
        )
    say({"done": {k: sum(r[k] for r in results) for k in ("sent", "failed")}})
    await reader.readline()  # hold everything open until told to stop
    for cam in tcp + rtsp + http:
        await cam.close()


if __name__ == "__main__":
    asyncio.run(main())
