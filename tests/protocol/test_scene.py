"""Profile M object metadata: plates in scene descriptions -> one read per tracked object,
and the bounds of a camera that sends too much."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from lprmeta.protocol.onvif import parse_document
from lprmeta.protocol.scene import (
    MAX_ELEMENT_VISITS,
    MAX_ID,
    MAX_OBJECT_VISITS,
    MAX_TEXT,
    MAX_TRACKS,
    PlateTracker,
    SceneParse,
    has_scene_plates,
    scene_read,
)
from lprmeta.simulator.script import ReadFactory, analytics_document, fake_jpeg

from ..conftest import FIXTURES

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NS = 'xmlns:tt="http://www.onvif.org/ver10/schema"'


def frame(objects: str, tree: str = "", when: str = "2026-01-01T00:00:00Z") -> bytes:
    return (
        f'<tt:MetadataStream {NS}><tt:VideoAnalytics><tt:Frame UtcTime="{when}">'
        f"{objects}{tree}</tt:Frame></tt:VideoAnalytics></tt:MetadataStream>"
    ).encode()


def plate(object_id: int, text: str, likelihood: str = "0.9", extra: str = "") -> str:
    return (
        f'<tt:Object ObjectId="{object_id}"><tt:Appearance><tt:LicensePlateInfo>'
        f'<tt:PlateNumber Likelihood="{likelihood}">{text}</tt:PlateNumber>'
        f"</tt:LicensePlateInfo>{extra}</tt:Appearance></tt:Object>"
    )


def scene(doc: bytes) -> SceneParse:
    return parse_document(doc, max_size=4 << 20).scene


def test_frames_without_plates_are_not_even_parsed() -> None:
    # The RTSP session drops them by this byte search before any XML parsing.
    assert not has_scene_plates(analytics_document(NOW, objects=20))
    assert has_scene_plates(frame(plate(1, "AB12")))
    deletes = frame("", '<tt:ObjectTree><tt:Delete ObjectId="1"/></tt:ObjectTree>')
    assert not has_scene_plates(deletes)
    assert has_scene_plates(deletes, deletes=True)  # only while a plate waits


def test_the_best_frame_within_the_hold_and_one_read_per_object() -> None:
    t = PlateTracker(hold=1.0)
    assert t.frame(scene(frame(plate(3, "AB123C0", "0.5"))), 0.0) == []
    assert t.frame(scene(frame(plate(3, "AB123CD", "93"))), 0.3) == []  # 0-100: 0.93
    assert t.frame(scene(frame(plate(3, "AB123CO", "0.7"))), 0.6) == []
    assert t.next_due() == 1.0
    ((best, frames, why),) = t.due(1.0)
    assert (best.plate, frames, why) == ("AB123CD", 3, "1 s after its first plate")
    # Seen again (parked in view): no second read; a new object is a new read.
    assert t.frame(scene(frame(plate(3, "AB123CD"))), 5.0) == []
    assert t.due(10.0) == []
    t.frame(scene(frame(plate(4, "ZZ999"))), 10.0)
    assert [o.plate for o, _, _ in t.due(11.0)] == ["ZZ999"]
    # Not seen for `forget` seconds: the id may come back as another car.
    t.frame(scene(frame(plate(9, "X1"))), 200.0)
    assert t.due(201.0)
    assert t.frame(scene(frame(plate(3, "NEW3"))), 202.0) == []
    assert [o.plate for o, _, _ in t.due(203.0)] == ["NEW3"]


def test_too_many_waiting_objects_read_the_oldest_early_and_lose_none() -> None:
    t = PlateTracker()
    objects = "".join(plate(i, f"P{i:04d}") for i in range(MAX_TRACKS + 10))
    early = t.frame(scene(frame(objects)), 0.0)
    assert [o.plate for o, _, why in early] == [f"P{i:04d}" for i in range(10)]
    assert {why for _, _, why in early} == {"too many waiting"}
    assert t.waiting == MAX_TRACKS
    assert len(t.flush(0.5)) == MAX_TRACKS


def test_a_frame_of_ten_thousand_objects_is_bounded() -> None:
    objects = "".join(plate(i, f"Q{i:05d}") for i in range(10_000))
    parsed = scene(frame(objects))
    assert len(parsed.objects) == MAX_OBJECT_VISITS
    assert parsed.skipped_objects == 10_000 - MAX_OBJECT_VISITS


def test_likelihoods_outside_both_scales_rank_lowest_and_are_kept_raw() -> None:
    t = PlateTracker()
    t.frame(scene(frame(plate(1, "GOOD1", "0.2"))), 0.0)
    odd = scene(frame(plate(1, "BAD11", "250")))
    assert [o.out_of_range for o in odd.objects] == [True]
    t.frame(odd, 0.1)
    t.frame(scene(frame(plate(1, "BAD22", "-3"))), 0.2)
    ((best, frames, _),) = t.due(1.0)
    assert (best.plate, frames) == ("GOOD1", 3)
    read = scene_read(odd.objects[0], camera="c", received=NOW, frames=1, why="x")
    assert read.event.confidence is None
    assert read.event.raw["object"]["LicensePlateInfo.PlateNumber@Likelihood"] == "250"
    assert "outside 0-1" in read.event.details["problems"][0]


def test_an_inline_picture_that_is_no_picture_is_marked_missing_and_the_read_goes_out() -> None:
    junk = base64.b64encode(b"not a picture at all " * 10).decode()
    good = base64.b64encode(fake_jpeg(2000, seed=1)).decode()
    for image, missing in ((junk, True), (good, False)):
        doc = frame(plate(1, "PIC1", extra=f"<tt:Image>{image}</tt:Image>"))
        (obj,) = scene(doc).objects
        read = scene_read(obj, camera="c", received=NOW, frames=1, why="x")
        assert read.event.plate == "PIC1"
        assert image[:40] not in repr(read.event.to_json())  # no base64 in the line
        pictures = read.pictures
        if missing:
            assert read.event.images and read.event.images[0].missing
        else:
            assert [p.role for p in pictures] == ["plate"]


def test_the_fixture_gives_one_read_with_the_parents_vehicle() -> None:
    doc = (FIXTURES / "onvif" / "profile_m_scene_plate.xml").read_bytes()
    t = PlateTracker()
    ((best, frames, why),) = t.frame(scene(doc), 0.0)
    assert (best.plate, best.track, frames, why) == ("AB123CD", "7", 3, "left the scene")
    read = scene_read(best, camera="c", received=NOW, frames=frames, why=why)
    assert read.event.vehicle.brand == "Volvo"
    assert read.event.raw["object"]["Behaviour.Speed"] == "8.5"
    assert [p.role for p in read.pictures] == ["plate"]
    assert read.picture_paths == (("full", "/LAPI/V1.0/Smart/Picture/scene-000123.jpg"),)


def test_the_simulator_frames_give_one_read() -> None:
    read = ReadFactory(seed=3, picture_bytes=6000).next(plate="SIM123")
    t = PlateTracker()
    out = []
    for n, doc in enumerate(read.onvif_documents("profile-m-frames", "/pic/1.jpg")):
        out += t.frame(scene(doc), n * 0.1)
    ((best, frames, why),) = out
    assert (best.plate, frames, why) == ("SIM123", 3, "left the scene")


def test_an_inline_picture_over_the_limit_is_marked_missing_and_the_read_goes_out() -> None:
    big = base64.b64encode(fake_jpeg(50_000, seed=2)).decode()
    (obj,) = scene(frame(plate(1, "BIG1", extra=f"<tt:Image>{big}</tt:Image>"))).objects
    read = scene_read(obj, camera="c", received=NOW, frames=1, why="x", max_picture=10_000)
    assert read.event.plate == "BIG1"
    assert read.pictures == ()
    (img,) = read.event.images
    assert img.role == "plate"
    assert img.missing is not None
    assert big[:40] not in repr(read.event.to_json())


def test_a_document_of_nested_junk_huge_ids_and_texts_is_bounded() -> None:
    """A megabyte of elements in one object's appearance, an ObjectId and a plate of
    900,000 characters, 100,000 deletions: each read within a budget, cut, counted."""
    junk = "<tt:X><tt:Y/></tt:X>" * 40_000
    parsed = scene(frame(plate(1, "AB1", extra=junk)))
    assert parsed.skipped_objects >= 1  # cut short, and said so
    big_id = "9" * 900_000
    (obj,) = scene(
        frame(plate(1, "A" * 900_000, "1e308").replace('ObjectId="1"', f'ObjectId="{big_id}"'))
    ).objects
    assert len(obj.track) == MAX_ID
    assert len(obj.plate) == MAX_TEXT
    assert obj.out_of_range
    tree = "<tt:ObjectTree>" + '<tt:Delete ObjectId="1"/>' * 100_000 + "</tt:ObjectTree>"
    assert len(scene(frame("", tree)).deleted) <= MAX_ELEMENT_VISITS


def test_waiting_objects_holding_too_much_are_read_early_and_none_lost() -> None:
    picture = base64.b64encode(fake_jpeg(600_000, seed=5)).decode()
    t = PlateTracker(max_bytes=2_000_000)
    early = []
    for i in range(6):  # each holds ~800 KB of inline picture while it waits
        doc = frame(plate(i, f"MEM{i}", extra=f"<tt:Image>{picture}</tt:Image>"))
        early += t.frame(scene(doc), i * 0.01)
    assert [why for _, _, why in early] == ["too much waiting"] * 4
    assert [o.plate for o, _, _ in early + t.flush(1.0)] == [f"MEM{i}" for i in range(6)]
