from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from lprmeta.bus import Bus
from lprmeta.events import Event, ImageRef, Kind, Source


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def plate(p: str, *, camera: str = "c", source: Source = Source.TCP, **kw: object) -> Event:
    return Event(kind=Kind.PLATE, camera=camera, source=source, plate=p, **kw)  # type: ignore[arg-type]


def drain(sub: object) -> list[Event]:
    out = []
    while (ev := sub.get_nowait()) is not None:  # type: ignore[attr-defined]
        out.append(ev)
    return out


async def test_fan_out_to_every_subscriber_in_order() -> None:
    bus = Bus(dedup_window=0)
    a, b = bus.subscribe("a"), bus.subscribe("b")
    events = [plate(f"P{i}") for i in range(5)]
    for ev in events:
        bus.publish(ev)
    assert [e.id for e in drain(a)] == [e.id for e in events]
    assert [e.id for e in drain(b)] == [e.id for e in events]


async def test_full_queue_drops_for_that_sink_only_counted_and_logged() -> None:
    bus = Bus(dedup_window=0)
    slow = bus.subscribe("slow", maxsize=2)
    fast = bus.subscribe("fast", maxsize=100)
    with capture_logs() as logs:
        for i in range(5):
            bus.publish(plate(f"P{i}"))
    assert len(drain(fast)) == 5
    assert [e.plate for e in drain(slow)] == ["P0", "P1"]
    assert slow.dropped == 3
    assert bus.stats.total("dropped:slow") == 3  # per camera, as every counter
    assert bus.stats.snapshot()[plate("x").camera]["dropped:slow"] == 3
    assert bus.stats.total("dropped:fast") == 0
    warnings = [rec for rec in logs if rec["log_level"] == "warning"]
    assert len(warnings) == 1 and warnings[0]["sink"] == "slow"  # logged once, counted always


async def test_close_ends_iteration_after_queued_events_even_when_full() -> None:
    bus = Bus(dedup_window=0)
    sub = bus.subscribe("s", maxsize=2)
    bus.publish(plate("A"))
    bus.publish(plate("B"))
    bus.close()
    got = [ev.plate async for ev in sub]
    assert got == ["A", "B"]
    assert sub.done
    bus.publish(plate("C"))
    assert bus.stats.get("refused_after_close", "c") == 1


def test_events_after_close_are_counted_each_and_said_once() -> None:
    bus = Bus(dedup_window=0)
    bus.close()
    with capture_logs() as logs:
        for i in range(150):
            bus.publish(plate(f"X{i}"))
    said = [r for r in logs if r["event"] == "event after shutdown not delivered"]
    assert [r["log_level"] for r in said].count("warning") == 2  # the 1st and the 100th
    assert bus.stats.get("refused_after_close", "c") == 150


async def test_dedup_window_is_sliding_per_camera_and_plate() -> None:
    clock = FakeClock()
    bus = Bus(dedup_window=2.0, clock=clock)
    sub = bus.subscribe("s")
    bus.publish(plate("AB 1234"))
    clock.now += 1.5
    bus.publish(plate("AB1234"))  # same car (spacing ignored), within window
    bus.publish(plate("AB1234", camera="other"))  # other camera: a different read
    clock.now += 1.5
    bus.publish(plate("ab1234"))  # within 2 s of the previous read: still the same car
    clock.now += 2.5
    bus.publish(plate("AB1234"))  # quiet for longer than the window: a new car
    got = drain(sub)
    assert [(e.camera, e.plate) for e in got] == [
        ("c", "AB 1234"),
        ("other", "AB1234"),
        ("c", "AB1234"),
    ]
    assert bus.stats.get("duplicates", "c") == 2


async def test_non_plate_events_and_empty_plates_are_never_deduplicated() -> None:
    bus = Bus(dedup_window=10)
    sub = bus.subscribe("s")
    for _ in range(2):
        bus.publish(Event(kind=Kind.PARKING, camera="c", source=Source.TCP, plate="X1"))
        bus.publish(plate(""))
    assert len(drain(sub)) == 4


async def test_multi_transport_camera_merges_reads_into_one_event() -> None:
    bus = Bus(dedup_window=2.0, merge_wait=0.2, transports={"c": frozenset({"http", "rtsp"})})
    sub = bus.subscribe("s")
    bus.publish(
        plate("AB1234", source=Source.RTSP, images=(ImageRef("plate", "/r.jpg", 1, "1" * 64),))
    )
    assert sub.get_nowait() is None  # held, waiting for the camera's other transport
    bus.publish(
        plate(
            "AB1234",
            source=Source.HTTP,
            country="NLD",
            images=(ImageRef("full", "/h.jpg", 1, "2" * 64),),
        )
    )
    # Every expected transport has delivered: released at once, merged.
    merged = sub.get_nowait()
    assert merged is not None
    assert merged.country == "NLD" and merged.source is Source.RTSP
    assert [i.path for i in merged.images] == ["/r.jpg", "/h.jpg"]
    assert merged.details["sources"] == ["rtsp", "http"]
    assert bus.stats.get("merged", "c") == 1


async def test_held_read_goes_out_alone_after_merge_wait() -> None:
    bus = Bus(dedup_window=2.0, merge_wait=0.05, transports={"c": frozenset({"http", "rtsp"})})
    sub = bus.subscribe("s")
    bus.publish(plate("AB1234", source=Source.RTSP))
    assert sub.get_nowait() is None
    ev = await asyncio.wait_for(sub.get(), 1)
    assert ev is not None and ev.plate == "AB1234"
    bus.publish(plate("AB1234", source=Source.HTTP))  # late: a duplicate, not a new car
    assert sub.get_nowait() is None
    assert bus.stats.get("duplicates", "c") == 1


async def test_close_releases_held_events() -> None:
    bus = Bus(dedup_window=2.0, merge_wait=60, transports={"c": frozenset({"http", "rtsp"})})
    sub = bus.subscribe("s")
    bus.publish(plate("AB1234", source=Source.RTSP))
    bus.close()
    assert [e.plate async for e in sub] == ["AB1234"]


async def test_queue_is_bounded_in_bytes_too() -> None:
    """A stalled consumer holds at most its byte budget, whatever the events weigh."""
    bus = Bus(dedup_window=0, queue_bytes=10 * 2**20)
    sub = bus.subscribe("slow", maxsize=10_000)
    for i in range(30):
        bus.publish(plate(f"H{i}"), weight=1 * 2**20)
    assert sub.qsize() == 10 and sub.bytes == 10 * 2**20
    assert bus.stats.get("dropped:slow", "c") == 20
    assert [e.plate for e in drain(sub)] == [f"H{i}" for i in range(10)]
    assert sub.bytes == 0
    for i in range(100):  # light events (1 KiB each at least): bounded by the count only
        bus.publish(plate(f"L{i}"))
    assert sub.qsize() == 100


async def test_one_event_over_the_budget_still_fits_an_empty_queue() -> None:
    bus = Bus(dedup_window=0, queue_bytes=2**20)
    sub = bus.subscribe("s")
    bus.publish(plate("BIG"), weight=5 * 2**20)
    assert [e.plate for e in drain(sub)] == ["BIG"]


async def test_dedup_memory_is_bounded(monkeypatch: object) -> None:
    import lprmeta.bus as bus_mod

    monkeypatch.setattr(bus_mod, "MAX_RECENT", 100)  # type: ignore[attr-defined]
    bus = Bus(dedup_window=60)
    sub = bus.subscribe("s", maxsize=10_000)
    for i in range(1000):
        bus.publish(plate(f"D{i}"))
    assert len(bus._recent) == 100
    assert sub.qsize() == 1000  # every distinct plate went out
