"""The intake: one path from an input's read to the bus, pictures saved off the loop,
each camera's events in order, cameras never waiting for each other."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from lprmeta.bus import Bus
from lprmeta.envelope import Picture, Read
from lprmeta.events import Event, Kind, Source
from lprmeta.intake import Intake
from lprmeta.stats import Stats
from lprmeta.storage import ImageStore

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(64)) + b"\xff\xd9"


class SlowDisk(ImageStore):
    """A filesystem stand-in whose writes for one camera take ``delay`` seconds."""

    def __init__(self, root: Path, slow_camera: str, delay: float) -> None:
        super().__init__(root)
        self.slow_camera = slow_camera
        self.delay = delay
        self.release = threading.Event()

    def save(self, event: Event, picture: Picture):  # type: ignore[no-untyped-def]
        if event.camera == self.slow_camera:
            self.release.wait(self.delay)
        return super().save(event, picture)


def read(camera: str, plate: str, *, pictures: int = 0) -> Read:
    event = Event(kind=Kind.PLATE, camera=camera, source=Source.TCP, plate=plate)
    return Read(event, tuple(Picture(f"p{i}", JPEG) for i in range(pictures)))


async def test_a_slow_disk_for_one_camera_does_not_delay_another(tmp_path: Path) -> None:
    bus = Bus(dedup_window=0)
    sub = bus.subscribe("out")
    store = SlowDisk(tmp_path / "s", "slow", delay=2.0)
    intake = Intake(bus=bus, stats=Stats(), store=store)
    intake.put(read("slow", "S1", pictures=2))  # its save takes 2 s
    started = time.monotonic()
    intake.put(read("fast", "F1", pictures=1))
    intake.put(read("fast", "F2"))
    got = [await asyncio.wait_for(sub.get(), 1.0) for _ in range(2)]
    took = time.monotonic() - started
    assert [e.plate for e in got if e is not None] == ["F1", "F2"]
    assert took < 1.0  # not 2 s: the other camera's save did not hold it (bench: < 50 ms)
    assert intake.in_flight == 1  # the slow one is still saving, off the loop
    loop_ok = time.monotonic()
    await asyncio.sleep(0.01)
    assert time.monotonic() - loop_ok < 0.5  # the loop itself is free meanwhile
    store.release.set()
    slow = await asyncio.wait_for(sub.get(), 5)
    assert slow is not None and slow.plate == "S1" and len(slow.images) == 2
    assert all(i.path is not None for i in slow.images)
    await intake.aclose()


async def test_one_cameras_events_stay_in_order(tmp_path: Path) -> None:
    """A read without pictures waits for its camera's read before it that has some."""
    bus = Bus(dedup_window=0)
    sub = bus.subscribe("out")
    store = SlowDisk(tmp_path / "s", "cam", delay=0.3)
    intake = Intake(bus=bus, stats=Stats(), store=store)
    intake.put(read("cam", "A", pictures=1))
    intake.put(read("cam", "B"))
    intake.put(read("cam", "C", pictures=1))
    intake.put(read("cam", "D"))
    got = [await asyncio.wait_for(sub.get(), 5) for _ in range(4)]
    assert [e.plate for e in got if e is not None] == ["A", "B", "C", "D"]
    await intake.aclose()


async def test_submit_returns_once_on_the_bus_with_pictures_saved(tmp_path: Path) -> None:
    bus = Bus(dedup_window=0)
    sub = bus.subscribe("out")
    intake = Intake(bus=bus, stats=Stats(), store=ImageStore(tmp_path / "s"))
    event = await intake.submit(read("cam", "H1", pictures=1))
    assert event.images[0].path is not None and Path(event.images[0].path).read_bytes() == JPEG
    assert sub.qsize() == 1
    await intake.aclose()


async def test_shutdown_cuts_a_save_short_and_the_read_still_goes_out(tmp_path: Path) -> None:
    bus = Bus(dedup_window=0)
    sub = bus.subscribe("out")
    store = SlowDisk(tmp_path / "s", "cam", delay=5.0)
    intake = Intake(bus=bus, stats=Stats(), store=store)
    intake.put(read("cam", "CUT", pictures=1))
    await asyncio.sleep(0.05)
    await intake.aclose(timeout=0.1)
    event = sub.get_nowait()
    assert event is not None and event.plate == "CUT"
    assert event.images[0].missing == "daemon stopped before it was saved"
    store.release.set()


async def test_without_a_store_pictures_are_hashed_not_saved(tmp_path: Path) -> None:
    """What `lprmeta probe` uses: the same intake, nothing written."""
    bus = Bus(dedup_window=0)
    sub = bus.subscribe("out")
    intake = Intake(bus=bus, stats=Stats())
    intake.put(read("cam", "P1", pictures=1))
    event = await asyncio.wait_for(sub.get(), 2)
    assert event is not None
    (img,) = event.images
    assert img.path is None and img.bytes == len(JPEG) and img.sha256 and img.missing is None
    assert not list(tmp_path.iterdir())
    await intake.aclose()


async def test_a_stalled_camera_holds_one_worker_and_a_bounded_backlog(
    tmp_path: Path, monkeypatch: object
) -> None:
    """Many reads of a camera whose disk stalls: its saves wait their turn (one worker),
    past the cap its pictures are marked missing and its reads still go out, in order;
    another camera's saves are not queued behind it."""
    import lprmeta.intake as intake_mod

    limit = 3 * len(JPEG)  # three reads' pictures may wait
    monkeypatch.setattr(intake_mod, "MAX_WAITING_BYTES_PER_CAMERA", limit)  # type: ignore[attr-defined]
    bus = Bus(dedup_window=0)
    sub = bus.subscribe("out")
    store = SlowDisk(tmp_path / "s", "slow", delay=5.0)
    intake = Intake(bus=bus, stats=Stats(), store=store, save_workers=2)
    for i in range(6):
        intake.put(read("slow", f"S{i}", pictures=1))
    await asyncio.sleep(0.05)
    intake.put(read("fast", "F1", pictures=1))  # one worker is still free for it
    first = await asyncio.wait_for(sub.get(), 1.0)
    assert first is not None and first.plate == "F1"
    store.release.set()
    slow = [await asyncio.wait_for(sub.get(), 5) for _ in range(6)]
    assert [e.plate for e in slow if e is not None] == [f"S{i}" for i in range(6)]
    missing = [e.images[0].missing for e in slow if e is not None]
    assert missing[:3] == [None, None, None]
    assert all(m and "still wait for the disk" in m for m in missing[3:])
    await intake.aclose()
