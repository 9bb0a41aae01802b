"""Small value parsers shared by every transport: speed, time, confidence, JSON, base64.

Each accepts every spelling the vendor guide shows or implies, and returns
``None`` for "no value" (the guide uses ``-``) rather than raising.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pybase64

from ..errors import PayloadError
from ..vocabulary import fold_key

__all__ = [
    "check_depth",
    "decode_base64_picture",
    "fold_key",
    "lenient_json",
    "parse_confidence",
    "parse_duration",
    "parse_int",
    "parse_speed",
    "parse_time",
]

_SPEED = re.compile(r"^\s*(?P<num>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>km/?h|kmh|kph|mph)?\s*$", re.I)
_MPH = 1.609344


def is_none(value: object) -> bool:
    return value is None or (isinstance(value, str) and value.strip() in ("", "-", "--", "N/A"))


def parse_speed(value: object) -> float | None:
    """``25``, ``"25"``, ``"25km/h"``, ``"15mph"`` (converted to km/h); ``"-"`` is None."""
    if isinstance(value, str):  # a camera sends a handful of speeds: each read once
        return _speed_text(value) if len(value) < 64 else None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        speed = float(value) if abs(value) < 1e300 else math.inf
        return speed if 0 <= speed < math.inf else None
    return None


@functools.lru_cache(maxsize=1024)
def _speed_text(value: str) -> float | None:
    if is_none(value) or not (m := _SPEED.match(value)):
        return None
    speed = float(m["num"])
    if (m["unit"] or "").lower() == "mph":
        speed = round(speed * _MPH, 2)
    return speed


def parse_confidence(value: object) -> float | None:
    """A confidence as 0..1.

    The guide gives the type (TCP: 4-byte float) but never the scale; firmware
    is seen to send both 0.93 and 93. Reading chosen: a value above 1 is a
    percentage; one above 100 is on neither scale and is no confidence (None, as a
    negative one is). The raw value stays in ``raw``.
    """
    if is_none(value) or isinstance(value, bool):
        return None
    if not isinstance(value, str | int | float):
        return None  # a list or an object is no confidence
    try:
        number = float(value.strip().rstrip("%")) if isinstance(value, str) else float(value)
    except (ValueError, OverflowError):  # text, or an integer beyond any float
        return None
    if not math.isfinite(number) or number < 0 or number > 100:  # not a confidence
        return None
    if number > 1:
        number = number / 100
    return round(min(number, 1.0), 4)


_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


def parse_int(value: object) -> int | None:
    """An integer within 64 bits (what a JSON line may carry); anything else is None.

    Cameras send numbers as numbers or strings; a value beyond any counter or
    coordinate (found by fuzzing: ``123456789012345678901234567890``) is no value.
    """
    if is_none(value) or isinstance(value, bool):
        return None
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if len(text) <= 20:  # int() of a huge digit string is slow as well as useless
            try:
                number = int(text)
            except ValueError:
                return None
    return number if number is not None and _INT_MIN <= number <= _INT_MAX else None


_TIME_FORMATS = ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S", "%d-%m-%Y %H:%M:%S")


def parse_time(value: object) -> datetime | None:
    """A camera time: ``2023-09-15 06:19:57.267`` (camera local, kept naive), ISO 8601
    (``...Z`` -> UTC), or POSIX seconds/milliseconds (UTC)."""
    if type(value) is str and len(value) == 24 and value[23] == "Z" and value[10] == "T":
        # ONVIF's UtcTime with milliseconds ("2026-12-07T12:57:53.713Z"): every RTSP read
        # has one. What the checks below end in for it (a time in UTC, whose astimezone()
        # is itself), without them: 1.5 -> 0.4 us. A property test holds the two together.
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass  # not a time after all: the general path says what it is
    return _parse_time(value)


def _parse_time(value: object) -> datetime | None:
    if is_none(value) or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return from_posix(value)
    if not isinstance(value, str) or len(value) > 64:  # no spelling of a time is longer
        return None
    text = value.strip()
    if text.isdecimal():
        return from_posix(int(text))
    # Python 3.11's fromisoformat (C) reads both ISO 8601 ("...T06:19:34Z") and the
    # cameras' "2023-09-15 06:19:57.267"; strptime is only for other spellings.
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for fmt in _TIME_FORMATS:
            try:
                return datetime.strptime(text, fmt)  # camera local time, no zone given
            except ValueError:
                continue
        return None
    if parsed.tzinfo is None:
        return parsed
    try:
        # "0001-01-01T00:00:00+14:00" is a valid ISO 8601 time whose UTC is before year 1.
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def from_posix(value: float) -> datetime | None:
    """Seconds or milliseconds since the epoch (above 1e11 reads as milliseconds)."""
    try:
        seconds = value / 1000 if value > 1e11 else value
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    except (OverflowError, ValueError, TypeError):  # beyond datetime's range, or NaN
        return None


def parse_duration(value: object) -> float | None:
    """``"00:01:17"`` (H:MM:SS, the guide's "Length of Parking") -> seconds; a negative,
    non-finite or absurd value (more than 20 digits a part) is no duration."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except OverflowError:
            return None
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    if not isinstance(value, str) or len(value) > 64:
        return None
    parts = value.strip().split(":")
    if not parts or not all(p.strip().isdecimal() for p in parts):
        return None
    total = 0.0
    for part in parts:
        total = total * 60 + int(part)
    return total


# The guide's own examples are not valid JSON: `{"registerAll": 1,}` (trailing
# comma), `"result": "200"` followed by a key with no comma between, and
# typographic quotes. Firmware that copied them must still be understood.
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_MISSING_COMMA = re.compile(r'("|\d|true|false|null|[}\]])(\s*\n\s*)(")')
_SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‟": '"'})


# Camera JSON nests three levels at most (a parking post's data list). Deeper
# nesting is refused: code that walks a body recurses, and Python's recursion
# limit (1000) is below orjson's nesting limit (1024). Found by fuzzing.
MAX_DEPTH = 32


def check_depth(value: Any) -> Any:
    """``value`` when no container in it is nested deeper than MAX_DEPTH. Only containers
    are stacked (a camera's body is a flat object: its 20 values are looked at, not
    stacked and popped again). A parser's output holds plain dicts and lists only."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise PayloadError(f"JSON nested deeper than {MAX_DEPTH} levels")
        kind = type(item)
        if kind is not dict and kind is not list:
            continue
        for child in item.values() if kind is dict else item:
            inner = type(child)
            if inner is dict or inner is list:
                stack.append((child, depth + 1))
    return value


def _int_or_digits(text: str) -> int | str:
    """A JSON integer as int; one of more digits than Python converts (4,300 by default,
    its guard against quadratic conversion, which raised ValueError past the parser: a
    500 and the read lost) is kept as its digits, a text. The field it fills is then no
    number of its kind, a problem of that field; ``raw`` keeps the digits."""
    limit = sys.get_int_max_str_digits()
    return int(text) if not limit or len(text) - text.startswith("-") <= limit else text


def lenient_json(data: bytes | str) -> Any:
    """Parse JSON, repairing the guide's own mistakes if plain parsing fails.

    Raises :class:`PayloadError` when even the repaired text is not JSON, or when
    it nests deeper than :data:`MAX_DEPTH`.
    """
    try:
        # The common case, valid JSON: fast, straight from bytes.
        return check_depth(orjson.loads(data))
    except orjson.JSONDecodeError:
        pass  # not UTF-8, a BOM, the guide's mistakes, or too deep: the careful path below
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    except UnicodeDecodeError as exc:
        raise PayloadError(f"payload is not UTF-8 (byte {exc.start})", offset=exc.start) from exc
    if text[:1] == "\ufeff" or text[-1:] == "\x00":
        text = text.lstrip("\ufeff").rstrip("\x00")
    try:
        return check_depth(json.loads(text, parse_int=_int_or_digits))
    except RecursionError as exc:
        raise PayloadError(f"JSON nested deeper than {MAX_DEPTH} levels") from exc
    except json.JSONDecodeError as first:
        repaired = _MISSING_COMMA.sub(
            r"\1,\2\3", _TRAILING_COMMA.sub(r"\1", text.translate(_SMART_QUOTES))
        )
        try:
            return check_depth(json.loads(repaired, parse_int=_int_or_digits))
        except (json.JSONDecodeError, RecursionError):
            raise PayloadError(
                f"payload is not JSON: {first.msg} (line {first.lineno} column {first.colno})",
                offset=first.pos,
            ) from first


_DATA_URI = re.compile(r"^data:[\w/+.-]+;base64,", re.I)


def decode_base64_picture(value: str, *, limit: int) -> bytes:
    """Decode a picture sent as base64 (optionally a data: URI, line breaks allowed).

    Raises :class:`PayloadError` for text that is not base64 or a picture above ``limit``.
    """
    text = value.strip()
    if len(text) % 4 == 0 and len(text) * 3 // 4 <= limit:
        # Plain base64 (every camera's): decoded at once. What it refuses (line breaks,
        # a data: URI, missing padding, anything else) is looked at below, as ever: the
        # three scans for white space cost more than the decoding (py-spy, cold bodies).
        try:
            return pybase64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            pass
    if text.startswith(("data:", "DATA:")):
        text = _DATA_URI.sub("", text)
    # Line-wrapped base64 (MIME style) is allowed; most bodies have none, and
    # checking is far cheaper than rebuilding a 100 KB string.
    if "\n" in text or "\r" in text or " " in text:
        text = "".join(text.split())
    if len(text) * 3 // 4 > limit:
        raise PayloadError(
            f"picture of about {len(text) * 3 // 4} bytes is above the limit {limit}"
        )
    padded = text + "=" * (-len(text) % 4)  # some encoders drop the padding
    try:
        # SIMD decoding: a 100 KB picture in ~6 us instead of ~300 us (measured), which
        # was a third of the HTTP receiver's CPU. It is the stricter of the two: what it
        # refuses, the standard library decides (same acceptance and messages as ever).
        return pybase64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PayloadError(f"picture is not valid base64: {exc}") from exc
