"""Property test: arbitrary values in every field of every input's normaliser.

Whatever a camera puts in a field (a time out of datetime's range, 5,000 digits,
NaN, a list where a number belongs, a negative size), over HTTP, over TCP (each
JSON post, and every byte of the 0x8801 metadata chunk) and over RTSP (an item
or the UtcTime of a notification): no exception leaves the parser, the line
validates against the shipped schema, and the raw value is kept as sent.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lprmeta.envelope import Read
from lprmeta.errors import MetadataError
from lprmeta.events import Event, Kind
from lprmeta.protocol.http import parse_post
from lprmeta.protocol.jsonpost import MAX_RAW_TEXT
from lprmeta.protocol.onvif import document_events
from lprmeta.protocol.tcp import (
    COMM_RECOG_POST,
    JSON_POSTS,
    Packet,
    Recognition,
    decode_packet,
    encode_chunk,
    encode_metadata,
)
from lprmeta.protocol.values import _parse_time, parse_time
from lprmeta.sinks.jsonl import encode_line
from lprmeta.vocabulary import FIELDS, IMAGE_ROLES, fold_key

from .conftest import check_line

NOW = datetime(2026, 1, 1, tzinfo=UTC)

# Every field name the vocabulary knows, in both naming eras ("plate_color", "Plate Color"),
# and the keys the parking and counting builders read by name.
_ALIASES = sorted({a for aliases in FIELDS.values() for a in aliases})
_EXTRA = [
    "state",
    "lengthofparking",
    "reporttype",
    "datalist",
    "regionlist",
    "regionname",
    "totaloccupied",
    "totalavailable",
    "objecttrackingboxx1",
    "allcar",
    "smallvehicle",
]
_NAMES = ["Plate Color", "Length of Parking", "Resolution Width", "Time", "Region", "Data List"]
FIELDS = st.sampled_from([*_ALIASES, *_EXTRA, *_NAMES, "Confidence", "Direction"])


def _extreme_times() -> st.SearchStrategy[str]:
    zones = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
    when = st.datetimes(
        min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=zones
    )
    return when.map(lambda d: d.isoformat())


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.integers(0, 6000).map(lambda n: "9" * n),  # int() refuses past 4,300 digits
    _extreme_times(),
    st.sampled_from(["-", "", "²", "٣", "1e999", "-5", "00:99:99", "25mph", "NaN", "∞"]),
    st.lists(st.integers(), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)

PROPERTIES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid_line(event: Event) -> dict[str, Any]:
    return check_line(encode_line(event))


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON would say. NaN is NaN; and an integer beyond 64 bits, parsed from
    JSON text, is kept as the nearest float (orjson's reading, and what RFC 8259 lets
    JSON parsers do); a camera's counters and codes are far inside 64 bits."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    big = [x for x in (a, b) if isinstance(x, int) and not -(2**63) <= x < 2**64]
    if big and isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _kept(raw: Any, key: str, value: Any) -> None:
    if fold_key(key) in IMAGE_ROLES:
        return  # a picture field: replaced by a placeholder, never inlined
    if isinstance(value, str) and len(value) > MAX_RAW_TEXT:
        assert raw[key].startswith(f"<text of {len(value)} characters")
        return
    assert _same(raw[key], value), (raw[key], value)


@PROPERTIES
@given(FIELDS, VALUES, st.booleans())
def test_http_post_any_value_in_any_field(field: str, value: Any, old_era: bool) -> None:
    key = field if not old_era else field.lower().replace(" ", "_")
    body = {"Plate": "PROP1", key: value}
    event = parse_post(body, camera="c", received=NOW).event
    _valid_line(event)
    _kept(event.raw, key, value)


@PROPERTIES
@given(FIELDS, VALUES, st.sampled_from(sorted(JSON_POSTS)))
def test_tcp_json_post_any_value_in_any_field(field: str, value: Any, command: int) -> None:
    body = {"Plate": "PROP2", field: value}
    data = json.dumps(body, allow_nan=True).encode()
    read = decode_packet(Packet(command, data), camera="c", received=NOW)
    assert isinstance(read, Read)
    event = read.event
    assert event.kind is JSON_POSTS[command]
    line = _valid_line(event)
    assert line["kind"] == JSON_POSTS[command].value
    _kept(event.raw, field, value)


@PROPERTIES
@given(st.binary(max_size=300), st.integers(0, 3))
def test_tcp_recognition_any_metadata_bytes(meta: bytes, pictures: int) -> None:
    """Every byte of the metadata chunk arbitrary (so every field, every value)."""
    chunks = encode_chunk(b"\x11\xff\x00\x00", meta) + b"".join(
        encode_chunk(b"\x22\xff\x00\x00", b"\xff\xd8\xff" + bytes([i])) for i in range(pictures)
    )
    if not meta:  # the one typed error: a metadata chunk with nothing in it
        with pytest.raises(MetadataError):
            decode_packet(Packet(COMM_RECOG_POST, chunks), camera="c", received=NOW)
        return
    read = decode_packet(Packet(COMM_RECOG_POST, chunks), camera="c", received=NOW)
    assert isinstance(read, Read) and read.event.kind is Kind.PLATE
    event = read.event
    _valid_line(event)


@PROPERTIES
@given(
    st.integers(0, 2**64 - 1),
    st.integers(0, 255),
    st.integers(0, 2**16 - 1),
    st.floats(width=32, allow_nan=True),
    st.integers(0, 2**16 - 1),
)
def test_tcp_recognition_extreme_numbers(
    time_ms: int, code: int, size: int, conf: float, brand: int
) -> None:
    r = Recognition(
        time_ms=time_ms,
        vehicle_color=code,
        plate_color=code,
        direction=code,
        plate_type=code,
        vehicle_type=code,
        confidence=conf,
        width=size,
        height=size,
        box=(size, size, size, size),
        brand=brand,
    )
    data = encode_chunk(b"\x11\xff\x00\x00", encode_metadata(r))
    read = decode_packet(Packet(COMM_RECOG_POST, data), camera="c", received=NOW)
    assert isinstance(read, Read)
    line = _valid_line(read.event)
    assert line["raw"]["time_ms"] == time_ms


def _notification(utc: str, name: str, value: str) -> bytes:
    return (
        '<tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema" '
        'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2"><tt:Event><wsnt:NotificationMessage>'
        "<wsnt:Topic>tns1:RuleEngine/LicensePlateDetector/LicensePlate</wsnt:Topic>"
        f"<wsnt:Message><tt:Message UtcTime={quoteattr(utc)}><tt:Key>"
        '<tt:SimpleItem Name="LicensePlateResult" Value="PROP3"/></tt:Key><tt:Data>'
        f"<tt:SimpleItem Name={quoteattr(name)} Value={quoteattr(value)}/>"
        "</tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage></tt:Event>"
        "</tt:MetadataStream>"
    ).encode()


def _xml_chars(text: str) -> bool:
    """Characters XML 1.0 allows (a document with others is refused, typed, unparsed)."""
    return all(
        ch in "\t\n\r"
        or (ch >= " " and not "\ud800" <= ch <= "\udfff" and ch not in "\ufffe\uffff")
        for ch in text
    )


_XML_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=40,
)


@PROPERTIES
@given(
    st.one_of(_extreme_times(), _XML_TEXT, st.integers(0, 6000).map(lambda n: "9" * n)),
    st.sampled_from(["LicenseCarSpeed", "LicenseCarDirection", "Confidence", "PlateColor", "X"]),
    st.one_of(_XML_TEXT, VALUES.map(str).filter(_xml_chars)),
)
def test_onvif_any_value_in_an_item_or_the_time(utc: str, name: str, value: str) -> None:
    reads, _ = document_events(_notification(utc, name, value), camera="c", received=NOW)
    assert len(reads) == 1
    event = reads[0].event
    assert event.plate == "PROP3"
    _valid_line(event)
    if len(value) <= MAX_RAW_TEXT:  # quoteattr writes line ends as references: kept as is
        assert event.raw["data"][name] == value
    assert event.raw["utc_time"] == utc


def _onvif_shaped(text: str) -> str:
    """24 characters with "T" at 10 and "Z" last: what parse_time's fast path takes."""
    return (text + "0" * 24)[:10] + "T" + (text + "0" * 24)[11:23] + "Z"


@PROPERTIES
@given(
    st.one_of(
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
            lambda d: d.isoformat(timespec="milliseconds") + "Z"
        ),
        st.text(st.sampled_from("0123456789-:.+TZ \t"), min_size=20, max_size=24).map(
            _onvif_shaped
        ),
        st.text(max_size=30).map(_onvif_shaped),
    )
)
def test_onvif_utc_time_reads_as_the_general_path_reads_it(text: str) -> None:
    """parse_time's shortcut for "2026-12-07T12:57:53.713Z" gives what its checks would:
    the same time, in the same zone object (or None), for any text of that shape."""
    fast, general = parse_time(text), _parse_time(text)
    assert fast == general
    assert type(fast) is type(general)
    assert fast is None or fast.tzinfo is general.tzinfo  # type: ignore[union-attr]
