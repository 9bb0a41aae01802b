"""Documents read by their learned shape give exactly what lxml gives (issue 17).

The reference is the tree parse (``onvif._parse_tree``) of the same bytes: for every
fixture, and for the guide's plate document with values of every awkward kind put into
it raw (entities, quotes, markup, controls, invalid UTF-8, non-characters), the shape
path must either give the same ``ParsedDocument`` or leave the document to the parser,
whose error then stands.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lprmeta.errors import DocumentError
from lprmeta.events import Kind
from lprmeta.protocol import onvif
from lprmeta.protocol.jsonpost import _index_of, _whole_weight, weighed_raw
from lprmeta.protocol.onvif import (
    SHAPES,
    Notification,
    document_events,
    notification_event,
    parse_document,
    picture_paths,
)
from lprmeta.protocol.shapes import NotLearnable, Shapes, slot_of
from lprmeta.simulator.script import onvif_notification

from ..conftest import FIXTURES, race

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ONVIF = FIXTURES / "onvif"
FIXTURE_DOCS = sorted(ONVIF.glob("*.xml")) + sorted((FIXTURES / "fuzz" / "onvif").glob("*"))

# The guide's plate document with its values left open, filled in raw (not escaped).
TEMPLATE = (
    '<tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema" '
    'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" '
    'xmlns:tns1="http://www.onvif.org/ver10/topics"><tt:Event><wsnt:NotificationMessage>'
    '<wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">'
    "tns1:RuleEngine/LicensePlateDetector/LicensePlate</wsnt:Topic><wsnt:Message>"
    '<tt:Message UtcTime="{time}" PropertyOperation="Changed"><tt:Source>'
    '<tt:SimpleItem Name="Rule" Value="{rule}"/></tt:Source>'
    '<tt:Key><tt:SimpleItem Name="LicensePlateResult" Value="{plate}"/></tt:Key>'
    '<tt:Data><tt:SimpleItem Name="LicensePlatePicturePath" Value="{path}"/>'
    '<tt:SimpleItem Name="LicenseCarSpeed" Value="{speed}"/></tt:Data></tt:Message>'
    "</wsnt:Message></wsnt:NotificationMessage></tt:Event></tt:MetadataStream>"
)
PLAIN = {
    "time": "2026-01-01T00:00:00Z",
    "rule": "R",
    "plate": "AB12",
    "path": "/p.jpg",
    "speed": "5",
}


@pytest.fixture(autouse=True)
def fresh_shapes() -> Iterator[None]:
    SHAPES.clear()
    yield
    SHAPES.clear()


def doc_of(**values: Any) -> bytes:
    parts = {k: v if isinstance(v, bytes) else str(v).encode() for k, v in (PLAIN | values).items()}
    out = TEMPLATE.encode()
    for name, value in parts.items():
        out = out.replace(b"{%s}" % name.encode(), value)
    return out


def by_tree(doc: bytes) -> onvif.ParsedDocument | type[DocumentError]:
    try:
        return onvif._parse_tree(doc.rstrip(onvif._WS))[0]
    except DocumentError:
        return DocumentError


def by_default(doc: bytes) -> onvif.ParsedDocument | type[DocumentError]:
    try:
        return parse_document(doc)
    except DocumentError:
        return DocumentError


def learn(doc: bytes) -> None:
    """Two sightings: the second learns the shape."""
    by_default(doc)
    by_default(doc)


def assert_weights(read: onvif.ParsedDocument | type[DocumentError]) -> None:
    """A notification read by its shape carries _notification_weight's answer (or -1, only
    where that answer is None: a value past its limit)."""
    assert isinstance(read, onvif.ParsedDocument)
    for n in read.notifications:
        want = onvif._notification_weight(n)
        assert n.weight == (-1 if want is None else want)


def test_a_plate_document_is_read_by_its_shape_from_the_third_sighting() -> None:
    parse_document(doc_of(plate="A1"))
    assert SHAPES.learned == 0  # once seen: only remembered
    parse_document(doc_of(plate="A2"))
    assert SHAPES.learned == 1 and SHAPES.hits == 0
    third = doc_of(plate="A3", speed="77", time="2026-02-02T02:02:02Z")
    assert parse_document(third) == by_tree(third)
    assert SHAPES.hits == 1
    note = parse_document(third).notifications[0]
    assert note.key == {"LicensePlateResult": "A3"}
    assert note.data["LicenseCarSpeed"] == "77" and note.utc_time == "2026-02-02T02:02:02Z"


@pytest.mark.parametrize("path", FIXTURE_DOCS, ids=lambda p: p.name)
def test_every_fixture_reads_the_same_by_its_shape(path: Any) -> None:
    doc = path.read_bytes()
    learn(doc)
    hits = SHAPES.hits
    read = by_default(doc)
    assert read == by_tree(doc)
    if SHAPES.hits > hits:  # read by its shape: the names it carries are its items' names'
        assert isinstance(read, onvif.ParsedDocument)
        assert_weights(read)
        for n in read.notifications:
            want = onvif._names(n.items)
            assert n.names == want and n.names is not None
            got_index, want_index = n.names.body_index, want.body_index
            assert (got_index.folded, got_index.keys, got_index.images) == (
                want_index.folded,
                want_index.keys,
                want_index.images,
            )


@pytest.mark.parametrize(
    "value",
    [
        b"&amp;",  # an entity: the parser decodes it
        b"&bogus;",  # an undefined entity: the parser refuses
        b"a'b",
        b"a<b",
        b"a>b",
        b"]]>",
        b"tab\there",  # normalised to a space in an attribute value
        b"line\nfeed",
        b"cr\rhere",
        b"\x01",
        b"\xff\xfe",  # not UTF-8
        b"\xc3",  # cut short
        "\ufffe".encode(),  # not an XML character
        "\uffff".encode(),
        "\ue000".encode(),  # the marker's own characters are plain text in a value
        "\ue0001\ue001".encode(),
        b"",
        b"   ",
        "Ünïcödé 京A12345".encode(),
    ],
)
def test_awkward_values_read_as_the_parser_reads_them(value: bytes) -> None:
    learn(doc_of(plate="LEARN"))
    assert SHAPES.learned == 1  # else this would only compare the tree with itself
    for field in PLAIN:
        doc = doc_of(**{field: value})
        hits = SHAPES.hits
        assert by_default(doc) == by_tree(doc), field
        if value in _READ_AS_THEMSELVES:  # these take the shape's path; the others must not
            assert SHAPES.hits == hits + 1, field
            assert_weights(by_default(doc))
        else:
            assert SHAPES.hits == hits, field


# The values above that are read as themselves in text and in attribute values alike.
_READ_AS_THEMSELVES = {
    b"",
    b"   ",
    "Ünïcödé 京A12345".encode(),
    "\ue000".encode(),
    "\ue0001\ue001".encode(),
}


_VALUE_BYTES = st.one_of(
    st.binary(max_size=12),
    st.text(max_size=12).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"&lt;", b"&#65;", b"'", b"<", b">", b"\t", b'"', b"\xef\xbf\xbe"]),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(PLAIN)), _VALUE_BYTES, min_size=1))
def test_any_values_read_as_the_parser_reads_them(values: dict[str, bytes]) -> None:
    SHAPES.clear()
    learn(doc_of())
    assert SHAPES.learned == 1
    doc = doc_of(**values)
    hits = SHAPES.hits
    read = by_default(doc)
    assert read == by_tree(doc)
    if SHAPES.hits > hits:
        assert_weights(read)


@pytest.mark.parametrize(
    ("values", "known"),
    [
        ({}, True),
        ({"plate": b"x" * (16 * 1024)}, True),  # at the limit of a text
        ({"plate": b"x" * (16 * 1024 + 1)}, False),  # past it: weighed_raw cuts it
        ({"plate": b"x" * 15_000, "rule": b"y" * 15_000, "path": b"z" * 15_000}, True),
    ],
)
def test_a_learned_shape_weighs_its_values(
    values: dict[str, bytes], known: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values long enough for the limits: the shape's weight is _notification_weight's,
    and where a value is past its limit it says nothing (-1) and the walk decides.
    (Documents that long are not looked up by default: the limits are a second guard.)"""
    monkeypatch.setattr(SHAPES, "max_bytes", 1 << 20)
    learn(doc_of())
    doc = doc_of(**values)
    hits = SHAPES.hits
    read = parse_document(doc)
    assert SHAPES.hits == hits + 1
    assert_weights(read)
    assert (read.notifications[0].weight >= 0) is known
    event = notification_event(read.notifications[0], camera="c", received=NOW).event
    assert event.raw == weighed_raw(read.notifications[0].to_json())[0]


@pytest.mark.parametrize(
    ("name", "doc", "why"),
    [
        (
            "latin-1",
            b'<?xml version="1.0" encoding="ISO-8859-1"?>' + doc_of(),
            "another encoding: its bytes are not UTF-8's",
        ),
        ("comment", doc_of().replace(b"<tt:Event>", b"<tt:Event><!-- x -->"), "a comment"),
        (
            "undeclared prefixes",
            (ONVIF / "guide_example.xml").read_bytes(),
            "parsed only once its prefixes are declared",
        ),
    ],
)
def test_shapes_not_learned(name: str, doc: bytes, why: str) -> None:
    learn(doc)
    learn(doc)
    assert SHAPES.learned == 0, why
    assert by_default(doc) == by_tree(doc)


def test_a_value_in_element_text_is_not_taken_for_a_slot() -> None:
    """`` Value="..."`` inside the topic's text is no attribute: the learned plan must not
    read it as one (the marked topic holds a marker inside other text)."""
    doc = doc_of().replace(b"LicensePlate</wsnt:Topic>", b'LicensePlate Value="x"</wsnt:Topic>')
    learn(doc)
    assert SHAPES.learned == 0
    other = doc.replace(b'Value="x"<', b'Value="y"<')
    assert by_default(other) == by_tree(other)
    assert by_default(other).notifications[0].topic.endswith('Value="y"')  # type: ignore[union-attr]


def test_a_document_whose_constant_differs_is_not_read_by_the_shape() -> None:
    learn(doc_of())
    other = doc_of().replace(b'Name="Rule"', b'Name="Rules"')
    assert by_default(other) == by_tree(other)
    assert SHAPES.hits == 0


def test_the_tables_stay_bounded() -> None:
    shapes = onvif.SHAPES
    for i in range(shapes.max_seen * 3):
        doc = doc_of().replace(b"<tt:Key>", b"<tt:Key>" + b"<tt:Pad/>" * (i % 700) + b"")
        doc = doc.replace(b'Name="Rule"', b'Name="Rule%d"' % i)
        parse_document(doc)
        parse_document(doc)
        assert len(shapes) <= shapes.max_shapes
        assert len(shapes._seen) <= shapes.max_seen


def test_slot_of() -> None:
    assert slot_of("plain") == "plain"
    assert slot_of("\ue00012\ue001") == 12
    with pytest.raises(NotLearnable):
        slot_of("x\ue0001\ue001")
    with pytest.raises(NotLearnable):
        slot_of("\ue001")


def test_a_plan_that_refuses_is_remembered_and_not_tried_again() -> None:
    tries = []

    def refuse(marked: bytes) -> None:
        tries.append(marked)

    shapes: Shapes[None] = Shapes(("Value",))
    doc = b'<a Value="1"/>'
    for _ in range(5):
        assert shapes.match(doc) is None
        shapes.learn(doc, refuse)
    assert len(tries) == 1
    assert tries[0] == '<a Value="\ue0000\ue001"/>'.encode()


def test_events_of_a_learned_shape_equal_the_trees() -> None:
    docs = [
        onvif_notification(plate=f"P{i}", when=NOW, picture_path=f"/p/{i}.jpg") for i in range(4)
    ]
    by_shape = [document_events(d, camera="c", received=NOW)[0][0].event for d in docs]
    assert SHAPES.hits == 2
    by_tree_events = []
    for d in docs:
        SHAPES.clear()  # every document a first sighting: read by the tree
        by_tree_events.append(document_events(d, camera="c", received=NOW)[0][0].event)
        assert SHAPES.hits == 0
    strip = lambda e: e.to_json() | {"id": None}  # noqa: E731
    assert [strip(e) for e in by_shape] == [strip(e) for e in by_tree_events]


# ----------------------------------------------------------------- notification_event


def _reference_paths(items: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """picture_paths as it read every name each time (before names were cached)."""
    from lprmeta.vocabulary import PICTURE_PATH_KEYS, fold_key

    out: list[tuple[str, str]] = []
    for name, value in items.items():
        folded = fold_key(name)
        if value.strip() and folded.endswith(PICTURE_PATH_KEYS):
            role = "full" if "full" in folded or "scene" in folded else "plate"
            if any(r == role for r, _ in out):
                role = f"{role}{len(out)}"
            out.append((role, value.strip()))
    return tuple(out)


_NAMES = st.sampled_from(
    [
        "LicensePlatePicturePath",
        "FullPictureUrl",
        "SceneSnapshotPath",
        "plate_image_path",
        "ImagePath",
        "Time",
        "time",
        "UtcTime",
        "Rule",
        "rule",
        "carState",
        "LicensePlateResult",
        "x" * 300,
    ]
)
_VALUES = st.sampled_from(["", "  ", "/a.jpg", " /b.jpg ", "lost", "LOST ", "x" * 20_000])


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(_NAMES, _VALUES, max_size=6),
    st.dictionaries(_NAMES, _VALUES, max_size=6),
    st.sampled_from(
        [
            "tns1:RuleEngine/LicensePlateDetector/LicensePlate",
            "tnsaxis:CameraApplicationPlatform/ALPV.AllPlates",
            "tns1:Device/Trigger",
        ]
    ),
)
def test_notification_event_reads_names_as_before(
    source: dict[str, str], data: dict[str, str], topic: str
) -> None:
    n = Notification(topic, "2026-01-01T00:00:00Z", None, source, {}, data)
    items = n.items
    assert picture_paths(items) == _reference_paths(items)
    event = notification_event(n, camera="c", received=NOW).event
    rule = next((v for k, v in source.items() if k.casefold() == "rule"), None)
    assert event.details.get("rule") == (rule or None)
    if "ALPV" in topic:
        state = next((v for k, v in items.items() if k == "carState"), "")
        lost = state.strip().casefold() == "lost"
        assert event.kind == (Kind.EVENT if lost else Kind.PLATE)
    # The weight and the raw are weighed_raw's, with or without its walk.
    raw, _, _ = weighed_raw(n.to_json())
    assert event.raw == raw
    assert onvif._notification_weight(n) == _whole_weight(n.to_json())
    # The index the names carry is the one normalize_json would make of the body
    # notification_event builds (the items but their times, then "time").
    names = onvif._names(items)
    body = {k: v for k, v in items.items() if k not in names.times} | {"time": n.utc_time}
    want, got = _index_of(body), names.body_index
    assert (got.folded, got.keys, got.images) == (want.folded, want.keys, want.images)


@pytest.mark.parametrize(
    "n",
    [
        Notification("t", None, None, {}, {"a": "x" * 16 * 1024}, {}),
        Notification("t", None, None, {}, {"a": "x" * (16 * 1024 + 1)}, {}),
        Notification("t" * (16 * 1024 + 1), None, None, {}, {}, {}),
        Notification("t", None, None, {"n" * 256: "v"}, {}, {}),
        Notification("t", None, None, {"n" * 257: "v"}, {}, {}),
        Notification("t", "u", "o", {f"k{i}": "v" * 16_000 for i in range(17)}, {}, {}),
    ],
)
def test_notification_weight_is_whole_weights(n: Notification) -> None:
    """At each limit: the same weight, or None (then weighed_raw walks and cuts)."""
    assert onvif._notification_weight(n) == _whole_weight(n.to_json())


def test_threads_learning_at_once_neither_fail_nor_disagree() -> None:
    """Parsing may run on several threads (the RTSP loop, offload threads): the tables
    are shared without a lock. Many threads learning the same fresh shapes at once must
    neither raise nor read anything but what the tree reads."""
    docs = [doc_of(rule=f"R{i}").replace(b'Name="Rule"', b'Name="Rule%d"' % i) for i in range(40)]
    expected = [by_tree(d) for d in docs]

    def work(k: int) -> None:
        for _ in range(5):
            for doc, want in zip(docs, expected, strict=True):
                assert parse_document(doc) == want

    errors = race(work, 8)
    assert not errors, errors[:1]
    assert SHAPES.hits > 0


def test_long_documents_are_neither_learned_nor_looked_up() -> None:
    """The tables hold keys of at most max_bytes: a camera's megabyte documents cannot
    make them hold hundreds of megabytes."""
    big = doc_of(speed="x" * SHAPES.max_bytes)
    for _ in range(3):
        assert by_default(big) == by_tree(big)
    assert SHAPES.learned == 0 and len(SHAPES._seen) == 0 and SHAPES.hits == 0


def test_documents_of_one_structure_with_other_constants_are_learned_each() -> None:
    """Two cameras whose documents differ only in a constant (an item's name, the
    PropertyOperation) share the text outside quotes: each gets its own shape, and each
    is read by it, as the tree reads it."""
    first = doc_of()
    second = doc_of().replace(b'Name="Rule"', b'Name="RuleName"')
    third = doc_of().replace(b'PropertyOperation="Changed"', b'PropertyOperation="Initialized"')
    for doc in (first, second, third):
        learn(doc)
    assert SHAPES.learned == 3 and len(SHAPES) == 3
    for doc in (first, second, third):
        hits = SHAPES.hits
        assert by_default(doc) == by_tree(doc)
        assert SHAPES.hits == hits + 1
    assert by_default(second).notifications[0].source == {"RuleName": "R"}  # type: ignore[union-attr]
