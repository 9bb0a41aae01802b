"""A camera's JSON body with its pictures taken out before the parse, not after.

Owns the cut: find a body's long strings by their quotes, decode the ones that hold a
picture straight from the body's bytes, parse what is left, put the rest back. Does not
know what any other field means.

A camera's POST is ~1 KB of fields and ~130 KB of base64 pictures. orjson made a
``str`` of each picture (every byte looked at for quotes, escapes and control
characters, then copied), and the picture was decoded from that ``str``: on the
receiver's loop, with the body just having pushed everything else out of the cache,
that parse was its largest single cost (py-spy, 2026-11-30). Here the strings are
found with a regular expression over the ~1 KB of fields and ``bytes.find`` (memchr)
over the pictures, each picture is decoded from the body's own bytes, and orjson parses
the ~1 KB left.

What comes back is what ``orjson.loads`` gives, except that a string of over
:data:`LONG` bytes at a picture key (``IMAGE_ROLES``) that is plain base64 is a
:class:`Base64Picture`: its bytes, decoded, and its text on demand. Everything
irregular answers ``None`` and the caller parses the body whole, as before: escapes in
a long string, text that is not plain base64 only where it must be read as text
(orjson's reading of that one string decides), a body of many long strings, a rest
of over :data:`MAX_REST` bytes, or a rest that orjson refuses.
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson
import pybase64

from ..vocabulary import IMAGE_ROLES, fold_key

__all__ = ["CUT_FROM", "LONG", "MAX_LONG", "MAX_REST", "Base64Picture", "parse_cutting_pictures"]

CUT_FROM: Final = 16 * 1024  # a smaller body is parsed whole: there is nothing to win
LONG: Final = 2048  # a string of more bytes than this between its quotes is cut out
MAX_LONG: Final = 64  # more long strings than this: parsed whole (the scan stays bounded)
MAX_REST: Final = 16 * 1024  # what is left parses on the loop in microseconds
_BACKSLASH: Final = 0x5C
_QUOTE: Final = 0x22
_BLANK: Final = b" \t\r\n"
_ODD: Final = 64  # escaped quotes in one string, backslashes in a row, blanks before ":"
_MARK: Final = b"\\u0000"  # what stands for a cut string in the rest: NUL, then its number
# Structure and short strings, possessively (no backtracking): it stops at the opening
# quote of a string with no quote in its first LONG bytes, having looked at those only
# (a bounded single-class repeat: sre's tight loop). A long string with an escaped quote
# early is taken for a short one: it stays in the rest, which orjson parses.
_UP_TO_LONG: Final = re.compile(rb'(?s)(?:[^"]++|"(?=[^"]{0,%d}+")(?:[^"\\]++|\\.)*+")*+' % LONG)


class Base64Picture:
    """A picture field's base64, decoded from the body's bytes; its text is made only
    when something asks for it (``str()``, or a camera whose field map says this key is
    not a picture after all)."""

    __slots__ = ("_body", "_end", "_start", "data")

    def __init__(self, data: bytes, body: bytes | bytearray, start: int, end: int) -> None:
        self.data = data
        self._body = body
        self._start = start
        self._end = end

    @property
    def chars(self) -> int:
        """Characters of base64 (what a picture's size limit is first checked on)."""
        return self._end - self._start

    def text(self) -> str:
        return self._body[self._start : self._end].decode("ascii")

    __str__ = text

    def __repr__(self) -> str:
        return f"<Base64Picture: {self.chars} characters, {len(self.data)} bytes>"


def parse_cutting_pictures(data: bytes | bytearray) -> tuple[Any] | None:
    """``(value,)`` as ``orjson.loads(data)`` would give it, with plain base64 at picture
    keys as :class:`Base64Picture`; ``None`` when the body is not of that kind or anything
    about it is irregular: then parse it whole."""
    if len(data) < CUT_FROM:
        return None
    cut = _cut(data)
    if cut is None:
        return None
    rest, spans = cut
    try:
        value = orjson.loads(rest)
    except orjson.JSONDecodeError:
        return None
    if type(value) is str:  # the whole body is one long string
        text = _text(data, *spans[0])
        return None if text is None else (text,)
    if not _put_back(value, data, spans):
        return None
    return (value,)


def _cut(data: bytes | bytearray) -> tuple[bytes, list[tuple[int, int]]] | None:
    """The body with every long string value replaced by ``"\\u0000<n>"``, and where each
    was (its bytes between the quotes); ``None`` when there is none, or the body is not
    what this is for."""
    n = len(data)
    parts: list[bytes | bytearray] = []
    spans: list[tuple[int, int]] = []
    kept = 0  # bytes of the rest's finished parts
    pos = 0  # where the part being kept starts
    at = 0
    longs = 0  # long strings found, keys too: each costs a round of this loop
    while True:
        # Everything up to the next long string, in C: structure, numbers, short strings;
        # never past where the rest would be too large (so no byte is looked at twice).
        stop = min(n, pos + MAX_REST - kept + 1)
        m = _UP_TO_LONG.match(data, at, stop)
        assert m is not None  # it matches the empty string
        at = m.end()
        if at >= n:
            break
        if at >= stop or data[at] != _QUOTE:
            return None  # the rest would be too large, or the body is not JSON here
        end = _closing_quote(data, at)
        if end < 0 or end - at <= LONG:
            return None  # no closing quote (or an odd one); or a short string across ``stop``
        longs += 1
        if longs > MAX_LONG:
            return None
        key = _is_key(data, end + 1)
        if key is None:
            return None
        if key:  # a long key stays in the rest (and counts against it)
            at = end + 1
            continue
        parts.append(data[pos:at])
        parts.append(b'"%b%d"' % (_MARK, len(spans)))
        kept += at - pos + 8
        spans.append((at + 1, end))
        pos = at = end + 1
    if not spans:
        return None
    parts.append(data[pos:])
    rest = b"".join(parts)
    # Only the marks may spell NUL: a body whose own strings do is parsed whole, so that
    # none of them is taken for a mark.
    if len(rest) > MAX_REST or rest.count(_MARK) != len(spans):
        return None
    return rest, spans


def _closing_quote(data: bytes | bytearray, at: int) -> int:
    """Where the string opened at ``at`` ends (memchr, then a look at backslashes), or -1,
    also for what no camera sends and would cost this loop a round per byte: more than
    :data:`_ODD` escaped quotes, or a run of more than ``_ODD`` backslashes."""
    find = data.find
    end = find(b'"', at + 1)
    escaped = 0
    while end > 0 and data[end - 1] == _BACKSLASH:  # escaped, unless the \ is escaped
        k = end - 1
        while data[k - 1] == _BACKSLASH:  # stops at the opening quote at the latest
            k -= 1
            if end - k > _ODD:
                return -1
        if (end - k) % 2 == 0:
            break
        escaped += 1
        if escaped > _ODD:
            return -1
        end = find(b'"', end + 1)
    return end


def _is_key(data: bytes | bytearray, at: int) -> bool | None:
    """Whether the string that ended before ``at`` is a key (a colon follows); None when
    more than ``_ODD`` blanks stand in the way (then the body is parsed whole)."""
    ahead = data[at : at + _ODD].lstrip(_BLANK)
    if not ahead and at + _ODD < len(data):
        return None
    return ahead[:1] == b":"


def _text(data: bytes | bytearray, a: int, e: int) -> str | None:
    """The string between the quotes at ``a - 1`` and ``e`` as orjson reads it (escapes,
    UTF-8, control characters: its rules, not ours), or None when it refuses it."""
    try:
        text = orjson.loads(data[a - 1 : e + 1])
    except orjson.JSONDecodeError:
        return None
    return text if type(text) is str else None


def _put_back(
    value: dict[str, Any] | list[Any], data: bytes | bytearray, spans: list[tuple[int, int]]
) -> bool:
    """Every mark in ``value`` replaced: by a :class:`Base64Picture` at a picture key when
    the string is plain base64, else by the string; False when one cannot be read.
    Iterative: nesting is bounded by orjson, not by Python's recursion limit."""
    view = memoryview(data)
    stack: list[dict[str, Any] | list[Any]] = [value]
    while stack:
        node = stack.pop()
        is_dict = type(node) is dict
        pairs = node.items() if is_dict else enumerate(node)  # type: ignore[union-attr]
        for k, v in pairs:
            kind = type(v)
            if kind is str:
                if v[:1] != "\x00":
                    continue
                a, e = spans[int(v[1:])]
                put: Any = None
                if is_dict and IMAGE_ROLES.get(fold_key(k)) is not None:
                    try:
                        put = Base64Picture(
                            pybase64.b64decode(view[a:e], validate=True), data, a, e
                        )
                    except (ValueError, TypeError):
                        put = None  # not plain base64: its text, as ever
                if put is None:
                    put = _text(data, a, e)
                    if put is None:
                        return False
                node[k] = put  # type: ignore[index]
            elif kind is dict or kind is list:
                stack.append(v)
    return True
