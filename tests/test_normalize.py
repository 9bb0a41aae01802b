"""The normaliser every transport ends in, table-driven: one row per spelling, table or
rule of the vocabulary (lprmeta/vocabulary.py), the body as a camera sends it -> the
fields of the event. Both HTTP naming eras ("2. HTTP Type", notes 1-3), the TCP JSON
posts' names, the template editor's renames, picture roles, direction words, code
tables and the no-plate rule."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from lprmeta.errors import PayloadError
from lprmeta.events import Brand, Color, Direction, Kind, ListType, Source, VehicleType
from lprmeta.protocol.jsonpost import _shape_index, kind_of, normalize_json
from lprmeta.vocabulary import fold_key

NOW = datetime(2026, 1, 1, tzinfo=UTC)
B64 = "/9j/4AAQ"  # the first bytes of a JPEG, base64

# (case, body, expected: attribute -> value; "details.x" and "roles" read deeper)
ROWS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "new era",
        {"Plate": "AB12", "Plate Color": "Blue", "Speed": "25km/h"},
        {"plate": "AB12", "plate_color": Color.BLUE, "speed_kmh": 25.0},
    ),
    (
        "old era",
        {"plate": "AB12", "plate_color": "blue", "speed": "25"},
        {"plate": "AB12", "plate_color": Color.BLUE, "speed_kmh": 25.0},
    ),
    (
        "any letter case",
        {"PLATE": "AB12", "VEHICLE TYPE": "SUV"},
        {"plate": "AB12", "vehicle": ("type", VehicleType.SUV)},
    ),
    (
        "onvif item name",
        {"LicensePlateResult": "AB12", "LicenseCarDirection": "2"},
        {"plate": "AB12", "direction": Direction.OUT},
    ),
    (
        "direction Approach is in",
        {"Plate": "A", "Direction": "Approach"},
        {"direction": Direction.IN},
    ),
    ("direction Away is out", {"Plate": "A", "Direction": "Away"}, {"direction": Direction.OUT}),
    ("direction code 1", {"Plate": "A", "Direction": 1}, {"direction": Direction.IN}),
    ("direction Leave", {"Plate": "A", "Direction": "Leave"}, {"direction": Direction.OUT}),
    ("direction Leaving", {"Plate": "A", "Direction": "Leaving"}, {"direction": Direction.OUT}),
    ("direction entering", {"Plate": "A", "Direction": "entering"}, {"direction": Direction.IN}),
    ("direction inbound", {"Plate": "A", "Direction": "inbound"}, {"direction": Direction.IN}),
    ("direction outbound", {"Plate": "A", "Direction": "Outbound"}, {"direction": Direction.OUT}),
    ("direction forward", {"Plate": "A", "Direction": "forward"}, {"direction": Direction.IN}),
    ("direction reverse", {"Plate": "A", "Direction": "reverse"}, {"direction": Direction.OUT}),
    (
        "direction Approaching",
        {"Plate": "A", "Direction": "Approaching"},
        {"direction": Direction.IN},
    ),
    (
        "direction unknown word",
        {"Plate": "A", "Direction": "sideways"},
        {"direction": Direction.UNKNOWN},
    ),
    (
        "colour alias grey",
        {"Plate": "A", "Vehicle Color": "Grey"},
        {"vehicle": ("color", Color.GRAY)},
    ),
    ("colour code", {"Plate": "A", "Plate Color": 8}, {"plate_color": Color.YELLOW}),
    (
        "brand with an em dash",
        {"Plate": "A", "Vehicle Brand": "Mercedes—Benz"},
        {"vehicle": ("brand", Brand.MERCEDES_BENZ)},
    ),
    ("brand with &", {"Plate": "A", "Brand": "Lynk&Co"}, {"vehicle": ("brand", Brand.LYNK_CO)}),
    ("list word Whitelist", {"Plate": "A", "Type": "Whitelist"}, {"list": ListType.WHITE}),
    ("confidence percent", {"Plate": "A", "Confidence": "93%"}, {"confidence": 0.93}),
    ("confidence fraction", {"Plate": "A", "Confidence": 0.5}, {"confidence": 0.5}),
    ("region is a country", {"Plate": "A", "Region": "NLD"}, {"country": "NLD", "roi": None}),
    ("region number is the ROI", {"Plate": "A", "Region": 2}, {"country": None, "roi": 2}),
    (
        "resolution and box",
        {
            "Plate": "A",
            "Resolution Width": 1920,
            "Resolution Height": 1080,
            "Coordinate X1": 1,
            "Coordinate Y1": 2,
            "Coordinate X2": 3,
            "Coordinate Y2": 4,
        },
        {"resolution": (1920, 1080), "plate_box": (1, 2, 3, 4)},
    ),
    (
        "time_msec wins over time",
        {"Plate": "A", "time_msec": 1700000000000, "time": "x"},
        {"time": datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)},
    ),
    (
        "camera local time kept naive",
        {"Plate": "A", "Time": "2023-09-15 06:19:57.267"},
        {"time": datetime(2023, 9, 15, 6, 19, 57, 267000)},
    ),
    ("no plate", {"Plate": "", "Vehicle Type": "Car"}, {"plate": None, "details.no_plate": True}),
    (
        "picture roles",
        {"Plate": "A", "plate_image": B64, "Full Image": B64, "bkgSnap": B64},
        {"roles": ["plate", "full", "background"]},
    ),
    (
        "two keys of one role",
        {"Plate": "A", "plate_image": B64, "Plate Image": B64},
        {"roles": ["plate", "plate_2"]},
    ),
]


@pytest.mark.parametrize(("case", "body", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_row(case: str, body: dict[str, Any], expected: dict[str, Any]) -> None:
    read = normalize_json(body, camera="c", source=Source.HTTP, received=NOW)
    event = read.event
    for key, want in expected.items():
        if key == "roles":
            assert [p.role for p in read.pictures] == want, case
        elif key.startswith("details."):
            assert event.details.get(key.partition(".")[2]) == want, case
        elif key == "vehicle":
            assert getattr(event.vehicle, want[0]) == want[1], case
        else:
            assert getattr(event, key) == want, (case, key)
    assert event.raw.keys() == body.keys()  # every field kept as sent
    assert "problems" not in event.details or case == "no plate"


def test_template_editor_renames_win_over_the_built_in_names() -> None:
    body = {"LicencePlate": "REN1", "Plate": "NOT-THIS", "Snap": B64}
    fields = {"plate": "LicencePlate", "plate_image": "Snap"}
    read = normalize_json(body, camera="c", source=Source.HTTP, received=NOW, fields=fields)
    assert read.event.plate == "REN1"
    assert [p.role for p in read.pictures] == ["plate"]


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"Event": "LPR Event", "Plate": "A"}, Kind.PLATE),
        ({"event": "parking event"}, Kind.PARKING),
        ({"Event Type": "Vehicle Counting"}, Kind.COUNTING),
        ({"Event": "List Event"}, Kind.LIST),
        ({"Event": "Something New"}, Kind.EVENT),
        ({"plate_image": B64}, Kind.PLATE),
        ({"regionList": []}, Kind.COUNTING),
        ({"Length of Parking": "00:01:00"}, Kind.PARKING),
        ({"unrelated": 1}, Kind.EVENT),
    ],
)
def test_kind_from_the_body(body: dict[str, Any], kind: Kind) -> None:
    assert kind_of(body) is kind


def test_one_fold_for_every_name() -> None:
    assert {fold_key(n) for n in ("plate_color", "Plate Color", "PlateColor", "PLATE-COLOR")} == {
        "platecolor"
    }
    assert fold_key("LYNK&CO") == fold_key("lynk co") == "lynkco"


def test_not_an_object_is_the_same_typed_error_everywhere() -> None:
    with pytest.raises(PayloadError, match="expected a JSON object, got list"):
        normalize_json([1], camera="c", source=Source.HTTP, received=NOW)  # type: ignore[arg-type]


def test_a_form_with_a_million_parameters_reads_the_first_thousand() -> None:
    """A form body (or GET) of 10^6 parameters took the loop 1.6 s; the first 1000 are
    read, the rest named, the plate still read."""
    from lprmeta.protocol.http import parse_get, parse_get_params

    body = "description=FORM1&" + "&".join(f"k{i}=v" for i in range(1_000_000))
    read = parse_get(parse_get_params(body), camera="c", received=NOW)
    assert read.event.plate == "FORM1"
    assert read.event.details["problems"] == ["999001 more parameters than 1000; not read"]
    assert len(read.event.raw) == 1000


def test_every_field_the_plate_builder_reads_is_a_known_field() -> None:
    """The builder converts only the fields a body has (``f.present()``, which without a
    field map is the known fields found): a name outside FIELDS would never be read."""
    import inspect
    import re

    from lprmeta.protocol import jsonpost
    from lprmeta.vocabulary import FIELDS

    source = inspect.getsource(jsonpost._plate_fields)
    asked = set(re.findall(r'"([a-z_0-9]+)" in has', source))
    asked |= {"x1", "y1", "x2", "y2"}
    assert len(asked) >= 18
    assert asked <= set(FIELDS)


@pytest.mark.parametrize("mapped", [False, True])
def test_a_field_that_cannot_be_read_is_named_alone_or_mapped(mapped: bool) -> None:
    """One bad coordinate, one bad width: each is a problem of its own, with or without
    a field map (the map's path asks for each field by its key)."""
    body = {"Plate": "AB12", "Coordinate X1": "left", "Resolution Width": "-5"}
    fields = {"plate": "Plate"} if mapped else {}
    event = normalize_json(
        body,
        camera="c",
        source=Source.HTTP,
        received=datetime.now(UTC),
        kind=Kind.PLATE,
        fields=fields,
    ).event
    problems = event.details["problems"]
    assert any(p.startswith("x1:") for p in problems)
    assert any(p.startswith("resolution_width:") for p in problems)
    assert event.plate_box is None
    assert event.resolution is None
    assert event.plate == "AB12"


def _plate_post(plate: str, **extra: Any) -> dict[str, Any]:
    return {"Plate": plate, "Speed": "30", "Direction": "1", **extra}


def test_bodies_of_one_shape_share_an_index_and_keep_their_own_values() -> None:
    """The index of a body's keys is worked out once per shape; each body's values are
    its own, and a shape with pictures finds them every time."""
    _shape_index.cache_clear()
    jpeg = "/9j/" + "A" * 200
    reads = [
        normalize_json(
            _plate_post(f"AB{i}", plate_image=jpeg), camera="c", source=Source.HTTP, received=NOW
        )
        for i in range(50)
    ]
    assert [r.event.plate for r in reads] == [f"AB{i}" for i in range(50)]
    assert all(len(r.pictures) == 1 and r.pictures[0].role == "plate" for r in reads)
    assert _shape_index.cache_info().currsize == 1
    assert _shape_index.cache_info().hits == 49
    # The same keys in another order are another shape with the same meaning.
    other = normalize_json(
        {"Direction": "2", "plate_image": jpeg, "Speed": "9", "Plate": "ZZ1"},
        camera="c",
        source=Source.HTTP,
        received=NOW,
    )
    assert other.event.plate == "ZZ1" and other.event.speed_kmh == 9.0
    assert other.event.direction == Direction.parse("2") and len(other.pictures) == 1


def test_new_keys_every_time_only_miss_the_shape_cache() -> None:
    _shape_index.cache_clear()
    for i in range(5000):
        read = normalize_json(
            _plate_post(f"P{i}", **{f"vendor_{i}": "x"}),
            camera="c",
            source=Source.HTTP,
            received=NOW,
        )
        assert read.event.plate == f"P{i}" and read.event.raw[f"vendor_{i}"] == "x"
    assert _shape_index.cache_info().currsize <= 512  # bounded, least recently used out
    # Bodies past the shape limits are indexed without the cache, with the same result.
    many = {f"k{i}": i for i in range(100)} | {"Plate": "MANY1"}
    long_keys = {"x" * 5000: 1, "Plate": "LONG1"}
    before = _shape_index.cache_info().currsize
    assert normalize_json(many, camera="c", source=Source.HTTP, received=NOW).event.plate == "MANY1"
    assert normalize_json(long_keys, camera="c", source=Source.HTTP, received=NOW).event.plate == (
        "LONG1"
    )
    assert _shape_index.cache_info().currsize == before


@pytest.mark.parametrize("with_top_picture", [True, False])
def test_interval_parking_takes_each_regions_picture(with_top_picture: bool) -> None:
    """The parking builder takes pictures from inside the body's regions: with or
    without a picture at the top level (without one, nothing else says the body has any;
    issue 17 made the picture machinery only for bodies that may carry some)."""
    import json

    from .conftest import FIXTURES

    body = json.loads((FIXTURES / "json" / "parking_interval.json").read_text())
    if not with_top_picture:
        del body["bkgSnap"]
    read = normalize_json(body, camera="c", source=Source.HTTP, received=NOW)
    roles = sorted(p.role for p in read.pictures)
    assert roles == sorted(
        ["plate_roi1", "plate_roi2"] + (["background"] if with_top_picture else [])
    )
    assert "problems" not in read.event.details
    regions = read.event.raw["data list"]
    sizes = {p.role: len(p.data) for p in read.pictures}
    assert [r["plateSnap"] for r in regions] == [
        f"<picture plate_roi{n}: {sizes[f'plate_roi{n}']} bytes>" for n in (1, 2)
    ]
