"""A disk that takes 2 s per picture for one camera: how long do other cameras' reads take
from the intake to the bus? (Issue 12: no more than 50 ms; before the intake, picture
saves ran on the event loop and every camera waited for the slow one.)

Runs the real intake and bus in one process, with a store whose writes for camera
``slow`` sleep 2 s (a stand-in for a stalled filesystem), while 20 other cameras send
a read with two 100 KB pictures every 50 ms for 10 s. Prints the other cameras' delay
from hand-over to the bus (p50, p99, max) and the longest the event loop was held.

    .venv/bin/python bench/slow_disk_bench.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lprmeta.bus import Bus
from lprmeta.envelope import Picture, Read
from lprmeta.events import Event, ImageRef, Kind, Source
from lprmeta.intake import Intake
from lprmeta.stats import Stats
from lprmeta.storage import ImageStore

JPEG = b"\xff\xd8\xff\xe0" + bytes(100_000) + b"\xff\xd9"


class SlowDisk(ImageStore):
    def save(self, event: Event, picture: Picture) -> ImageRef:
        if event.camera == "slow":
            time.sleep(2.0)  # in the save thread: what a stalled disk does to a write
        return super().save(event, picture)


async def run(*, stalled: bool) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        bus = Bus(dedup_window=0)
        sub = bus.subscribe("out", maxsize=1_000_000)
        store = SlowDisk(Path(tmp)) if stalled else ImageStore(Path(tmp))
        intake = Intake(bus=bus, stats=Stats(), store=store)
        sent: dict[str, float] = {}
        delays: list[float] = []
        worst_hold = 0.0

        async def ticker() -> None:
            nonlocal worst_hold
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                worst_hold = max(worst_hold, now - last - 0.001)
                last = now

        async def reader() -> None:
            while (event := await sub.get()) is not None:
                if event.plate in sent:
                    delays.append(time.perf_counter() - sent.pop(event.plate))

        tasks = [asyncio.create_task(ticker()), asyncio.create_task(reader())]
        pics = (Picture("plate", JPEG), Picture("full", JPEG))
        end = time.perf_counter() + 10
        n = 0
        while time.perf_counter() < end:
            intake.put(Read(Event(kind=Kind.PLATE, camera="slow", source=Source.TCP), pics))
            for cam in range(20):
                plate = f"P{n}"
                n += 1
                sent[plate] = time.perf_counter()
                event = Event(kind=Kind.PLATE, camera=f"cam{cam}", source=Source.TCP, plate=plate)
                intake.put(Read(event, pics))
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        for t in tasks:
            t.cancel()
        await intake.aclose(timeout=0.1)
        delays.sort()
        p99 = delays[int(len(delays) * 0.99) - 1]
        return (
            f"{'camera slow: 2 s a save' if stalled else 'camera slow: a normal disk':28} "
            f"other cameras' reads {len(delays):5}; to the bus p50 "
            f"{statistics.median(delays) * 1000:6.1f} ms, p99 {p99 * 1000:6.1f} ms, "
            f"max {delays[-1] * 1000:6.1f} ms; loop held at most {worst_hold * 1000:.1f} ms"
        )


async def main() -> None:
    for stalled in (False, True):
        print(await run(stalled=stalled), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
