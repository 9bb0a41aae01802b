"""A picture's base64, every way cameras send it: what is decoded, what is refused and why.

``decode_base64_picture`` decodes plain base64 at once and looks at anything else
(line breaks, a data: URI, missing padding) only when that fails; these tests hold
both ways to the standard library's reading of the same text.
"""

from __future__ import annotations

import base64
import binascii
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lprmeta.errors import PayloadError
from lprmeta.protocol.values import MAX_DEPTH, decode_base64_picture, lenient_json

PICTURE = os.urandom(3000)
PLAIN = base64.b64encode(PICTURE).decode()


@pytest.mark.parametrize(
    "text",
    [
        PLAIN,
        f"  {PLAIN}\n",
        "\r\n".join(PLAIN[i : i + 76] for i in range(0, len(PLAIN), 76)),  # MIME lines
        " ".join(PLAIN[i : i + 64] for i in range(0, len(PLAIN), 64)),
        f"data:image/jpeg;base64,{PLAIN}",
        f"DATA:image/jpeg;base64,{PLAIN}",
    ],
)
def test_every_way_a_camera_sends_a_picture_decodes(text: str) -> None:
    assert decode_base64_picture(text, limit=len(PICTURE)) == PICTURE


def test_missing_padding_is_restored() -> None:
    data = PICTURE[:100]  # 100 bytes: base64 ends in "="
    text = base64.b64encode(data).decode()
    assert text.endswith("=")
    assert decode_base64_picture(text.rstrip("="), limit=100) == data


def test_the_limit_is_the_decoded_size() -> None:
    assert decode_base64_picture(PLAIN, limit=len(PICTURE)) == PICTURE
    with pytest.raises(PayloadError, match=f"about {len(PICTURE)} bytes is above the limit"):
        decode_base64_picture(PLAIN, limit=len(PICTURE) - 1)


@pytest.mark.parametrize(
    "text", [PLAIN[:-8] + "!!!!!!!!", PLAIN[:100] + "é" + PLAIN[101:], "QUJD" * 10 + "\x00"]
)
def test_what_is_not_base64_is_refused_with_the_reason(text: str) -> None:
    with pytest.raises(PayloadError, match="picture is not valid base64"):
        decode_base64_picture(text, limit=10**6)


def reference(text: str) -> bytes | None:
    """The standard library's reading: white space dropped, padding restored, strict."""
    plain = "".join(text.split())
    try:
        return base64.b64decode(plain + "=" * (-len(plain) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


@settings(max_examples=400, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n\r -_é"
        ),
        max_size=80,
    )
)
def test_any_text_reads_as_the_standard_library_reads_it(text: str) -> None:
    expected = reference(text)
    if expected is None:
        with pytest.raises(PayloadError):
            decode_base64_picture(text, limit=10**6)
    else:
        assert decode_base64_picture(text, limit=10**6) == expected


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=300))
def test_a_plain_picture_decodes_exactly_at_or_under_its_limit(data: bytes, limit: int) -> None:
    text = base64.b64encode(data).decode()
    if len(text) * 3 // 4 > limit:
        with pytest.raises(PayloadError, match="above the limit"):
            decode_base64_picture(text, limit=limit)
    else:
        assert decode_base64_picture(text, limit=limit) == data


def test_a_number_too_long_for_int_is_kept_as_its_digits() -> None:
    """orjson refuses it, and Python's int() refuses past 4,300 digits: the body is still
    read, the number kept as text (its field then a problem of that field only)."""
    digits = "9" * 5000
    body = f'{{"Speed": {digits}, "Small": -{"1" * 4300}, "Neg": -{digits}}}'.encode()
    parsed = lenient_json(body)
    assert parsed["Speed"] == digits and parsed["Neg"] == "-" + digits
    assert isinstance(parsed["Small"], int)


@pytest.mark.parametrize(("open_", "close"), [("[", "]"), ('{"a":', "}")])
def test_json_nests_up_to_the_limit_and_not_one_level_more(open_: str, close: str) -> None:
    assert lenient_json((open_ * MAX_DEPTH + "1" + close * MAX_DEPTH).encode()) is not None
    mixed = '{"a": [1, "x", {"b": ' + "[" * (MAX_DEPTH - 3) + "2" + "]" * (MAX_DEPTH - 3) + "}]}"
    assert lenient_json(mixed.encode())["a"][:2] == [1, "x"]
    with pytest.raises(PayloadError, match="nested deeper than"):
        lenient_json((open_ * (MAX_DEPTH + 1) + "1" + close * (MAX_DEPTH + 1)).encode())
