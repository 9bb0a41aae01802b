from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lprmeta.envelope import Read
from lprmeta.events import (
    Brand,
    Color,
    Direction,
    Event,
    ImageRef,
    Kind,
    ListType,
    Source,
    Vehicle,
    VehicleType,
    event_schema,
    format_time,
    replaced,
)
from lprmeta.protocol.onvif import Notification

from .conftest import check_event


@pytest.mark.parametrize(
    ("enum", "wire", "expected"),
    [
        (Color, 2, Color.BLUE),
        (Color, "Blue", Color.BLUE),
        (Color, "GREY", Color.GRAY),
        (Color, 99, Color.UNKNOWN),
        (Color, -1, Color.UNKNOWN),
        (Color, "mauve", Color.UNKNOWN),
        (Color, "-", None),
        (Color, "", None),
        (Color, None, None),
        (Color, True, Color.UNKNOWN),
        (Color, 2.5, Color.UNKNOWN),
        (VehicleType, 6, VehicleType.SUV),
        (VehicleType, "SUV", VehicleType.SUV),
        (VehicleType, "Police-car", VehicleType.POLICE_CAR),
        (VehicleType, "Fire engine", VehicleType.FIRE_ENGINE),
        (VehicleType, "E-bike", VehicleType.E_BIKE),
        (VehicleType, "Motorbike", VehicleType.MOTOR),
        (VehicleType, 16, VehicleType.UNKNOWN),
        (Brand, 6, Brand.BMW),
        (Brand, "BMW", Brand.BMW),
        (Brand, "Mercedes—Benz", Brand.MERCEDES_BENZ),  # the guide's em dash
        (Brand, "Rolls-royce", Brand.ROLLS_ROYCE),
        (Brand, "LYNK&CO", Brand.LYNK_CO),
        (Brand, 71, Brand.DS),
        (Brand, 72, Brand.UNKNOWN),  # TRA_BRAND_MAX is not a brand
        (Brand, "6", Brand.BMW),
        (Direction, 1, Direction.IN),
        (Direction, "Approach", Direction.IN),
        (Direction, "Away", Direction.OUT),
        (Direction, 3, Direction.UNKNOWN),
        (ListType, 3, ListType.VISITOR),
        (ListType, "Visitor", ListType.VISITOR),
        (ListType, "White", ListType.WHITE),
        (Direction, "¹", Direction.UNKNOWN),  # isdigit() but not int(): found by fuzzing
        (Direction, "٢", Direction.OUT),  # a decimal digit in another script
    ],
)
def test_tolerant_enums(enum: type[Color], wire: object, expected: object) -> None:
    assert enum.parse(wire) == expected


def test_brand_codes_follow_the_guide_order() -> None:
    # traBrandType: TRA_BRAND_UNKNOW = 0, TRA_BRAND_AUDI, ... TRA_BRAND_DS (71), TRA_BRAND_MAX
    assert Brand.from_code(0) is Brand.UNKNOWN
    assert Brand.from_code(1) is Brand.AUDI
    assert Brand.from_code(5) is Brand.MERCEDES_BENZ
    assert Brand.from_code(49) is Brand.TESLA
    assert Brand.from_code(65) is Brand.VOLVO


def full_event() -> Event:
    return Event(
        kind=Kind.PLATE,
        camera="gate-1",
        source=Source.TCP,
        time=datetime(2018, 5, 9, 12, 11, 30, 0, tzinfo=UTC),
        plate="부산02가1234",
        confidence=0.93,
        country="KOR",
        list=ListType.WHITE,
        direction=Direction.IN,
        speed_kmh=25.0,
        roi=1,
        plate_box=(1, 2, 3, 4),
        resolution=(1280, 720),
        plate_color=Color.WHITE,
        vehicle=Vehicle(VehicleType.CAR, Color.BLACK, Brand.BMW),
        images=(ImageRef("plate", "/x/p.jpg", 10, "0" * 64),),
        details={"a": 1},
        raw={"plate": "부산02가1234"},
    )


def test_full_event_line_matches_schema_and_keeps_unicode() -> None:
    line = check_event(full_event())
    assert line["time"] == "2018-05-09T12:11:30.000Z"
    assert line["vehicle"] == {"type": "car", "color": "black", "brand": "BMW"}
    assert line["plate_box"] == [1, 2, 3, 4]
    text = json.dumps(full_event().to_json(), ensure_ascii=False)
    assert "부산02가1234" in text


def test_minimal_event_has_every_key_null() -> None:
    line = check_event(Event(kind=Kind.EVENT, camera="c", source=Source.HTTP))
    assert set(line) == set(event_schema()["required"])
    for key in ("time", "plate", "confidence", "country", "list", "plate_box"):
        assert line[key] is None
    assert line["vehicle"] == {"type": None, "color": None, "brand": None}
    assert line["images"] == []


def test_schema_rejects_what_the_contract_forbids() -> None:
    validator = jsonschema.Draft202012Validator(event_schema())
    line = full_event().to_json()
    for key, bad in [("kind", "car"), ("confidence", 93), ("source", "udp"), ("time", "yesterday")]:
        broken = {**line, key: bad}
        assert not validator.is_valid(broken), key
    missing = dict(line)
    del missing["raw"]
    assert not validator.is_valid(missing)


def test_format_time() -> None:
    naive = datetime(2023, 9, 15, 6, 19, 57, 267000)
    assert format_time(naive) == "2023-09-15T06:19:57.267"
    assert format_time(None) is None
    assert format_time(datetime(2023, 9, 15, tzinfo=UTC)) == "2023-09-15T00:00:00.000Z"
    assert format_time(datetime(1, 1, 1, 0, 0, 0, 999, tzinfo=UTC)) == "0001-01-01T00:00:00.000Z"


@given(st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))])))
def test_format_time_of_aware_times_is_isoformats(value: datetime) -> None:
    """The UTC fast path writes what isoformat(timespec="milliseconds") writes, Z for UTC."""
    expected = value.isoformat(timespec="milliseconds")
    assert format_time(value) == (expected[:-6] + "Z" if expected.endswith("+00:00") else expected)


@given(
    st.datetimes(timezones=st.just(UTC)),
    st.lists(st.integers(-3_000_000, 3_000_000), min_size=1, max_size=20),
)
def test_format_time_of_times_a_second_apart(value: datetime, offsets: list[int]) -> None:
    """Times in one second and the next (the remembered second's hits and misses)."""
    for offset in offsets:
        try:
            t = value + timedelta(microseconds=offset)
        except OverflowError:
            continue
        assert format_time(t) == t.isoformat(timespec="milliseconds")[:-6] + "Z"


def test_merge_keeps_known_fields_and_every_image() -> None:
    a = Event(
        kind=Kind.PLATE,
        camera="c",
        source=Source.RTSP,
        plate="AB1234",
        speed_kmh=25.0,
        images=(ImageRef("plate", "/a.jpg", 1, "a" * 64),),
        raw={"from": "rtsp"},
    )
    b = Event(
        kind=Kind.PLATE,
        camera="c",
        source=Source.HTTP,
        plate="AB1234",
        speed_kmh=30.0,
        country="NLD",
        vehicle=Vehicle(brand=Brand.BMW),
        images=(ImageRef("plate", "/b.jpg", 1, "a" * 64), ImageRef("full", "/c.jpg", 1, "c" * 64)),
        raw={"from": "http"},
    )
    m = a.merged_with(b)
    assert m.id == a.id and m.source is Source.RTSP
    assert m.speed_kmh == 25.0 and m.country == "NLD" and m.vehicle.brand is Brand.BMW
    assert [i.path for i in m.images] == ["/a.jpg", "/c.jpg"]  # same bytes once
    assert m.details["sources"] == ["rtsp", "http"]
    assert m.raw == {"merged": [{"from": "rtsp"}, {"from": "http"}]}
    check_event(m)


def _stdlib_twin(cls: type) -> Any:
    """``cls`` rebuilt by the stdlib's dataclass: the reference for fast_frozen_init."""
    import dataclasses

    namespace: dict[str, Any] = {"__annotations__": {}}
    for f in dataclasses.fields(cls):
        namespace["__annotations__"][f.name] = f.type
        namespace[f.name] = dataclasses.field(
            default=f.default, default_factory=f.default_factory, kw_only=f.kw_only
        )
    return dataclasses.dataclass(frozen=True)(type(f"{cls.__name__}Twin", (), namespace))


_EVENT_ARGS = {"kind": Kind.PLATE, "camera": "c", "source": Source.HTTP, "plate": "AB1"}


@pytest.mark.parametrize(
    ("cls", "args", "kwargs"),
    [
        (Event, (), _EVENT_ARGS),
        (Read, (Event(**_EVENT_ARGS),), {"weight": 3}),
        (Notification, ("t", "u", None, {"a": "b"}, {}, {}), {}),
        (Notification, ("t", "u", None, {}, {}, {}, True), {}),
    ],
    ids=["Event", "Read", "Notification", "Notification-all"],
)
def test_fast_init_is_the_dataclass_init(
    cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    """An __init__ by fast_frozen_init (slot descriptors, issue 17) takes what the
    dataclass's own takes and gives the same object."""
    import dataclasses
    import inspect

    reference = _stdlib_twin(cls)
    ours = inspect.signature(cls.__init__).parameters  # type: ignore[misc]
    theirs = inspect.signature(reference.__init__).parameters
    assert list(ours) == list(theirs)
    for name in ours:
        assert ours[name].kind == theirs[name].kind, name
        assert (ours[name].default is inspect.Parameter.empty) == (
            theirs[name].default is inspect.Parameter.empty
        ), name
    a, b = cls(*args, **kwargs), reference(*args, **kwargs)
    for f in dataclasses.fields(cls):
        if f.name not in ("id", "received"):
            assert getattr(a, f.name) == getattr(b, f.name), f.name
    with pytest.raises(TypeError):
        cls()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(a, dataclasses.fields(cls)[0].name, None)


@pytest.mark.parametrize(
    ("obj", "changes"),
    [
        (Event(**_EVENT_ARGS), {"images": (), "plate": "CD2"}),
        (Event(**_EVENT_ARGS, details={"a": 1}), {}),
        (Read(Event(**_EVENT_ARGS), weight=3), {"weight": 7}),
        (Notification("t", "u", None, {"a": "b"}, {}, {}), {"topic": "x", "data": {}}),
    ],
    ids=["Event", "Event-unchanged", "Read", "Notification"],
)
def test_replaced_is_dataclasses_replace(obj: Any, changes: dict[str, Any]) -> None:
    """The generated __replace__ (issue 17) gives what dataclasses.replace gives: every
    other field the same object, the original untouched, still frozen, still hashable
    and comparable as the dataclass is; a name that is no field is a TypeError."""
    import dataclasses

    ours, theirs = replaced(obj, **changes), dataclasses.replace(obj, **changes)
    assert type(ours) is type(obj)
    for f in dataclasses.fields(obj):
        assert getattr(ours, f.name) is getattr(theirs, f.name), f.name
    assert ours == theirs
    before = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    assert all(getattr(obj, k) is v for k, v in before.items())
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(ours, dataclasses.fields(obj)[0].name, None)
    with pytest.raises(TypeError, match="no field 'nope'"):
        replaced(obj, nope=1)


def test_fast_init_keeps_factories_fresh() -> None:
    a, b = Event(**_EVENT_ARGS), Event(**_EVENT_ARGS)
    assert a.details == {} and a.details is not b.details
    assert a.id != b.id
    with pytest.raises(TypeError):
        Event(Kind.PLATE, "c", Source.HTTP)  # type: ignore[misc]


@pytest.mark.parametrize("cls", [Event, Read, Notification])
def test_fast_init_gives_the_class_back_and_refuses_subclasses(cls: type) -> None:
    """The object is lent a class of the same slots while __init__ runs: it must end with
    its own, frozen, and a subclass (which would end as ``cls``) is refused."""
    import copy
    import pickle

    e = Event(**_EVENT_ARGS)
    assert type(e) is Event and type(Read(e)) is Read
    n = Notification("t", "u", None, {}, {}, {})
    assert type(n) is Notification
    assert pickle.loads(pickle.dumps(e)) == e and copy.copy(n) == n  # noqa: S301  # our bytes
    with pytest.raises(TypeError, match="cannot be subclassed"):
        type("Sub", (cls,), {"__slots__": ()})


def test_event_ids_carry_the_current_millisecond_and_never_repeat() -> None:
    """An id is the millisecond it was made (12 hex digits), this process's 40 random
    bits and a counter: its head is remembered per millisecond, and must move on."""
    import time

    from lprmeta.events import new_event_id

    heads = []
    for _ in range(3):
        before = time.time_ns() // 1_000_000
        event_id = new_event_id()
        after = time.time_ns() // 1_000_000
        assert len(event_id) == 28 and int(event_id, 16) >= 0
        assert before <= int(event_id[:12], 16) <= after
        heads.append(int(event_id[:12], 16))
        time.sleep(0.003)
    assert heads == sorted(heads) and len(set(heads)) == 3
    ids = [new_event_id() for _ in range(100_000)]
    assert len(set(ids)) == len(ids)
