"""Documents of a shape seen before, read without building a tree (issue 17).

A camera sends the same metadata document over and over with a few attribute values
changed: the time, the plate, the speed. Parsing each with lxml and walking the tree
was most of the RTSP path's cost (33 of the 100 microseconds of a plate document,
measured). This module learns a document's *shape* once and then reads the next
documents of that shape by splitting their bytes.

How a document is cut: ``doc.split(b'"')`` gives the text outside double quotes (the
even pieces: tags, attribute names, element text) and inside them (the odd pieces:
attribute values). The even pieces, joined, are the shape's key. Of the odd pieces,
the values of the *slot* attributes (``Value`` and ``UtcTime`` for ONVIF items) are
read from each document; every other attribute value (names, namespaces, topics' dialect)
must be byte for byte the one the shape was learned with. Documents of one structure with
other constants (another camera's item names) are shapes of their own, under one key.

Why a document read this way is exactly what the parser would have read:

* The shape is learned from a document the parser accepted, parsed again with a marker
  (``U+E000 n U+E001``) in place of each slot value. U+E000 is a legal character in
  element text and attribute values and nowhere else (it is no name character): the
  marked document parses only if every slot sits in text or in an attribute value. The
  caller maps each field of its result to the slot whose marker it is, or to a constant;
  a field with a marker inside other text makes the shape not learnable.
* A document matches a shape when its even pieces and its constant odd pieces are the
  shape's, and its slot values hold only characters that mean the same in text and in
  an attribute value, without entity, quote, markup or white-space normalisation: valid
  UTF-8, no ``< > & " '``, no control character below U+0020 (tab, line feed and
  carriage return are normalised in attribute values), no U+FFFE or U+FFFF (not XML
  characters). Such a value in place of a marker leaves the document well-formed, with
  the same elements and attributes, and is read as itself. Anything else goes through
  the parser, which has the last word (and the error).
* Shapes are learned only from documents without ``<!`` (no DOCTYPE, comment or CDATA
  section), without NUL bytes and in UTF-8 (no other encoding declared).

Bounded: only documents of up to ``max_bytes`` (16 KiB) are learned or looked up; at most
``max_shapes`` shapes are kept, and a document's shape is learned on its second sighting
(``max_seen`` shapes seen once are remembered); when either table is full it is
emptied, so a camera that never repeats a shape costs a split and a dictionary look-up
per document, and the memory of a few hundred short documents.

No I/O, no threads: the tables are plain dictionaries whose single operations are
atomic under the GIL; two threads learning one shape at once learn it twice, the same.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from typing import Final, Generic, TypeVar

__all__ = ["NotLearnable", "Shapes", "slot_of"]

P = TypeVar("P")

MARK_OPEN: Final = "\ue000"
MARK_CLOSE: Final = "\ue001"
_MARK = re.compile(f"{MARK_OPEN}([0-9]+){MARK_CLOSE}")
# Bytes a slot value must not hold (see the module's docstring); a double quote it cannot
# hold (the document is split at them), and it joins the values for one search.
_UNSAFE: Final = bytes(range(0x20)) + b"<>&'"
_ENCODING = re.compile(rb"""^\s*(?:\xef\xbb\xbf)?<\?xml[^>]*?encoding\s*=\s*["']([^"']*)["']""")


class NotLearnable(Exception):  # a signal inside this package, never raised out
    """A field of a marked document holds a marker inside other text."""


def slot_of(text: str) -> str | int:
    """A field of a marked document: the slot number when it is exactly one marker,
    the text itself when it holds none."""
    if MARK_OPEN not in text and MARK_CLOSE not in text:
        return text
    m = _MARK.fullmatch(text)
    if m is None:
        raise NotLearnable(text[:80])
    return int(m.group(1))


def _getter(indices: Sequence[int]) -> Callable[[list[bytes]], tuple[bytes, ...]]:
    """``pieces -> tuple(pieces[i] for i in indices)``, in C."""
    if not indices:
        return lambda _pieces: ()
    if len(indices) == 1:
        (i,) = indices
        return lambda pieces: (pieces[i],)
    return operator.itemgetter(*indices)


class _Shape(Generic[P]):
    """One learned shape: its number of pieces, its constant attribute values (and where
    they are), where its slot values are, and the caller's plan (None: not learnable)."""

    __slots__ = ("constants", "get_constants", "get_slots", "pieces", "plan")

    def __init__(
        self, pieces: int, where: list[int], constants: tuple[bytes, ...], slots: list[int], plan: P
    ):
        self.pieces = pieces
        self.get_constants = _getter(where)
        self.constants = constants
        self.get_slots = _getter(slots)
        self.plan = plan

    def fits(self, pieces: list[bytes]) -> bool:
        return len(pieces) == self.pieces and self.get_constants(pieces) == self.constants


class Shapes(Generic[P]):
    """Learned document shapes, each with the caller's plan (what to build from the slot
    values). ``hits`` counts documents read by their shape, ``learned`` shapes learned."""

    def __init__(
        self,
        slot_attributes: Sequence[str],
        *,
        max_shapes: int = 64,
        max_seen: int = 256,
        max_bytes: int = 16 * 1024,
    ) -> None:
        names = "|".join(re.escape(a) for a in slot_attributes)
        self._slot_before = re.compile(rf"\s(?:{names})\s*=\s*$".encode())
        self.max_shapes = max_shapes
        self.max_seen = max_seen
        # Documents longer than this are neither learned nor looked up: the tables hold
        # (max_shapes + max_seen) keys of at most this size (5 MiB by default) and, per
        # shape, its constants and plan (each smaller than its document): about 7 MiB in
        # all. A plate document is about 1 KiB.
        self.max_bytes = max_bytes
        # Key (the text outside quotes) -> the shapes with that text: documents of one
        # structure may differ in their constants (another camera's item names, another
        # PropertyOperation), and each such shape is learned on its own.
        self._shapes: dict[bytes, list[_Shape[P | None]]] = {}
        self._count = 0  # shapes in all the lists
        self._seen: dict[tuple[bytes, int, tuple[bytes, ...]], bool] = {}
        self.hits = 0
        self.learned = 0

    def __len__(self) -> int:
        return self._count

    def clear(self) -> None:
        """Forget every shape, and zero the counters."""
        self._shapes.clear()
        self._seen.clear()
        self._count = self.hits = self.learned = 0

    @staticmethod
    def _key(pieces: list[bytes]) -> bytes:
        # NUL joins the even pieces: a learned shape has none in them, and a match also
        # needs the same number of pieces, so two documents with one key have one shape.
        return b"\x00".join(pieces[::2])

    def match(self, doc: bytes) -> tuple[P, list[str]] | None:
        """The plan of ``doc``'s shape and its slot values, or ``None`` (not a learned
        shape, or a value the parser must read)."""
        if len(doc) > self.max_bytes:
            return None
        pieces = doc.split(b'"')
        for shape in self._shapes.get(self._key(pieces), ()):
            if shape.fits(pieces):
                break
        else:
            return None
        if shape.plan is None:
            return None  # a shape the parser reads
        values = shape.get_slots(pieces)
        joined = b'"'.join(values)
        if len(joined.translate(None, _UNSAFE)) != len(joined):  # 0.1 us; a regex 0.6
            return None
        try:
            text = joined.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if "\ufffe" in text or "\uffff" in text:
            return None
        self.hits += 1
        return shape.plan, text.split('"')

    def learn(self, doc: bytes, compile_plan: Callable[[bytes], P | None]) -> None:
        """``doc`` was parsed (and accepted) the slow way: on its shape's second sighting,
        learn it. ``compile_plan`` parses the marked document and returns the plan, or
        ``None`` (or raises :class:`NotLearnable`) when the shape cannot be read this way.
        """
        if len(doc) > self.max_bytes or b"<!" in doc or b"\x00" in doc:
            return
        declared = _ENCODING.match(doc)
        if declared is not None and declared.group(1).lower() not in (b"utf-8", b"utf8"):
            return
        pieces = doc.split(b'"')
        key = self._key(pieces)
        slots = [i for i in range(1, len(pieces), 2) if self._slot_before.search(pieces[i - 1])]
        chosen = set(slots)
        where = [i for i in range(1, len(pieces), 2) if i not in chosen]
        constants = tuple(pieces[i] for i in where)
        known = self._shapes.get(key, [])
        if any(s.fits(pieces) for s in known):
            return  # not learnable, or learned while this one was parsed
        # One call looks and takes (no look-then-delete that two threads could both pass).
        sighting = (key, len(pieces), constants)
        if not self._seen.pop(sighting, False):
            if len(self._seen) >= self.max_seen:
                self._seen.clear()
            self._seen[sighting] = True
            return
        marked = list(pieces)
        for n, i in enumerate(slots):
            marked[i] = f"{MARK_OPEN}{n}{MARK_CLOSE}".encode()
        try:
            plan = compile_plan(b'"'.join(marked))
        except NotLearnable:
            plan = None
        if self._count >= self.max_shapes:
            self._shapes.clear()
            self._count = 0
        # A plan of None is kept too: that shape is read by the parser from now on,
        # without trying again.
        self._shapes.setdefault(key, []).append(_Shape(len(pieces), where, constants, slots, plan))
        self._count += 1
        if plan is not None:
            self.learned += 1
