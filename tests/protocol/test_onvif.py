"""ONVIF metadata: reassembly from RTP fragments, safe parsing, notifications -> events."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lprmeta.envelope import Read
from lprmeta.errors import DocumentError, PacketTooLarge, ProtocolError
from lprmeta.events import Direction, Event, Kind
from lprmeta.protocol.onvif import (
    DocumentAssembler,
    document_events,
    has_notifications,
    iter_fragments,
    parse_document,
)
from lprmeta.protocol.scene import PlateTracker, scene_read

from ..conftest import FIXTURES, race
from ..golden import assert_golden_list, stable

ONVIF = FIXTURES / "onvif"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
GOOD = sorted(
    p
    for p in ONVIF.glob("*.xml")
    if not p.stem.startswith(("broken", "wrong", "entity", "external"))
)
BAD = [*sorted(ONVIF.glob("broken_*.xml")), ONVIF / "wrong_root.xml"]


def reads_of(doc: bytes) -> list[Read]:
    """What one document gives: its notifications' reads, then the reads of the plates
    in its scene description (a camera's tracker fed this document, then the stream
    ending)."""
    reads, parsed = document_events(doc, camera="cam", received=NOW)
    tracker = PlateTracker()
    ready = tracker.frame(parsed.scene, 0.0) + tracker.flush(0.0)
    return reads + [
        scene_read(obj, camera="cam", received=NOW, frames=frames, why=why)
        for obj, frames, why in ready
    ]


def events_of(doc: bytes) -> list[Event]:
    return [r.event for r in reads_of(doc)]


@pytest.mark.parametrize("fixture", GOOD, ids=lambda p: p.stem)
def test_fixture_gives_its_expected_events(fixture: Path) -> None:
    assert_golden_list(reads_of(fixture.read_bytes()), fixture)


WS = b" \t\r\n\x00"


@pytest.mark.parametrize("fixture", GOOD, ids=lambda p: p.stem)
def test_split_at_every_byte_gives_the_document_once(fixture: Path) -> None:
    # A document is whole when its root element closes; whitespace after it is not
    # part of it (the fixture files end with a newline).
    doc = fixture.read_bytes()
    body = doc.rstrip(WS)
    for cut in range(1, len(doc)):
        asm = DocumentAssembler()
        first = asm.feed(doc[:cut], pts=9)
        assert first == ([] if cut < len(body) else [doc[:cut]]), f"cut at byte {cut}"
        second = asm.feed(doc[cut:], pts=9)
        assert [d.rstrip(WS) for d in first + second] == [body]
        assert asm.partial == 0


@pytest.mark.parametrize("fixture", GOOD, ids=lambda p: p.stem)
def test_one_byte_at_a_time_then_trailing_bytes(fixture: Path) -> None:
    doc = fixture.read_bytes()
    asm = DocumentAssembler()
    out: list[bytes] = []
    for i in range(len(doc)):
        out += asm.feed(doc[i : i + 1], pts=1)
    assert out == [doc.rstrip(WS)]
    # Trailing padding after a document is neither a document nor a cut-short one.
    assert asm.feed(b"\r\n\x00", pts=1) == []
    assert asm.feed(doc, pts=2) == [doc]
    assert (asm.documents, asm.partial) == (2, 0)
    padded = document_events(doc + b"\n\x00\x00", camera="cam", received=NOW)[1]
    assert padded == document_events(doc, camera="cam", received=NOW)[1]


def test_guide_example_every_field() -> None:
    (ev,) = events_of((ONVIF / "guide_example.xml").read_bytes())
    assert ev.kind is Kind.PLATE and ev.source.value == "rtsp"
    assert ev.plate == "43거6510"
    assert ev.time == datetime(2018, 5, 15, 6, 19, 34, tzinfo=UTC)
    assert ev.speed_kmh == 25.0
    assert ev.direction is Direction.IN
    (read,) = reads_of((ONVIF / "guide_example.xml").read_bytes())
    assert read.picture_paths == (("plate", "/LPR/2018051506193401.jpg"),)
    assert ev.details["rule"] == "MyLicensePlateDetectorRule"
    assert ev.raw["data"]["LicenseCarSpeed"] == "25km/h"  # raw value kept


def test_mph_and_capitalisation_variants() -> None:
    (ev,) = events_of((ONVIF / "namespaced_schema_spelling.xml").read_bytes())
    assert ev.speed_kmh == 24.14 and ev.direction is Direction.OUT
    assert ev.time is not None and ev.time.microsecond == 456000
    (other,) = reads_of((ONVIF / "other_prefixes.xml").read_bytes())
    assert (other.event.plate, other.event.speed_kmh, other.picture_paths) == ("AB1234", 42.0, ())


def test_several_notifications_and_other_topics() -> None:
    evs = events_of((ONVIF / "several_notifications.xml").read_bytes())
    assert [(e.kind.value, e.plate) for e in evs] == [
        ("plate", "FIRST1"),
        ("plate", "SECOND2"),
        ("event", None),
    ]
    assert evs[2].details["topic"] == "tns1:VideoSource/MotionAlarm"
    assert evs[2].raw["data"] == {"State": "true"}  # kept raw; details no longer a copy
    _, parsed = document_events(
        (ONVIF / "several_notifications.xml").read_bytes(), camera="c", received=NOW
    )
    assert parsed.analytics_frames == 1


def test_video_analytics_is_counted_not_emitted() -> None:
    doc = (ONVIF / "video_analytics.xml").read_bytes()
    assert not has_notifications(doc)
    events, parsed = document_events(doc, camera="c", received=NOW)
    assert events == [] and parsed.analytics_frames == 1


@pytest.mark.parametrize("fixture", BAD, ids=lambda p: p.stem)
def test_broken_documents_are_typed_errors(fixture: Path) -> None:
    with pytest.raises(DocumentError):
        parse_document(fixture.read_bytes())


def test_entity_bomb_is_refused_without_expansion() -> None:
    with pytest.raises(DocumentError, match="DOCTYPE"):
        parse_document((ONVIF / "entity_bomb.xml").read_bytes())


def test_external_entity_is_refused_without_network() -> None:
    connections: list[object] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        port = listener.getsockname()[1]

        def accept() -> None:
            with contextlib.suppress(OSError):  # the accept timing out is the good case
                connections.append(listener.accept())

        t = threading.Thread(target=accept)
        t.start()
        doc = (ONVIF / "external_entity.xml").read_bytes().replace(b"PORT", str(port).encode())
        with pytest.raises(DocumentError):
            parse_document(doc)
        t.join()
    assert connections == []


def test_size_limit_before_parsing() -> None:
    doc = (ONVIF / "other_topic.xml").read_bytes()
    with pytest.raises(PacketTooLarge):
        parse_document(doc, max_size=100)


def test_cut_short_document_is_discarded_and_counted() -> None:
    a = (ONVIF / "other_topic.xml").read_bytes()
    b = (ONVIF / "guide_example.xml").read_bytes()
    asm = DocumentAssembler()
    assert asm.feed(a[:50], pts=1) == []
    # The camera stopped mid-document; the next one (new pts) starts.
    assert asm.feed(b, pts=2) == [b]
    assert asm.partial == 1
    # Same pts, but a new document begins while one is open.
    assert asm.feed(a[:50], pts=3) == []
    assert asm.feed(a, pts=3) == [a]
    assert asm.partial == 2
    # End of stream with a document open.
    asm.feed(a[:50], pts=4)
    assert asm.flush() == 50 and asm.partial == 3


def test_oversize_document_is_dropped_until_the_next_one() -> None:
    doc = (ONVIF / "other_topic.xml").read_bytes()
    asm = DocumentAssembler(max_size=200)
    out = [d for f in iter_fragments(doc, 64) for d in asm.feed(f, pts=1)]
    assert out == [] and asm.oversize == 1
    small = b"<tt:MetadataStream/>"
    assert asm.feed(small, pts=2) == [small]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_fuzz_any_bytes_give_documents_or_typed_errors(data: bytes, mtu: int) -> None:
    asm = DocumentAssembler(max_size=300)
    for i, fragment in enumerate(iter_fragments(data, mtu)):
        for doc in asm.feed(fragment, pts=i // 3):
            try:
                events, _ = document_events(doc, camera="c", received=NOW, max_size=300)
            except ProtocolError:
                continue
            for read in events:
                json.dumps(read.event.to_json())


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=40),
    st.text(max_size=20),
    st.text(max_size=20),
)
def test_fuzz_item_values(plate: str, speed: str, direction: str) -> None:
    from xml.sax.saxutils import quoteattr

    doc = (ONVIF / "namespaced_schema_spelling.xml").read_text()
    doc = doc.replace('"NL-12-AB"', quoteattr(plate)).replace('"15mph"', quoteattr(speed))
    doc = doc.replace('Value="2"', f"Value={quoteattr(direction)}")
    try:
        events = events_of(doc.encode("utf-8"))
    except ProtocolError:
        return
    for ev in events:
        json.dumps(ev.to_json())


def _vendor_event(topic: str, items: str) -> bytes:
    return (
        '<tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema" '
        'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2"><tt:Event><wsnt:NotificationMessage>'
        f"<wsnt:Topic>{topic}</wsnt:Topic><wsnt:Message>"
        '<tt:Message UtcTime="2024-03-01T08:15:30Z"><tt:Data>'
        f"{items}</tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage></tt:Event>"
        "</tt:MetadataStream>"
    ).encode()


def test_an_inline_picture_is_decoded_and_never_inlined_in_the_line() -> None:
    """A vendor's event with the plate picture as base64 in an item: the picture becomes
    a Picture to save (JPEG checked by its signature), raw names it, the line has no base64
    (before: the base64 was written twice, in details and in raw)."""
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(200)) + b"\xff\xd9"
    b64 = base64.b64encode(jpeg).decode()
    doc = _vendor_event(
        "tnsaxis:CameraApplicationPlatform/ALPV/Recognition",
        f'<tt:SimpleItem Name="text" Value="AB12CD"/>'
        f'<tt:SimpleItem Name="PlateImage" Value="{b64}"/>'
        f'<tt:SimpleItem Name="direction" Value="Leave"/>',
    )
    (read,) = document_events(doc, camera="c", received=NOW)[0]
    assert [(p.role, p.data) for p in read.pictures] == [("plate", jpeg)]
    line = json.dumps(read.event.to_json())
    assert b64[:40] not in line
    assert read.event.raw["data"]["PlateImage"].startswith("<picture:")
    assert read.event.direction is Direction.OUT  # Leave (before: unknown)


def test_profile_m_plate_event_is_a_plate_not_no_plate() -> None:
    """The ONVIF standard's plate event (Recognition/LicensePlate, LicensePlateInfo element
    item) used to come out as "plate": null with no_plate: true."""
    (read,) = reads_of((ONVIF / "profile_m_license_plate.xml").read_bytes())
    ev = read.event
    assert (ev.kind, ev.plate, ev.confidence, ev.country) == (Kind.PLATE, "AB123CD", 0.93, "FR")
    assert "no_plate" not in ev.details
    assert ev.raw["data"]["LicensePlateInfo.IssuingEntity"] == "IDF"


def test_a_huge_element_item_is_read_within_a_budget() -> None:
    """40,000 leaves of one name in an ElementItem were walked whole (116 ms of the loop);
    now a budget of elements per notification: the plate before it is read, the rest named."""
    plate = (
        '<tt:ElementItem Name="LicensePlateInfo"><tt:LicensePlateInfo>'
        '<tt:PlateNumber Likelihood="0.9">BIG1</tt:PlateNumber></tt:LicensePlateInfo>'
        "</tt:ElementItem>"
    )
    wide = (
        '<tt:ElementItem Name="W"><tt:W>'
        + '<tt:b c="1">y</tt:b>' * 40000
        + "</tt:W></tt:ElementItem>"
    )
    doc = _vendor_event("tns1:RuleEngine/Recognition/LicensePlate", plate + wide)
    (read,) = document_events(doc, camera="c", received=NOW, max_size=2**20)[0]
    assert read.event.plate == "BIG1"
    assert read.event.raw["data"]["W.b"] == "y"
    assert any("4096 elements" in p for p in read.event.details["problems"])


def test_axis_lost_is_the_car_leaving_not_another_read() -> None:
    doc = (ONVIF / "axis_alpv_allplates.xml").read_bytes()
    (read,) = reads_of(doc)
    assert (read.event.kind, read.event.plate) == (Kind.PLATE, "ABC123")
    assert read.event.direction is Direction.IN
    lost = doc.replace(b'Value="update"', b'Value="lost"')
    (gone,) = reads_of(lost)
    assert gone.event.kind is Kind.EVENT
    # An Axis-style "text" item on anybody else's topic is no plate.
    other = doc.replace(b"CameraApplicationPlatform/ALPV.AllPlates", b"tns1:Device/Trigger")
    (generic,) = reads_of(other)
    assert (generic.event.kind, generic.event.plate) == (Kind.EVENT, None)


NOTIFYING = [p for p in GOOD if b"NotificationMessage" in p.read_bytes()]


@pytest.mark.parametrize("fixture", NOTIFYING, ids=lambda p: p.stem)
def test_each_shape_twice_in_one_document_gives_its_reads_twice(fixture: Path) -> None:
    """Every notification shape, with its NotificationMessage repeated in one document
    (as a camera that batches two reads sends it)."""
    doc = fixture.read_bytes()
    start = doc.rfind(b"<", 0, doc.index(b"NotificationMessage"))
    end_tag = doc.index(b"NotificationMessage>", doc.index(b"NotificationMessage") + 20)
    end = end_tag + len(b"NotificationMessage>")
    one = doc[start:end]
    doubled = doc[:end] + one + doc[end:]
    once = [stable(r) for r in reads_of(doc)]
    twice = [stable(r) for r in reads_of(doubled)]
    n = doc.count(b"NotificationMessage") // 2  # notifications in the fixture
    assert len(twice) == len(once) + (len(once) // n if n else 0)
    assert all(r in once for r in twice)


def test_the_feed_parsers_recover_from_bad_documents_and_are_never_shared() -> None:
    """Documents are parsed by feed parsers taken from an idle list (they keep the
    GIL, unlike etree.fromstring). A bad document leaves its parser reset for the next
    one; four threads parsing at once each get their own and all reads come out right."""
    from lprmeta.simulator.script import onvif_notification

    now = datetime.now(UTC)
    bad = [b"<a><b></a>", b"<tt:MetadataStream", b"", b"<a/><b/>", b"\xff\xfe<x/>"]

    def work(k: int) -> None:
        for i in range(300):
            plate = f"T{k}X{i:04d}"
            if i % 7 == 0:
                with pytest.raises(DocumentError):
                    document_events(bad[i % len(bad)], camera="c", received=now)
            doc = onvif_notification(plate=plate, when=now, picture_path=None)
            reads, _ = document_events(doc, camera="c", received=now)
            assert [r.event.plate for r in reads] == [plate]

    assert race(work, 4) == []


def test_a_long_topic_is_read_whole_and_not_kept_in_the_topic_cache() -> None:
    """Topics are classified once and cached; a hostile camera's 100,000 distinct long
    topics are still read (whole: the plate detector is at the end) but never cached."""
    from lprmeta.protocol import onvif
    from lprmeta.simulator.script import onvif_notification

    now = datetime.now(UTC)
    before = onvif._cached_topic_kind.cache_info().currsize
    for i in range(3):
        topic = f"tns1:{'Pad/' * 2000}N{i}/RuleEngine/LicensePlateDetector/LicensePlate"
        doc = onvif_notification(plate=f"LONG{i}", when=now, topic=topic)
        (read,), _ = document_events(doc, camera="c", received=now)
        assert read.event.kind is Kind.PLATE
        assert read.event.plate == f"LONG{i}"
        assert len(read.event.details["topic"]) == 1024  # cut in the line, read whole
    for i in range(100_000):
        assert onvif._topic_kind(f"tns1:{'x' * 300}/{i}") == (False, False)
    assert onvif._cached_topic_kind.cache_info().currsize - before <= 1


def test_only_simple_and_element_items_are_items_whatever_their_prefix() -> None:
    """Items are told by their local name, compared whole: ``MySimpleItem`` and
    ``SimpleItems`` are not items; ``SimpleItem`` with no namespace (the guide's
    undeclared prefixes) and under any prefix is; comments are skipped."""
    doc = (
        b'<tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:x="urn:x"'
        b' xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2"><tt:Event><wsnt:NotificationMessage>'
        b"<wsnt:Topic>tns1:RuleEngine/LicensePlateDetector/LicensePlate</wsnt:Topic>"
        b'<wsnt:Message><tt:Message UtcTime="2026-01-01T00:00:00Z"><tt:Data>'
        b'<tt:MySimpleItem Name="NotAnItem" Value="1"/><!-- a comment -->'
        b'<tt:SimpleItems Name="NorThis" Value="2"/><x:SimpleItem Name="LicensePlateResult"'
        b' Value="AB123"/><SimpleItem Name="LicenseCarSpeed" Value="30"/>'
        b'<tt:MyElementItem Name="NotThisEither"><tt:V>3</tt:V></tt:MyElementItem>'
        b'<x:ElementItem Name="Box"><tt:R><tt:W>4</tt:W></tt:R></x:ElementItem>'
        b"</tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage></tt:Event>"
        b"</tt:MetadataStream>"
    )
    parsed = parse_document(doc)
    (n,) = parsed.notifications
    assert n.data == {"LicensePlateResult": "AB123", "LicenseCarSpeed": "30", "Box.W": "4"}
    assert n.utc_time == "2026-01-01T00:00:00Z"
    (read,) = document_events(doc, camera="c", received=NOW)[0]
    assert (read.event.plate, read.event.speed_kmh) == ("AB123", 30.0)


def test_analytics_frames_are_counted_in_any_encoding() -> None:
    """A document without the bytes ``VideoAnalytics`` skips the search for its frames;
    one in UTF-16 (the bytes differ) is still searched."""
    text = (ONVIF / "several_notifications.xml").read_text("utf-8").strip()
    body = text.split("?>", 1)[1] if text.startswith("<?xml") else text
    utf16 = b"\xfe\xff" + ('<?xml version="1.0" encoding="UTF-16"?>' + body).encode("utf-16-be")
    assert b"VideoAnalytics" not in utf16
    assert parse_document(utf16).analytics_frames == 1
    assert parse_document(body.encode()).analytics_frames == 1
