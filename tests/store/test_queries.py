"""Writing and searching the store, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from lprmeta.config import StoreConfig
from lprmeta.errors import SchemaError
from lprmeta.events import Event, Kind, ListType
from lprmeta.sinks.jsonl import encode_line
from lprmeta.store import queries
from lprmeta.store.db import current, head, open_engine, upgrade

from .helpers import T0, count, make_event, plates, search, store_events


@pytest.fixture
def engine(store_config: StoreConfig) -> Iterator[Engine]:
    engine = open_engine(store_config)
    upgrade(engine)
    yield engine
    engine.dispose()


def test_schema_is_created_then_left_alone(store_config: StoreConfig) -> None:
    engine = open_engine(store_config)
    try:
        assert current(engine) is None
        assert upgrade(engine) is None  # was empty
        assert current(engine) == head()
        assert upgrade(engine) == head()  # nothing to do the second time
    finally:
        engine.dispose()


def test_a_newer_schema_is_refused_not_damaged(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaError, match="9999"):
        upgrade(engine)


def test_a_retried_batch_stores_each_event_once(engine: Engine) -> None:
    evs = [make_event(i) for i in range(20)]
    store_events(engine, evs)
    store_events(engine, evs[10:])  # the batch after a commit whose answer was lost
    assert count(engine) == 20


def test_plate_search_folds_look_alikes_and_allows_one_edit(engine: Engine) -> None:
    store_events(
        engine,
        [
            make_event(1, plate="AB-1234"),
            make_event(2, plate="XY9876"),
            make_event(3, plate="AB12345"),  # one insertion away
            make_event(4, plate="AB1284"),  # one substitution away
            make_event(5, plate="ZZ0000"),
        ],
    )
    assert plates(search(engine, plate="ab 1234")) == ["AB-1234"]
    assert plates(search(engine, plate="A8I234")) == ["AB-1234"]  # B/8 and I/1 look alike
    near = plates(search(engine, plate="AB1234", tolerance=1))
    assert sorted(near) == ["AB-1234", "AB12345", "AB1284"]
    assert plates(search(engine, plate="XY987", tolerance=1)) == ["XY9876"]
    assert plates(search(engine, plate="XY987")) == []
    assert sorted(plates(search(engine, plate="AB*"))) == ["AB-1234", "AB12345", "AB1284"]
    assert plates(search(engine, plate="?Y98*")) == ["XY9876"]


def test_filters_combine(engine: Engine) -> None:
    store_events(
        engine,
        [
            make_event(1, camera="gate", list_type=ListType.WHITE),
            make_event(2, camera="exit", list_type=ListType.BLACK),
            make_event(3, camera="exit", kind=Kind.COUNTING, plate=None),
            make_event(4, camera="gate", received=T0 - timedelta(hours=3)),
        ],
    )
    ids = lambda page: [e["id"] for e in page.events]  # noqa: E731
    assert ids(search(engine, camera="exit")) == ["ev00000003", "ev00000002"]
    assert ids(search(engine, camera="gate,exit", kind="plate")) == [
        "ev00000002",
        "ev00000001",
        "ev00000004",
    ]
    assert ids(search(engine, list="black")) == ["ev00000002"]
    assert ids(search(engine, list="none", camera="gate")) == ["ev00000004"]
    assert ids(search(engine, since="2h", until=(T0 + timedelta(seconds=2)).isoformat())) == [
        "ev00000001"
    ]
    assert ids(search(engine, until="2h")) == ["ev00000004"]


def test_pages_follow_each_other_without_gaps_or_repeats(engine: Engine) -> None:
    # Several events in the same microsecond: the id breaks the tie.
    evs = [make_event(i, received=T0 + timedelta(seconds=i // 3)) for i in range(25)]
    store_events(engine, evs)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        page = search(engine, **params)
        pages += 1
        seen += [e["id"] for e in page.events]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted((e.id for e in evs), reverse=True)


@pytest.mark.parametrize(
    "hostile",
    [
        "' OR '1'='1",
        "x'; DROP TABLE events; --",
        '" OR 1=1 --',
        "%",
        "_",
        "\\",
        "AB1234' UNION SELECT * FROM pictures --",
    ],
)
def test_sql_in_every_filter_is_inert(engine: Engine, hostile: str) -> None:
    store_events(engine, [make_event(1), make_event(2, camera="exit")])
    for name in ("plate", "camera"):
        assert search(engine, **{name: hostile}).events == []
    for name in ("kind", "list", "since", "until", "cursor", "limit", "tolerance"):
        with pytest.raises(queries.FilterError) as err:
            search(engine, **{name: hostile})
        assert err.value.parameter == name
    assert count(engine) == 2  # nothing dropped


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"tolerance": "2"}, "tolerance"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-45"}, "until"),
        ({"kind": "bogus"}, "kind"),
        ({"list": "grey"}, "list"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"plate": "--"}, "plate"),
        ({"plate": "AB*", "tolerance": "1"}, "tolerance"),
        ({"colour": "red"}, "colour"),
        ({"camera": "x" * 200}, "camera"),
        # Found by trying: digits int() refuses, an age before the calendar starts, a
        # cursor beyond a 64-bit column.
        ({"limit": "²"}, "limit"),
        ({"tolerance": "¹"}, "tolerance"),
        ({"since": "999999w"}, "since"),
        ({"cursor": queries.encode_cursor(10**30, "x")}, "cursor"),
        ({"cursor": queries.encode_cursor(5, "x" * 65)}, "cursor"),
    ],
)
def test_bad_filters_name_the_parameter(params: dict[str, str], parameter: str) -> None:
    with pytest.raises(queries.FilterError) as err:
        queries.parse_filters(params)
    assert err.value.parameter == parameter


def test_retention_marks_pictures_and_the_api_says_so(engine: Engine) -> None:
    from lprmeta.events import ImageRef

    img = ImageRef("plate", "/nowhere/p.jpg", 10, "ab" * 32)
    store_events(engine, [make_event(1, images=(img,))])
    with engine.begin() as conn:
        queries.mark_pictures_removed(conn, [("ev00000001", 0)], "removed by retention: x")
        event = queries.get_event(conn, "ev00000001")
        pic = queries.get_picture(conn, "ev00000001", "plate")
    assert event is not None
    assert event["images"][0]["missing"] == "removed by retention: x"
    assert pic is not None
    assert pic.missing == "removed by retention: x"


def test_an_older_database_is_upgraded_in_place(store_config: StoreConfig) -> None:
    engine = open_engine(store_config)
    try:
        upgrade(engine, "0001")  # as the first lprmeta with a store left it
        store_events(engine, [make_event(i) for i in range(5)])
        assert upgrade(engine) == "0001"
        assert current(engine) == head() != "0001"
        assert count(engine) == 5
        assert len(search(engine, kind="plate").events) == 5
    finally:
        engine.dispose()


def test_a_page_ends_at_its_byte_budget_and_the_next_goes_on(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    evs = [make_event(i) for i in range(10)]
    store_events(engine, evs)
    line = len(json_line(evs[0]))
    monkeypatch.setattr(queries, "MAX_PAGE_BYTES", int(line * 3.5))  # three lines a page
    seen: list[str] = []
    cursor = None
    while True:
        page = search(engine, limit=50, **({"cursor": cursor} if cursor else {}))
        assert 1 <= len(page.events) <= 3
        seen += [e["id"] for e in page.events]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted((e.id for e in evs), reverse=True)


def json_line(event: Event) -> bytes:
    return encode_line(event).rstrip(b"\n")
