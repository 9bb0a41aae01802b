"""ONVIF metadata, sans-IO: RTP payload fragments -> whole XML documents -> events.

Source: the vendor guide, section "3. RTSP Type": the camera's ONVIF metadata
track carries ``tt:MetaDataStream`` documents whose notifications on topic
``tns1:RuleEngine/LicensePlateDetector/LicensePlate`` hold the plate
(``LicensePlateResult``), the picture path, speed and direction.

Owns three things, none of which does I/O:

* :class:`DocumentAssembler`: PyAV hands over one packet per RTP packet, with
  no marker bit; the pieces of one document share a pts. A document is whole
  when its root element is closed (``</tt:MetadataStream>`` under whatever
  prefix); a new pts or a new document start while one is still open means
  the open one was cut short: it is discarded and counted, never parsed.
* :func:`parse_document`: safe XML parsing with lxml. A DOCTYPE is refused
  outright (ONVIF metadata never has one, and refusing it makes entity
  expansion and external entities impossible, not merely switched off); the
  parser itself also has entity resolution, DTD loading and network access
  off, and the document size is bounded before parsing.
* :func:`document_events`: notifications -> :class:`~lprmeta.events.Event`.
  LicensePlateDetector topics become ``kind: plate``; every other topic
  becomes ``kind: event`` with topic and items; ``tt:VideoAnalytics`` frames
  are counted, not emitted.

Readings chosen where the guide is ambiguous:

* The guide's example declares no namespaces (``<tt:MetaDataStream>`` with no
  ``xmlns:tt``), which is not namespace-well-formed XML. Elements are matched
  by local name only, so a document with undeclared prefixes is re-parsed
  with those prefixes declared (``urn:lprmeta:undeclared:<prefix>``); the
  fixture ``guide_example.xml`` is the guide's text as printed.
* The guide spells the root ``MetaDataStream``; the ONVIF schema spells it
  ``MetadataStream``. Both are accepted, in any letter case.
* ``LicensePlatePicturePath`` is "the license plate snapshot path" and the
  picture is "the recognized license plate image", so its role is ``plate``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from lxml import etree

from ..envelope import Read
from ..errors import DocumentError, PacketTooLarge
from ..events import Kind, Source, fast_frozen_init
from ..vocabulary import PICTURE_PATH_KEYS, fold_key
from .jsonpost import (
    MAX_RAW_BYTES,
    MAX_RAW_TEXT,
    KeyIndex,
    index_of_keys,
    normalize_json,
    text_items_weight,
    weighed_raw,
)
from .scene import SceneParse, has_scene_plates, scene_objects
from .shapes import Shapes, slot_of

__all__ = [
    "DocumentAssembler",
    "Notification",
    "ParsedDocument",
    "document_events",
    "has_notifications",
    "notification_event",
    "parse_document",
]

DEFAULT_MAX_DOCUMENT: Final = 1024 * 1024
# Work one document may cause (the README's limits table): a camera sends one or two
# notifications a document and a dozen items each; past these, the rest is counted.
MAX_NOTIFICATIONS: Final = 64
MAX_ITEMS: Final = 256
_WS: Final = b" \t\r\n\x00"
_ROOT_NAMES: Final = frozenset({"metadatastream"})


# ----------------------------------------------------------------------------- assembly


_START_TAG = re.compile(rb"<([A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?)")


def _root_name(buf: bytes | bytearray) -> tuple[bytes | None, bool]:
    """The qualified name of the first element in ``buf`` and whether it is self-closed.

    Skips the XML declaration, comments and processing instructions. ``None``
    while the start tag has not fully arrived.
    """
    pos = 0
    while True:
        lt = buf.find(b"<", pos)
        if lt < 0 or lt + 1 >= len(buf):
            return None, False
        nxt = buf[lt + 1 : lt + 2]
        if nxt in (b"?", b"!"):
            end = buf.find(b"-->" if buf[lt : lt + 4] == b"<!--" else b">", lt)
            if end < 0:
                return None, False
            pos = end + 1
            continue
        m = _START_TAG.match(buf, lt)
        if m is None:
            return None, False
        gt = buf.find(b">", m.end())
        if gt < 0:
            return None, False
        return m.group(1), buf[gt - 1 : gt] == b"/"


def _is_document_start(fragment: bytes) -> bool:
    """Does this fragment begin a new document (XML declaration or a root start tag)?"""
    head = fragment.lstrip(_WS)[:128]
    if head.startswith(b"<?xml"):
        return True
    m = _START_TAG.match(head)
    return m is not None and m.group(1).rpartition(b":")[2].lower() == b"metadatastream"


def _in_prolog(buf: bytes | bytearray) -> bool:
    """Only the XML declaration, comments or whitespace so far: no element has begun."""
    pos = 0
    while True:
        lt = buf.find(b"<", pos)
        if lt < 0:
            return not bytes(buf[pos:]).strip(_WS)
        if bytes(buf[pos:lt]).strip(_WS):
            return False
        if buf[lt + 1 : lt + 2] not in (b"?", b"!", b""):
            return False
        end = buf.find(b"-->" if buf[lt : lt + 4] == b"<!--" else b">", lt)
        if end < 0:
            return True  # a declaration or comment still arriving
        pos = end + 1


def _is_complete(buf: bytes | bytearray) -> bool:
    name, self_closed = _root_name(buf)
    if name is None:
        return False
    if self_closed:
        return True
    tail = bytes(buf[-(len(name) + 80) :]).rstrip(_WS)
    if not tail.endswith(b">"):
        return False
    close = tail.rfind(b"</")
    return close >= 0 and tail[close + 2 : -1].strip() == name


@dataclass
class DocumentAssembler:
    """Reassembles whole documents from RTP payload fragments (PyAV packets).

    ``feed`` returns the documents completed by a fragment (usually zero or
    one). Counters: ``documents`` completed, ``partial`` discarded because the
    next document began before this one closed (or :meth:`flush` found one
    open), ``oversize`` discarded for exceeding ``max_size``.
    """

    max_size: int = DEFAULT_MAX_DOCUMENT
    documents: int = 0
    partial: int = 0
    oversize: int = 0
    _buf: bytearray = field(default_factory=bytearray)
    _pts: int | None = None
    _skipping: bool = False  # dropping the rest of an oversize document

    def feed(self, fragment: bytes, pts: int | None = None) -> list[bytes]:
        if not fragment or (not self._buf and not fragment.strip(_WS)):
            return []  # keep-alive or priming packets, whitespace between documents
        out: list[bytes] = []
        new_pts = pts is not None and self._pts is not None and pts != self._pts
        starts = (self._buf or self._skipping) and _is_document_start(fragment)
        if (
            starts
            and self._buf
            and _in_prolog(self._buf)
            and not fragment.lstrip(_WS).startswith(b"<?xml")
        ):
            starts = False  # the root tag after a declaration sent on its own
        if new_pts or starts:
            if self._buf:
                self.partial += 1
            self._buf.clear()
            self._skipping = False
        self._pts = pts
        if self._skipping:
            return out
        if not self._buf and _is_complete(fragment) and len(fragment) <= self.max_size:
            self.documents += 1  # the common case: one packet, one document, no copy
            out.append(fragment)
            return out
        self._buf += fragment
        if len(self._buf) > self.max_size:
            self.oversize += 1
            self._buf.clear()
            self._skipping = True
            return out
        if _is_complete(self._buf):
            self.documents += 1
            out.append(bytes(self._buf))
            self._buf.clear()
        return out

    def flush(self) -> int:
        """End of stream: discard an open document; returns its size (0 if none)."""
        size = len(self._buf)
        if size:
            self.partial += 1
        self._buf.clear()
        self._skipping = False
        self._pts = None
        return size

    @property
    def pending(self) -> int:
        return len(self._buf)


# ----------------------------------------------------------------------------- parsing


def has_notifications(doc: bytes) -> bool:
    """Cheap pre-filter: can this document hold an event notification at all?

    Scene descriptions (``tt:VideoAnalytics``) often come with every video
    frame; this lets them be counted without building a tree.
    """
    return b"NotificationMessage" in doc


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Notification:
    topic: str
    utc_time: str | None
    operation: str | None
    source: dict[str, str]
    key: dict[str, str]
    data: dict[str, str]
    items_skipped: bool = False  # more than MAX_ITEMS items: the rest was not read
    # What the items' names say (``_names(self.items)``), when the notification was read by
    # a learned shape whose names are fixed: worked out once per shape, not per document.
    names: _Names | None = field(default=None, compare=False, repr=False)
    # ``_notification_weight(self)`` when a learned shape worked it out (its names' and
    # constants' part once per shape, the values' lengths per document); -1: not known.
    weight: int = field(default=-1, compare=False, repr=False)

    @property
    def items(self) -> dict[str, str]:
        return {**self.source, **self.key, **self.data}

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "utc_time": self.utc_time,
            "operation": self.operation,
            "source": self.source,
            "key": self.key,
            "data": self.data,
        }


_NO_SCENE: Final = SceneParse()


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    notifications: tuple[Notification, ...]
    analytics_frames: int = 0
    skipped_notifications: int = 0  # past MAX_NOTIFICATIONS, not read
    # Plates in the scene description's objects (Profile M), and objects that left.
    scene: SceneParse = _NO_SCENE


def _make_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


# Idle feed parsers. One must not be fed by two threads at once: a parse takes one
# (list.pop and list.append are atomic) and gives it back, so threads never share one
# and this layer needs no lock (it does no I/O and imports no threading).
_IDLE_PARSERS: list[etree.XMLParser] = []


def _xml(doc: bytes) -> Any:
    """``doc`` parsed, holding the GIL throughout. ``etree.fromstring`` lets the GIL go
    around libxml2's parse, and the daemon's RTSP session threads are waiting for it: the
    loop then waits to get it back. Measured here: 10 us for a plate document alone, 95
    us beside one busy thread; in the 200-stream run fromstring was 19% of the loop's
    time holding the GIL. A feed parser does not let go (16 us, 14 alone), and a document
    is bounded (max_document), so holding the GIL for its parse is short."""
    try:
        parser = _IDLE_PARSERS.pop()
    except IndexError:
        parser = _make_parser()
    try:
        parser.feed(doc)
        root = parser.close()
    except etree.XMLSyntaxError:
        with contextlib.suppress(etree.XMLSyntaxError):
            parser.close()  # a feed cut short: this resets it for the next document
        raise
    finally:
        _IDLE_PARSERS.append(parser)
    return root


_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.I)
_PREFIX = re.compile(rb"</?([A-Za-z_][\w.\-]*):[A-Za-z_]")
_XMLNS = re.compile(rb"xmlns:([A-Za-z_][\w.\-]*)\s*=")


def _local(tag: object) -> str:
    if not isinstance(tag, str):
        return ""  # comments, PIs (removed anyway), entities
    return tag.rpartition("}")[2]


def _declare_prefixes(doc: bytes) -> bytes | None:
    """The guide's example, made namespace-well-formed: declare every undeclared prefix
    on the root element. ``None`` when there is nothing to declare."""
    used = set(_PREFIX.findall(doc)) - set(_XMLNS.findall(doc)) - {b"xml", b"xmlns"}
    if not used:
        return None
    decl = b"".join(b' xmlns:%s="urn:lprmeta:undeclared:%s"' % (p, p) for p in sorted(used))
    name, _ = _root_name(doc)
    if name is None:
        return None
    at = doc.find(b"<" + name) + 1 + len(name)
    return doc[:at] + decl + doc[at:]


def parse_document(doc: bytes, *, max_size: int = DEFAULT_MAX_DOCUMENT) -> ParsedDocument:
    """Parse one whole metadata document. Raises :class:`DocumentError` for anything
    that is not a safe, well-formed ``MetadataStream`` (and :class:`PacketTooLarge`
    above ``max_size``).

    A document of a shape seen before (a camera's plate notifications: the same bytes but
    for the items' values and the time) is read by its shape, without a tree: about 8 us
    against 33-39 (see :mod:`.shapes` for why that reads exactly what lxml would)."""
    if len(doc) > max_size:
        raise PacketTooLarge(
            f"metadata document of {len(doc)} bytes is above the limit {max_size}",
            size=len(doc),
            limit=max_size,
        )
    doc = doc.rstrip(_WS)  # trailing padding some payloaders add
    hit = SHAPES.match(doc)
    if hit is not None:
        plan, values = hit
        return ParsedDocument(tuple([n.build(values) for n in plan.notes]), 0, plan.skipped)
    parsed, direct = _parse_tree(doc)
    if direct and not parsed.analytics_frames:
        SHAPES.learn(doc, _learn)
    return parsed


def _parse_tree(doc: bytes) -> tuple[ParsedDocument, bool]:
    """The document parsed by lxml, and whether it parsed as sent (not re-parsed with
    undeclared prefixes declared)."""
    direct = True
    if b"<!" in doc and _DOCTYPE.search(doc):  # the byte search settles nearly every document
        raise DocumentError("document has a DOCTYPE or ENTITY declaration; refused unparsed")
    try:
        root = _xml(doc)
    except etree.XMLSyntaxError as exc:
        fixed = _declare_prefixes(doc) if "prefix" in str(exc) else None
        if fixed is None:
            raise DocumentError(f"metadata document is not well-formed XML: {exc}") from exc
        direct = False
        try:
            root = _xml(fixed)
        except etree.XMLSyntaxError as exc2:
            raise DocumentError(f"metadata document is not well-formed XML: {exc2}") from exc2
    if _local(root.tag).lower() not in _ROOT_NAMES:
        raise DocumentError(f"root element {_local(root.tag)!r} is not tt:MetadataStream")
    # "{*}" matches any namespace (or none). iter()/iterchildren() filter in C; the
    # path forms (find, iterfind) would go through lxml's Python ElementPath.
    found = root.iter("{*}NotificationMessage")
    notifications = tuple([_notification(nm) for nm in itertools.islice(found, MAX_NOTIFICATIONS)])
    skipped = sum(1 for _ in found) if len(notifications) == MAX_NOTIFICATIONS else 0
    # A document in an ASCII-compatible encoding (every camera's: UTF-8) without the
    # bytes "VideoAnalytics" has no such element: the filtered walk (1 us) is not needed.
    if b"VideoAnalytics" not in doc and b"\x00" not in doc[:4]:
        return ParsedDocument(notifications, 0, skipped, _NO_SCENE), direct
    frames = sum(
        sum(1 for _ in va.iterchildren("{*}Frame")) or 1
        for va in root.iterchildren("{*}VideoAnalytics")
    )
    scene = scene_objects(root) if frames and has_scene_plates(doc, deletes=True) else _NO_SCENE
    return ParsedDocument(notifications, frames, skipped, scene), direct


# A field of a learned notification: its text (the same in every document of the shape),
# the number of the slot whose value it is, or None.
_Field = str | int | None


def _pick(field: _Field, values: list[str]) -> str | None:
    return values[field] if isinstance(field, int) else field


@dataclass(frozen=True, slots=True)
class _NotePlan:
    """One notification of a learned shape: where each of its fields comes from."""

    topic: str
    utc_time: _Field
    operation: _Field
    parts: tuple[tuple[tuple[str, str | int], ...], ...]  # source, key, data: (name, value)
    items_skipped: bool
    names: _Names  # _names() of the items' names, in the order Notification.items has them
    # The notification's _notification_weight but for its slots' values (-1 when a name or
    # constant is past a limit: then it is not worked out here), and those slots.
    weight: int
    sized: tuple[int, ...]

    def build(self, values: list[str]) -> Notification:
        source, key, data = (
            {name: v if isinstance(v, str) else values[v] for name, v in part}
            for part in self.parts
        )
        weight = self.weight
        if weight >= 0:
            lengths = sum(map(len, map(values.__getitem__, self.sized)))
            weight += lengths
            # As _notification_weight: a value past its limit, or the whole past the byte
            # budget, and it is not this sum's to say (-1: worked out, as ever, when used).
            if weight > MAX_RAW_BYTES or (
                lengths > MAX_RAW_TEXT
                and max(map(len, map(values.__getitem__, self.sized))) > MAX_RAW_TEXT
            ):
                weight = -1
        return Notification(
            self.topic,
            _pick(self.utc_time, values),
            _pick(self.operation, values),
            source,
            key,
            data,
            self.items_skipped,
            self.names,
            weight,
        )


@dataclass(frozen=True, slots=True)
class _DocPlan:
    notes: tuple[_NotePlan, ...]
    skipped: int


def _learn(marked: bytes) -> _DocPlan | None:
    """The plan of a document's shape, from the document with markers for its values."""
    try:
        parsed, direct = _parse_tree(marked)
    except DocumentError:
        return None
    if not direct or parsed.analytics_frames:
        return None
    notes = []
    for n in parsed.notifications:
        parts = []
        for items in (n.source, n.key, n.data):
            if any(type(slot_of(name)) is int for name in items):
                return None  # a name is never a value
            parts.append(tuple((name, slot_of(value)) for name, value in items.items()))
        if slot_of(n.topic) != n.topic:
            return None  # the topic is element text: never a value
        source, key, data = parts
        utc_time = None if n.utc_time is None else slot_of(n.utc_time)
        operation = None if n.operation is None else slot_of(n.operation)
        notes.append(
            _NotePlan(
                n.topic,
                utc_time,
                operation,
                (source, key, data),
                n.items_skipped,
                _read_names(n.items),  # the names of n.items: the marked values are not read
                *_plan_weight(n.topic, utc_time, operation, (source, key, data)),
            )
        )
    return _DocPlan(tuple(notes), parsed.skipped_notifications)


# Documents' shapes: a notification's items' values and its time are what changes from
# one document of a camera to the next.
SHAPES: Final = Shapes[_DocPlan](("Value", "UtcTime"))


def _child(el: Any, tag: str) -> Any | None:
    return next(el.iterchildren(tag), None)


_MAX_LEAVES = 64  # values read from one ElementItem
# Elements looked at in all the ElementItems of one notification: 40,000 leaves of one
# name (only one key) used to be walked whole, 116 ms of the loop for one document.
_MAX_ELEMENT_VISITS = 4096


def _element_item(name: str, item: Any, budget: list[int]) -> dict[str, str]:
    """A structured item, flattened: each leaf element's text as ``Name.Leaf`` and each of
    its attributes as ``Name.Leaf@Attr``, for the vocabulary to map. Profile M's
    ``<tt:ElementItem Name="LicensePlateInfo"><tt:LicensePlateInfo><tt:PlateNumber
    Likelihood="0.9">AB12</tt:PlateNumber>...`` (metadatastream.xsd, LicensePlateInfo:
    PlateNumber, PlateType, CountryCode, IssuingEntity, each a StringLikelihood) gives
    ``LicensePlateInfo.PlateNumber = AB12`` and ``LicensePlateInfo.PlateNumber@Likelihood
    = 0.9``. The item's own wrapper element is not repeated in the names."""
    out: dict[str, str] = {}
    root = next(item.iterchildren("{*}*"), None)
    for leaf in itertools.islice(item.iter("{*}*"), 1, None):
        budget[0] -= 1
        if len(out) >= _MAX_LEAVES or budget[0] < 0:
            break
        if next(leaf.iterchildren("{*}*"), None) is not None:
            continue  # not a leaf
        path = _local(leaf.tag) if leaf.getparent() is root else _path(leaf, item)
        key = f"{name}.{path}" if leaf is not root else name
        text = (leaf.text or "").strip()
        if text:
            out.setdefault(key, text)  # a repeated leaf: its first value
        for attr, value in leaf.attrib.items():
            out.setdefault(f"{key}@{_local(attr)}", value)
    return out


def _path(leaf: Any, item: Any) -> str:
    """Local names from below the item's wrapper element down to ``leaf``."""
    names: list[str] = []
    el = leaf
    while el is not None and el.getparent() is not item:
        names.append(_local(el.tag))
        el = el.getparent()
    return ".".join(reversed(names))


def _notification(nm: Any) -> Notification:
    """One NotificationMessage: its topic, its tt:Message's attributes, and the items of
    the message's Source, Key and Data (the items that are their children; at most
    MAX_ITEMS of them), each part's element visited once."""
    source: dict[str, str] = {}
    key: dict[str, str] = {}
    data: dict[str, str] = {}
    buckets = {"Source": source, "Key": key, "Data": data}
    message: Any | None = None
    budget = [_MAX_ELEMENT_VISITS]
    left = MAX_ITEMS
    over = False
    # One proxy per part and per item: an item's getparent() would make its part's
    # proxy again for every item (most of this function's time, measured). A tag is
    # compared by its end: "{ns}SimpleItem" (or a prefix-less "SimpleItem") is the only
    # local name ending so; a longer local name ending in it ("MySimpleItem") is checked
    # whole, as before (17 -> 12 us for the guide's notification, measured).
    for part in nm.iter("{*}Source", "{*}Key", "{*}Data"):
        tag = part.tag
        bucket = buckets[tag[tag.rfind("}") + 1 :]]
        for item in part:  # every child; unfiltered iteration costs half a filtered one
            tag = item.tag
            if type(tag) is not str:
                continue  # a comment
            if tag.endswith("SimpleItem"):
                if len(tag) != 10 and tag[-11] != "}":
                    continue  # "MySimpleItem": not an item
                simple = True
            elif tag.endswith("ElementItem"):
                if len(tag) != 11 and tag[-12] != "}":
                    continue
                simple = False
            else:
                continue
            if left <= 0:
                over = True
                break
            left -= 1
            name = item.get("Name")
            if not name:
                continue  # nameless
            message = part
            if simple:
                bucket[name] = item.get("Value", "")
            else:
                bucket.update(_element_item(name, item, budget))
        if over:
            break
    if message is not None:
        message = message.getparent()
    if message is None:  # no items: find tt:Message (wrapped in wsnt:Message) directly
        outer = _child(nm, "{*}Message")
        message = _child(outer, "{*}Message") if outer is not None else None
        message = outer if message is None else message
    topic = _child(nm, "{*}Topic")
    if message is not None:
        utc_time = message.get("UtcTime")
        operation = message.get("PropertyOperation")
    else:
        utc_time = operation = None
    return Notification(
        (topic.text or "").strip() if topic is not None else "",
        utc_time,
        operation,
        source,
        key,
        data,
        over or budget[0] < 0,
    )


# ----------------------------------------------------------------------------- events


def _topic_path(topic: str) -> list[str]:
    """``tns1:RuleEngine/LicensePlateDetector/LicensePlate`` -> its segments, prefixes off."""
    return [seg.rpartition(":")[2] for seg in topic.strip().split("/") if seg]


def is_plate_topic(topic: str) -> bool:
    return _topic_kind(topic)[0]


_CACHED_TOPIC: Final = 256  # characters; the cache holds 1,024 topics of this at most


def _topic_kind(topic: str) -> tuple[bool, bool]:
    """(a plate topic, an Axis LPR topic): a camera uses a handful of topics, so each
    is read once (cached), not per notification. A topic longer than any real one is
    read whole but not kept: a camera cannot fill the cache with megabyte topics."""
    if len(topic) <= _CACHED_TOPIC:
        return _cached_topic_kind(topic)
    return _read_topic_kind(topic)


@functools.lru_cache(maxsize=1024)
def _cached_topic_kind(topic: str) -> tuple[bool, bool]:
    return _read_topic_kind(topic)


def _read_topic_kind(topic: str) -> tuple[bool, bool]:
    path = [s.casefold() for s in _topic_path(topic)]
    axis = _is_axis_lpr(path)
    plate = "licenseplatedetector" in path or (bool(path) and path[-1] == "licenseplate")
    return plate or axis, axis


def _is_axis_lpr(path: list[str]) -> bool:
    """Axis License Plate Verifier (``tnsaxis:CameraApplicationPlatform/ALPV.AllPlates``,
    ``ALPV.Allowed``, ...) and its older ``CameraApplicationPlatform/LPR`` topic."""
    return (
        len(path) >= 2
        and path[-2] == "cameraapplicationplatform"
        and (path[-1].startswith("alpv") or path[-1] == "lpr")
    )


# Axis LPR items (VAPIX "License plate verifier API", real time events: text, country,
# listName, carMoveDirection, carState, carID, ...) -> the vocabulary's names. Only for
# Axis's topics: "text" is no plate in anybody else's event.
_AXIS_FIELDS: Final = {
    "text": "plate",
    "listname": "list",
    "carmovedirection": "direction",
}


def picture_paths(items: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """(role, path) of every picture a notification points at."""
    return _picture_paths(items, _names(items))


def _picture_paths(items: dict[str, str], names: _Names) -> tuple[tuple[str, str], ...]:
    out: list[tuple[str, str]] = []
    for name, base in names.paths:
        value = items[name].strip()
        if value:
            role = f"{base}{len(out)}" if any(r == base for r, _ in out) else base
            out.append((role, value))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _Names:
    """What a notification's item names say, whatever their values (a camera sends the
    same names every time: worked out once per set of names, not per notification)."""

    times: frozenset[str]  # names that fold to "time": the message's UtcTime wins
    paths: tuple[tuple[str, str], ...]  # (name, role) of the picture paths, in order
    car_state: str | None  # Axis's carState
    rules: tuple[str, ...]  # names that fold to "rule" (the Source's first is the rule)
    # normalize_json's index of the body notification_event makes of such items (not
    # Axis's: it renames them): the names but the times, then "time". Out of equality:
    # an index has none of its own (it is a function of the names, as the rest is).
    body_index: KeyIndex = field(compare=False)


# Sets of names of up to this many names and characters are remembered (512 sets at most).
_CACHED_NAMES: Final = 64
_CACHED_NAME_CHARS: Final = 4096


def _cacheable(items: dict[str, str]) -> bool:
    return len(items) <= _CACHED_NAMES and sum(map(len, items)) <= _CACHED_NAME_CHARS


def _names(items: dict[str, str]) -> _Names:
    return _cached_names(tuple(items)) if _cacheable(items) else _read_names(items)


@functools.lru_cache(maxsize=512)
def _cached_names(names: tuple[str, ...]) -> _Names:
    return _read_names(names)


def _read_names(names: Iterable[str]) -> _Names:
    folded = [(name, fold_key(name)) for name in names]
    return _Names(
        frozenset(name for name, f in folded if f == "time"),
        tuple(
            (name, "full" if "full" in f or "scene" in f else "plate")
            for name, f in folded
            if f.endswith(PICTURE_PATH_KEYS)
        ),
        next((name for name, f in folded if f == "carstate"), None),
        tuple(name for name, f in folded if f == "rule"),
        index_of_keys((*(name for name, f in folded if f != "time"), "time")),
    )


def _plan_weight(
    topic: str,
    utc_time: _Field,
    operation: _Field,
    parts: tuple[tuple[tuple[str, str | int], ...], ...],
) -> tuple[int, tuple[int, ...]]:
    """A learned notification's :func:`_notification_weight` but for its slots' values,
    and those slots; (-1, ()) when a name, the topic or a constant is past its limit.
    Worked out by that function itself, over the notification with every slot empty: a
    slot's value then adds its length alone (``_NotePlan.build`` checks it per document
    against the text limit and the whole against the byte budget)."""

    def blank(field: _Field) -> str | None:
        return "" if isinstance(field, int) else field

    source, key, data = (
        {name: "" if isinstance(v, int) else v for name, v in part} for part in parts
    )
    weight = _notification_weight(
        Notification(topic, blank(utc_time), blank(operation), source, key, data)
    )
    if weight is None:
        return -1, ()
    fields = (utc_time, operation, *(v for part in parts for _, v in part))
    return weight, tuple(f for f in fields if isinstance(f, int))


def _notification_weight(n: Notification) -> int | None:
    """``weighed_raw(n.to_json())``'s weight when it would keep the raw whole, else
    ``None``: the same sums, over the three flat dictionaries at C speed."""
    # A text: len(name) + len(text) + 16; None: len(name) + 8 and 16 for the value;
    # a dictionary: len(name) + 8 and its items (text_items_weight).
    topic, utc_time, operation = n.topic, n.utc_time, n.operation
    source = text_items_weight(n.source)
    key = text_items_weight(n.key)
    data = text_items_weight(n.data)
    if source is None or key is None or data is None:
        return None
    weight = (5 + 16 + len(topic)) + (6 + 8 + source) + (3 + 8 + key) + (4 + 8 + data)
    weight += 8 + 8 + 16 if utc_time is None else 8 + 16 + len(utc_time)
    weight += 9 + 8 + 16 if operation is None else 9 + 16 + len(operation)
    if len(topic) > MAX_RAW_TEXT or weight > MAX_RAW_BYTES:
        return None
    if (utc_time is not None and len(utc_time) > MAX_RAW_TEXT) or (
        operation is not None and len(operation) > MAX_RAW_TEXT
    ):
        return None
    return weight


_INLINE_PICTURE = ("/9j/", "iVBORw0KGgo")  # base64 of the JPEG and PNG signatures


def _inline_pictures(items: dict[str, str]) -> dict[str, str]:
    """Items that carry a picture inline (base64; Axis's plate picture, a vendor's
    snapshot): canonical picture field -> item name, for the normaliser's field map."""
    out: dict[str, str] = {}
    if not items or max(map(len, items.values())) < 64:
        return out  # no value long enough for a picture (a plate read's): one pass in C
    free = ["evidence_image0", "evidence_image1"]
    for name, value in items.items():
        if len(value) < 64 or not value.lstrip().startswith(_INLINE_PICTURE):
            continue
        want = "plate_image" if "plate" in fold_key(name) else "full_image"
        if want in out:
            if not free:
                continue
            want = free.pop(0)
        out[want] = name
    return out


def _scrubbed(raw: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """``raw`` with the inline pictures replaced by a note: pictures are saved as files and
    referenced in ``images``; a JSON line never carries base64."""
    if not names:
        return raw
    out = dict(raw)
    for part in ("source", "key", "data"):
        items = raw.get(part)
        if isinstance(items, dict) and names & items.keys():
            out[part] = {
                k: (f"<picture: {len(v)} characters of base64, see images>" if k in names else v)
                for k, v in items.items()
            }
    return out


def notification_event(
    n: Notification, *, camera: str, received: datetime, source: Source = Source.RTSP
) -> Read:
    """One notification -> a read. Plate topics (Milesight's LicensePlateDetector, ONVIF
    Profile M's Recognition/LicensePlate) are ``kind: plate``; any other topic is a
    generic ``kind: event`` read by the same normaliser (the fields the vocabulary knows
    are read, inline pictures saved), with ``raw`` holding the notification as sent."""
    items = n.items
    names = _names(items) if n.names is None else n.names
    inline = _inline_pictures(items)
    if inline:
        weight = None
    elif n.weight >= 0:  # worked out by the document's learned shape
        weight = n.weight
    else:
        weight = _notification_weight(n)
    if weight is None:
        raw, dropped, weight = weighed_raw(_scrubbed(n.to_json(), set(inline.values())))
    else:  # what weighed_raw would give, without its walk (3 of the path's 50 us)
        raw, dropped = n.to_json(), None
    problems = [dropped] if dropped else []
    if n.items_skipped:
        problems.append(
            f"more than {MAX_ITEMS} items or {_MAX_ELEMENT_VISITS} elements in them; "
            "the rest was not read"
        )
    plate, axis = _topic_kind(n.topic)
    body: dict[str, Any] = dict(items)
    for name in names.times:
        del body[name]
    body["time"] = n.utc_time
    if axis:
        body = {_AXIS_FIELDS.get(fold_key(k), k): v for k, v in body.items()}
        # Axis says NEW at the first read, UPDATE when plate or direction changes, and LOST
        # 10 s after the car was last seen. Reading chosen: NEW and UPDATE are reads (the
        # bus merges an UPDATE of the same plate into its NEW); LOST is the car leaving,
        # an event, not another read of it.
        state = items[names.car_state] if names.car_state is not None else ""
        if state.strip().casefold() == "lost":
            plate = False
    details: dict[str, Any] = {"topic": n.topic[:1024]}
    if problems:
        details["problems"] = problems
    if n.operation:
        details["operation"] = n.operation
    # items are the Source's, then the Key's and Data's: the first "rule" of the Source
    # is the first of the names' that the Source has.
    for name in names.rules:
        if name in n.source:
            if n.source[name]:
                details["rule"] = n.source[name]
            break
    return normalize_json(
        body,
        camera=camera,
        source=source,
        received=received,
        kind=Kind.PLATE if plate else Kind.EVENT,
        fields=inline,
        raw=raw,
        details=details,
        picture_paths=_picture_paths(items, names) if plate else (),
        weight=weight,
        index=None if axis else names.body_index,
    )


def document_events(
    doc: bytes,
    *,
    camera: str,
    received: datetime,
    max_size: int = DEFAULT_MAX_DOCUMENT,
    source: Source = Source.RTSP,
) -> tuple[list[Read], ParsedDocument]:
    """Every read a whole document carries (possibly none: a scene description)."""
    parsed = parse_document(doc, max_size=max_size)
    events = [
        notification_event(n, camera=camera, received=received, source=source)
        for n in parsed.notifications
    ]
    return events, parsed


def iter_fragments(doc: bytes, mtu: int) -> Iterable[bytes]:
    """A document cut into RTP-sized payloads (what a camera's payloader does)."""
    for i in range(0, len(doc), mtu):
        yield doc[i : i + mtu]
