"""A body parsed with its pictures cut out reads exactly as the same body parsed whole.

``parse_cutting_pictures`` is the HTTP receiver's parse of every large body. These tests
hold it to ``orjson.loads`` on bodies built to hit its edges (escaped quotes and
slashes, text that is not base64, long keys, long strings in lists, nesting, a body
that spells NUL itself), and hold the read made from it to the read made from the
whole parse, field for field and picture for picture, with and without a field map.
"""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lprmeta.protocol.http import parse_post
from lprmeta.protocol.longjson import (
    CUT_FROM,
    LONG,
    MAX_LONG,
    MAX_REST,
    Base64Picture,
    parse_cutting_pictures,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def plain(value: Any) -> Any:
    """``value`` with every Base64Picture as its text: what orjson would have made."""
    if isinstance(value, Base64Picture):
        return value.text()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def pictures_in(value: Any) -> list[Base64Picture]:
    if isinstance(value, Base64Picture):
        return [value]
    if isinstance(value, dict):
        return [p for v in value.values() for p in pictures_in(v)]
    if isinstance(value, list):
        return [p for v in value for p in pictures_in(v)]
    return []


def camera_body(**extra: Any) -> dict[str, Any]:
    return {
        "device": "Network Camera",
        "time": "2026-11-30 12:00:00.123",
        "plate": "CUT1",
        "confidence": "91",
        "plate_image": b64(JPEG),
        "full_image": b64(JPEG * 3),
        **extra,
    }


def test_a_camera_body_has_its_pictures_decoded_and_its_fields_parsed() -> None:
    body = json.dumps(camera_body()).encode()
    assert len(body) >= CUT_FROM
    (value,) = parse_cutting_pictures(body) or pytest.fail("not cut")
    assert plain(value) == orjson.loads(body)
    assert isinstance(value["plate_image"], Base64Picture)
    assert value["plate_image"].data == JPEG and value["full_image"].data == JPEG * 3
    assert value["plate_image"].chars == len(b64(JPEG))
    assert str(value["plate_image"]) == b64(JPEG)


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"plate_image": b64(JPEG).replace("/", "\\/")}, "escaped slashes: orjson's text"),
        ({"plate_image": "data:image/jpeg;base64," + b64(JPEG)}, "a data: URI: text"),
        ({"plate_image": b64(JPEG)[:-3]}, "padding dropped: text"),
        ({"note": "é" * 3000}, "a long text that is not a picture"),
        ({"k" * 3000: 1}, "a long key stays in the rest"),
        ({"list": [b64(JPEG), "x"]}, "a long string in a list is text"),
        ({"nested": {"plateSnap": b64(JPEG), "deeper": [{"full_image": b64(JPEG)}]}}, "nested"),
        ({"quote": 'a\\"b' * 1000 + "x" * 3000}, "escaped quotes early in a long string"),
        ({"slash": "\\\\" * 1200 + "y" * 100}, "escaped backslashes before the closing quote"),
    ],
)
def test_an_irregular_body_reads_as_orjson_reads_it(extra: dict[str, Any], why: str) -> None:
    body = json.dumps(camera_body(**extra), ensure_ascii=False).replace("\\\\/", "\\/").encode()
    parsed = parse_cutting_pictures(body)
    assert parsed is not None, why  # cut, and read as the whole parse reads it
    assert plain(parsed[0]) == orjson.loads(body), why
    for picture in pictures_in(parsed[0]):
        assert picture.data == base64.b64decode(picture.text(), validate=True)


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"a": "\u0000", "plate_image": b64(JPEG * 8)}).encode(),  # spells NUL
        b'{"plate_image": "' + b64(JPEG * 8).encode() + b'"',  # not closed
        b'{"plate_image": "' + b64(JPEG * 8).encode(),  # no closing quote
        json.dumps({"x": list(range(MAX_REST)), "p": b64(JPEG * 8)}).encode(),  # large rest
        json.dumps({f"p{i}": b64(JPEG) for i in range(MAX_LONG + 1)}).encode(),  # many
        json.dumps({"plate_image": b64(JPEG * 8)}).encode()[:-1] + b",}",  # trailing comma
        b"x" * CUT_FROM,
    ],
)
def test_what_it_is_not_for_is_parsed_whole(body: bytes) -> None:
    assert parse_cutting_pictures(body) is None


def test_a_small_body_is_parsed_whole() -> None:
    assert parse_cutting_pictures(json.dumps({"p": "A" * (LONG + 4)}).encode()) is None


def long_text(seed: int, size: int, kind: str) -> str:
    """A long string of one kind, made from a seed (hypothesis's own long strings fail its
    health check for size)."""
    rng = random.Random(seed)
    if kind == "picture":
        return b64(rng.randbytes(size))
    if kind == "escaped":  # what a JSON writer that escapes "/" sends: orjson decides
        return b64(rng.randbytes(size)).replace("/", "\\/")
    return "".join(rng.choice('AZaz09+/="\\\né\x01 ') for _ in range(size))


texts = st.text(max_size=12)
long_texts = st.builds(
    long_text,
    st.integers(0, 2**32),
    st.integers(LONG - 2, LONG * 3),
    st.sampled_from(["picture", "escaped", "text"]),
)
keys = st.sampled_from(
    ["plate_image", "Plate Image", "full_image", "plateSnap", "note", "plate", "x", "Picture"]
)
values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), texts, long_texts),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(keys | texts, inner, max_size=5)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(keys, values, min_size=1, max_size=8), st.integers(0, 2**32))
def test_any_body_reads_as_orjson_reads_it(body: dict[str, Any], seed: int) -> None:
    body["filler"] = long_text(seed, CUT_FROM, "picture")
    data = orjson.dumps(body)
    parsed = parse_cutting_pictures(data)
    if parsed is not None:
        assert plain(parsed[0]) == orjson.loads(data)
        for picture in pictures_in(parsed[0]):
            assert picture.data == base64.b64decode(picture.text(), validate=True)


RENAMED = {"plate_image": "Snapshot", "plate": "Number"}


@pytest.mark.parametrize(
    "fields",
    [
        None,
        RENAMED,
        {"full_image": "plate_image"},
        {"speed": "full_image"},  # a picture key read as a number: its problem says its text
        {"confidence": "Plate Image", "plate": "Number"},  # matched by the folded key
    ],
)
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"Snapshot": b64(JPEG * 2)},  # a picture only under the field map
        {"plate_image": "not base64 at all " * 200},  # marked missing, the read goes out
        {"note": b64(JPEG * 2)},  # base64 that is not a picture: raw keeps its text
        {f"plate_image_{i}": b64(JPEG) for i in range(20)},  # over the picture limit
    ],
)
def test_the_read_is_the_read_of_the_whole_parse(
    fields: dict[str, str] | None, extra: dict[str, Any]
) -> None:
    data = orjson.dumps(camera_body(Number="NUM1", **extra))
    parsed = parse_cutting_pictures(data)
    assert parsed is not None
    cut = parse_post(parsed[0], camera="c", received=NOW, fields=fields)
    whole = parse_post(orjson.loads(data), camera="c", received=NOW, fields=fields)
    a, b = cut.event.to_json(), whole.event.to_json()
    a.pop("id"), b.pop("id")
    assert a == b
    assert [(p.role, p.data) for p in cut.pictures] == [(p.role, p.data) for p in whole.pictures]
    assert cut.weight == whole.weight


PICTURE_FIELD = '"plate_image": "' + b64(JPEG * 8) + '"'


@pytest.mark.parametrize(
    "body",
    [
        '{"a": "' + "x" * 3000 + "\\\\" * 100 + '", ' + PICTURE_FIELD + "}",  # 200 backslashes
        '{"a": "' + "x" * 3000 + '\\"' * 100 + '", ' + PICTURE_FIELD + "}",  # 100 escaped quotes
        '{"' + "K" * 3000 + '"' + " " * 100 + ": 1, " + PICTURE_FIELD + "}",  # far from ":"
        "{" + ", ".join(f'"{i}{"k" * 3000}": 1' for i in range(MAX_LONG + 1)) + "}",
    ],
    ids=["backslashes", "escaped-quotes", "blanks-before-colon", "long-keys"],
)
def test_what_would_cost_a_round_per_byte_is_parsed_whole(body: str) -> None:
    """Shapes no camera sends, each of which would have the cut's loop go round once per
    byte or per key in Python: they are handed to orjson whole (bounded work)."""
    data = body.encode()
    orjson.loads(data)  # valid JSON, each of them
    assert parse_cutting_pictures(data) is None
