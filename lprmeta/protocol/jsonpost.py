"""Camera JSON -> Event, for every JSON the camera sends over TCP (0x8802-0x8806) and HTTP.

One table-driven normalizer serves both transports and both field-naming eras
of the guide ("2. HTTP Type", notes 1-3): ``abc_def`` before firmware
45.8.0.3-LPR_XX-r1, ``Abc Def`` after, in any letter case. Field names are
folded (case, spaces, ``_``, ``-`` do not count), so ``plate_color``,
``Plate Color`` and ``PlateColor`` are one field. A per-camera field map
(``[cameras.http.fields]``) wins over the built-in aliases, for firmware whose
template editor renamed fields.

Pictures arrive base64 inside the JSON (``plate_image``, ``plateSnap``,
``bkgSnap``, ``snapshot``, ...); they become :class:`~lprmeta.events.Picture`
objects to be saved, and ``raw`` keeps a short placeholder instead.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, TypeVar

from ..envelope import Picture, Read
from ..errors import PayloadError
from ..events import (
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
)
from ..vocabulary import (
    FIELDS,
    IMAGE_CANONICAL,
    IMAGE_ROLES,
    KIND_WORDS,
    expect_object,
    fold_key,
    mark_no_plate,
)
from .longjson import Base64Picture
from .values import (
    decode_base64_picture,
    is_none,
    parse_confidence,
    parse_duration,
    parse_int,
    parse_speed,
    parse_time,
)

__all__ = [
    "MAX_KEYS",
    "MAX_LIST_ITEMS",
    "MAX_PICTURES",
    "MAX_RAW_BYTES",
    "MAX_RAW_TEXT",
    "KeyIndex",
    "bounded_raw",
    "index_of_keys",
    "kind_of",
    "normalize_json",
    "settle_pictures",
]

# Limits on the work and memory one event may take (the README's limits table). A
# camera's JSON has a few dozen keys, two to four pictures and short values; past
# these the event still goes out, with what was not read named in details.problems.
MAX_KEYS: Final = 1000  # keys of one object that are read and kept
MAX_LIST_ITEMS: Final = 256  # items of one list (parking regions, counting regions)
MAX_PICTURES: Final = 16  # pictures of one event
MAX_RAW_TEXT: Final = 16 * 1024  # characters of one text value kept in raw
MAX_RAW_BYTES: Final = 256 * 1024  # about this much of raw is kept per event

_T = TypeVar("_T")

# folded alias -> (canonical, rank): the lower the rank, the more specific the alias.
_ALIAS: Final[Mapping[str, tuple[str, int]]] = {
    alias: (canonical, rank)
    for canonical, aliases in FIELDS.items()
    for rank, alias in enumerate(aliases)
}


# A body's shape (its keys, in order) decides its index; a camera sends one or two shapes
# over and over, so the index of a shape is worked out once. Only shapes of up to
# _SHAPE_KEYS keys and _SHAPE_CHARS characters are kept (a key tuple is hashed per
# event), at most _SHAPES of them (least recently used out): a camera that sends new
# keys every time only misses the cache.
_SHAPE_KEYS: Final = 64
_SHAPE_CHARS: Final = 4096
_SHAPES: Final = 512


class _Index:
    """What a body's keys say, whatever their values: folded key -> key, canonical field
    -> the key of its most specific alias, and (without a field map) the picture keys.
    Shared between bodies of one shape: never changed after it is made."""

    __slots__ = ("folded", "images", "keys")

    def __init__(self, keys: Iterable[str]) -> None:
        folded_keys: dict[str, str] = {}
        found: dict[str, tuple[int, str]] = {}
        images: list[tuple[str, str]] = []
        for key in keys:
            folded = fold_key(key)
            folded_keys.setdefault(folded, key)
            hit = _ALIAS.get(folded)
            if hit is not None and (hit[0] not in found or hit[1] < found[hit[0]][0]):
                found[hit[0]] = (hit[1], key)
            role = IMAGE_ROLES.get(folded)
            if role is not None:
                images.append((key, role))
        self.folded = folded_keys
        self.keys = {canonical: key for canonical, (_, key) in found.items()}
        self.images = tuple(images)


@functools.lru_cache(maxsize=_SHAPES)
def _shape_index(keys: tuple[str, ...]) -> _Index:
    return _Index(keys)


def _index_of(body: Mapping[str, Any]) -> _Index:
    return index_of_keys(tuple(body)) if len(body) <= _SHAPE_KEYS else _Index(body)


KeyIndex = _Index  # what normalize_json's ``index`` takes: made by index_of_keys only


def index_of_keys(keys: tuple[str, ...]) -> KeyIndex:
    """What ``normalize_json`` works out from a body with exactly these keys, in this order:
    for a caller that knows a body's keys before it has the body (the items of an ONVIF
    notification, whose names a camera sends the same every time)."""
    if len(keys) <= _SHAPE_KEYS and sum(map(len, keys)) <= _SHAPE_CHARS:
        return _shape_index(keys)
    return _Index(keys)


class _Fields:
    """Looks up canonical fields in one JSON object, honouring a per-camera field map.

    One pass over the body's keys finds, for every canonical field, the key of its
    most specific alias present (cameras send a few dozen keys; this runs per event,
    and is remembered per shape of body: see _Index).
    """

    def __init__(
        self,
        body: Mapping[str, Any],
        fields: Mapping[str, str],
        problems: list[str] | None = None,
        index: _Index | None = None,
    ) -> None:
        self.body = body
        self.fields = fields
        self.problems: list[str] = problems if problems is not None else []
        shape = _index_of(body) if index is None else index
        self._shape = shape
        self.index: Mapping[str, str] = shape.folded
        self._keys: Mapping[str, str] = shape.keys

    def key(self, canonical: str) -> str | None:
        mapped = self.fields.get(canonical)
        if mapped is not None:
            if mapped in self.body:
                return mapped
            return self.index.get(fold_key(mapped))
        if canonical in FIELDS:
            return self._keys.get(canonical)
        return self.index.get(canonical)

    def get(self, canonical: str) -> Any:
        # Most canonical fields are absent from any one body: answer those at once.
        key = self.key(canonical) if self.fields else self._keys.get(canonical)
        if key is None:
            return None
        value = self.body.get(key)
        return None if is_none(value) else value

    def present(self) -> Container[str]:
        """The canonical fields this body has a key for (``in`` is all it answers): the
        builders convert only those, not the twenty that are absent from any one body."""
        if not self.fields:
            return self._keys  # every name the builders ask for is in FIELDS (a test says)
        return _Present(self)

    def text(self, canonical: str) -> str | None:
        value = self.get(canonical)
        return str(value).strip() if value is not None else None

    def conv(self, canonical: str, parse: Callable[[Any], _T | None]) -> _T | None:
        """``parse`` of a field's value; whatever it raises is a problem of this one field
        (named in ``details.problems``, the value kept in ``raw``), never of the event."""
        key = self.key(canonical) if self.fields else self._keys.get(canonical)
        if key is None:  # most fields are absent from any one body
            return None
        value = self.body.get(key)
        if value is None or is_none(value):
            return None
        try:
            parsed = parse(value)
        except Exception as exc:  # noqa: BLE001  # containment: one field, not the event
            self.problems.append(f"{canonical}: {type(exc).__name__}: {str(exc)[:120]}")
            return None
        if parsed is None:  # there, but not a value of its kind (a time out of range, ...)
            self.problems.append(f"{canonical}: {_short(value)} is not a valid value")
        return parsed

    def count(self, canonical: str, parsed: int | None) -> int | None:
        """A size or coordinate: below zero it is out of its domain (kept raw, null here)."""
        if parsed is not None and parsed < 0:
            self.problems.append(f"{canonical}: {parsed} is below 0")
            return None
        return parsed

    def image_keys(self) -> Sequence[tuple[str, str]]:
        """(json key, role) of every picture field present."""
        if not self.fields:
            return self._shape.images
        out: list[tuple[str, str]] = []
        mapped = {
            fold_key(cam_key): IMAGE_CANONICAL[canon]
            for canon, cam_key in self.fields.items()
            if canon in IMAGE_CANONICAL
        }
        for key in self.body:
            folded = fold_key(key)
            role = IMAGE_ROLES.get(mapped.get(folded, folded))
            if role is not None:
                out.append((key, role))
        return out


def settle_pictures(body: dict[str, Any], fields: Mapping[str, str]) -> None:
    """Under a camera's field map that reads a picture key as another field (the map is
    the user's to write: ``speed = "full_image"``), that :class:`Base64Picture` gets its
    text back, in place, so the field reads (and fails) as it did from the whole parse;
    the picture is then decoded from the text when taken, as ever. A map cannot make a
    picture key anything less than a picture (its picture entries only add keys), and a
    picture only the map names is a string still."""
    as_text = {fold_key(key) for canon, key in fields.items() if canon not in IMAGE_CANONICAL}
    if not as_text:
        return
    stack: list[Any] = [body]
    while stack:
        node = stack.pop()
        if type(node) is list:
            stack.extend(node)
            continue
        if type(node) is not dict:
            continue
        for key, value in node.items():
            if type(value) is Base64Picture:
                if fold_key(key) in as_text:
                    node[key] = value.text()
            elif type(value) is dict or type(value) is list:
                stack.append(value)


class _Present:
    """``present()`` under a per-camera field map: asks :meth:`_Fields.key`."""

    __slots__ = ("f",)

    def __init__(self, f: _Fields) -> None:
        self.f = f

    def __contains__(self, canonical: object) -> bool:
        return isinstance(canonical, str) and self.f.key(canonical) is not None


def kind_of(body: Mapping[str, Any], fields: Mapping[str, str] | None = None) -> Kind:
    """Which kind of event a camera JSON object is (for HTTP, where no command says so)."""
    return _kind_of(_Fields(body, fields or {}))


def _kind_of(f: _Fields) -> Kind:
    name = f.text("event")
    if name:
        folded = fold_key(name)
        for word, kind in KIND_WORDS:
            if word in folded:
                return Kind(kind)
        return Kind.EVENT
    if f.key("plate") is not None or f.image_keys():
        return Kind.PLATE
    if "regionlist" in f.index or "allcar" in f.index or "smallvehicle" in f.index:
        return Kind.COUNTING
    if "reporttype" in f.index or "lengthofparking" in f.index:
        return Kind.PARKING
    return Kind.EVENT


_NO_FIELDS: Final[Mapping[str, str]] = MappingProxyType({})


def normalize_json(
    body: Mapping[str, Any],
    *,
    camera: str,
    source: Source,
    received: datetime,
    kind: Kind | None = None,
    fields: Mapping[str, str] | None = None,
    strict_pictures: bool = False,
    max_picture: int = 16 * 1024 * 1024,
    raw: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
    picture_paths: tuple[tuple[str, str], ...] = (),
    problems: Sequence[str] = (),
    weight: int = 0,
    index: KeyIndex | None = None,
) -> Read:
    """Normalize one camera JSON object into a Read (the event and its pictures).

    ``kind`` comes from the TCP command when there is one; otherwise it is read
    from the body. With ``strict_pictures`` a picture that is not valid base64
    raises :class:`PayloadError` (HTTP answers 400); without, the event keeps
    the picture as missing with the reason (TCP cannot answer). A caller whose
    body is itself derived (RTSP items) passes its own ``raw`` and ``details``, and
    may pass ``index``: ``index_of_keys(tuple(body))``, worked out once for bodies of
    those keys.
    """
    body = expect_object(body)
    problems = list(problems)  # what the caller already cut (a body parsed by the worker)
    if len(body) > MAX_KEYS:
        problems.append(f"{len(body)} keys; the first {MAX_KEYS} were read and kept")
        body = dict(itertools.islice(body.items(), MAX_KEYS))
        index = None  # of the keys before the cut
    fmap = dict(fields) if fields else _NO_FIELDS
    f = _Fields(body, fmap, problems, index)
    kind = kind or _kind_of(f)  # the same lookups: not a second index of the body
    builder = _BUILDERS.get(kind, _build_other)
    # Most bodies of an RTSP or TCP read have no picture field and a builder that looks
    # for none: then nothing is made for pictures (1 us of every such event).
    taker = (
        _Taker(strict_pictures, max_picture)
        if f.image_keys() or builder in _TAKING_BUILDERS
        else _NO_PICTURES
    )
    if f.image_keys():
        taker.take(body, f)
    try:
        fields_out, found = builder(f, taker.take)
    except PayloadError:
        raise
    except Exception as exc:  # noqa: BLE001  # containment: the read goes out, fields unread
        problems.append(f"{kind.value} fields: {type(exc).__name__}: {str(exc)[:120]}")
        fields_out, found = {}, {}
    if taker.over:
        problems.append(f"{taker.over} more pictures than the limit of {MAX_PICTURES}; not kept")
    event_name = f.text("event")
    if event_name is not None:
        found.setdefault("event", event_name[:MAX_RAW_TEXT])
    device = f.text("device")
    if device is not None:
        found.setdefault("device", device[:MAX_RAW_TEXT])
    if raw is None:
        raw, dropped, weight = weighed_raw(_raw_copy(body, taker.placeholders))
        if dropped:
            problems.append(dropped)
    if problems:
        found["problems"] = list(dict.fromkeys(problems))  # a field read twice says it once
    event = Event(
        kind=kind,
        camera=camera,
        source=source,
        received=received,
        details=_merged(found, details),
        raw=raw,
        images=tuple(taker.missing),
        **fields_out,
    )
    return Read(event, tuple(taker.pictures), picture_paths, weight)


class _Taker:
    """The pictures of one body, taken as the builders find them (base64 decoded; a bad
    one marked missing), and what ``raw`` says in their place."""

    __slots__ = ("max_picture", "missing", "over", "pictures", "placeholders", "roles", "strict")

    def __init__(self, strict: bool, max_picture: int) -> None:
        self.strict = strict
        self.max_picture = max_picture
        self.pictures: list[Picture] = []
        self.missing: list[ImageRef] = []
        self.placeholders: dict[int, dict[str, str]] = {}
        self.roles: set[str] = set()
        self.over = 0

    def take(self, obj: Mapping[str, Any], ff: _Fields, suffix: str = "") -> None:
        pictures, missing, placeholders = self.pictures, self.missing, self.placeholders
        for key, role in ff.image_keys():
            value = obj.get(key)
            # A Base64Picture was decoded with the body's parse (the HTTP receiver's).
            if type(value) is not Base64Picture and (not isinstance(value, str) or is_none(value)):
                continue
            if len(pictures) + len(missing) >= MAX_PICTURES:
                self.over += 1
                placeholders.setdefault(id(obj), {})[key] = "<picture: over the limit>"
                continue
            # Two keys of one role ("plate_image" and "Plate Image") are two pictures:
            # the second is "plate_2", so each has its own file and its own hash.
            full_role = role + suffix
            n = 1
            while full_role in self.roles:
                n += 1
                full_role = f"{role}{suffix}_{n}"
            self.roles.add(full_role)
            try:
                if type(value) is Base64Picture and value.chars * 3 // 4 <= self.max_picture:
                    data = value.data
                else:  # over the limit: said as decode_base64_picture says it
                    data = decode_base64_picture(str(value), limit=self.max_picture)
            except PayloadError as exc:
                if self.strict:
                    raise PayloadError(f"{key}: {exc.message}") from exc
                # A bad picture is marked missing; the read still goes out.
                missing.append(ImageRef(full_role, None, None, None, missing=exc.message))
                placeholders.setdefault(id(obj), {})[key] = f"<picture {full_role}: invalid>"
                continue
            if not data:
                continue
            pictures.append(Picture(full_role, data))
            placeholders.setdefault(id(obj), {})[key] = f"<picture {full_role}: {len(data)} bytes>"


class _NoPictures(_Taker):
    """A body without picture fields, for a builder that takes none: nothing to hold."""

    __slots__ = ()

    def __init__(self) -> None:
        self.pictures, self.missing, self.placeholders = [], [], {}
        self.roles, self.over = set(), 0

    def take(self, obj: Mapping[str, Any], ff: _Fields, suffix: str = "") -> None:
        raise AssertionError("a builder outside _TAKING_BUILDERS took pictures")


_NO_PICTURES: Final = _NoPictures()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def _merged(found: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """The builder's details with the caller's; problems of both are kept."""
    if not extra:
        return found
    out = {**found, **extra}
    if "problems" in found and "problems" in extra:
        out["problems"] = [*found["problems"], *extra["problems"]]
    return out


# ----------------------------------------------------------------------------- per kind

_TakePictures = Callable[[Mapping[str, Any], _Fields, str], None]


def _plate_fields(f: _Fields) -> dict[str, Any]:
    """The LPR fields of the guide's HTTP key table, wherever they appear. Every
    conversion goes through :meth:`_Fields.conv`: a value that cannot be read is
    a problem of that field only."""
    # Only the fields present are converted (``has``): a body carries a third of them.
    has = f.present()
    region = f.get("region") if "region" in has else None
    roi = f.conv("roi", parse_int) if "roi" in has else None
    country: str | None = None
    if isinstance(region, int) and not isinstance(region, bool):
        roi = roi if roi is not None else parse_int(region)
    elif isinstance(region, str):
        # A list (interval-mode parking: every ROI number) is no country either.
        country = region.strip()[:64] or None
    plate_box = None
    if "x1" in has or "y1" in has or "x2" in has or "y2" in has:
        box_parts = [f.conv(k, parse_int) if k in has else None for k in ("x1", "y1", "x2", "y2")]
        plate_box = tuple(box_parts) if all(v is not None for v in box_parts) else None
    resolution = None
    if "resolution_width" in has or "resolution_height" in has:
        width = f.count("resolution_width", f.conv("resolution_width", parse_int))
        height = f.count("resolution_height", f.conv("resolution_height", parse_int))
        resolution = (width, height) if width is not None and height is not None else None
    time = (f.conv("time_msec", parse_time) if "time_msec" in has else None) or (
        f.conv("time", parse_time) if "time" in has else None
    )
    plate = f.text("plate") if "plate" in has else None
    vehicle = (
        Vehicle(
            type=f.conv("vehicle_type", VehicleType.parse) if "vehicle_type" in has else None,
            color=f.conv("vehicle_color", Color.parse) if "vehicle_color" in has else None,
            brand=f.conv("vehicle_brand", Brand.parse) if "vehicle_brand" in has else None,
        )
        if "vehicle_type" in has or "vehicle_color" in has or "vehicle_brand" in has
        else _NO_VEHICLE
    )
    return {
        "time": time,
        "plate": plate or None,
        "confidence": f.conv("confidence", parse_confidence) if "confidence" in has else None,
        "country": country,
        "list": f.conv("list", ListType.parse) if "list" in has else None,
        "direction": f.conv("direction", Direction.parse) if "direction" in has else None,
        "speed_kmh": f.conv("speed", parse_speed) if "speed" in has else None,
        "roi": roi,
        "plate_box": plate_box,
        "resolution": resolution,
        "plate_color": f.conv("plate_color", Color.parse) if "plate_color" in has else None,
        "vehicle": vehicle,
    }


_NO_VEHICLE: Final = Vehicle()


def _build_plate(f: _Fields, take: _TakePictures) -> tuple[dict[str, Any], dict[str, Any]]:
    out = _plate_fields(f)
    details: dict[str, Any] = {}
    mark_no_plate(details, out["plate"])
    return out, details


def _build_other(f: _Fields, take: _TakePictures) -> tuple[dict[str, Any], dict[str, Any]]:
    """List, attributes, violation and unknown events: the guide shows no example
    body, so whatever LPR fields they carry are read; the rest stays in ``raw``."""
    return _plate_fields(f), {}


def _vehicle_box(f: _Fields) -> list[int] | None:
    parts = [
        parse_int(f.body.get(f.index.get(f"objecttrackingbox{c}", "")))
        for c in ("x1", "y1", "x2", "y2")
    ]
    return [p for p in parts if p is not None] if all(p is not None for p in parts) else None


def _parking_region(f: _Fields) -> dict[str, Any]:
    state = parse_int(f.body.get(f.index.get("state", "")))
    plate = _plate_fields(f)
    return {
        "region": parse_int(f.body.get(f.index.get("region", ""))),
        "region_name": f.body.get(f.index.get("regionname", "")),
        "state": state,
        "occupied": state == 1 if state is not None else None,
        "parking_seconds": parse_duration(f.body.get(f.index.get("lengthofparking", ""))),
        "plate": plate["plate"],
        "plate_color": plate["plate_color"].value if plate["plate_color"] else None,
        "vehicle": plate["vehicle"].to_json(),
        "vehicle_box": _vehicle_box(f),
    }


def _build_parking(f: _Fields, take: _TakePictures) -> tuple[dict[str, Any], dict[str, Any]]:
    """COMM_PARKING_POST: trigger mode (one region) or period/interval mode (a data list).

    Trigger mode's ``state`` reads as 1 = occupied, 0 = vacant (the guide's
    example has a plate with state 0, as a car that just left would).
    """
    report = f.body.get(f.index.get("reporttype", ""))
    data_list = f.body.get(f.index.get("datalist", ""))
    out = _plate_fields(f)
    out["roi"] = None
    if isinstance(data_list, list) or report == "interval":
        regions = []
        items = data_list if isinstance(data_list, list) else []
        if len(items) > MAX_LIST_ITEMS:
            f.problems.append(f"{len(items)} regions; the first {MAX_LIST_ITEMS} were read")
            items = items[:MAX_LIST_ITEMS]
        for item in items:
            if not isinstance(item, Mapping):
                continue
            if len(item) > MAX_KEYS:
                f.problems.append(f"a region of {len(item)} keys; the first {MAX_KEYS} read")
                item = dict(itertools.islice(item.items(), MAX_KEYS))  # noqa: PLW2901
            ff = _Fields(item, f.fields, f.problems)
            region = _parking_region(ff)
            take(item, ff, f"_roi{region['region']}" if region["region"] is not None else "")
            regions.append(region)
        states = f.body.get(f.index.get("state", ""))
        details = {
            "mode": "interval",
            "total_occupied": parse_int(f.body.get(f.index.get("totaloccupied", ""))),
            "total_available": parse_int(f.body.get(f.index.get("totalavailable", ""))),
            "states": states if isinstance(states, list) else None,
            "regions": regions,
        }
        # One plate per region: the top-level plate is only meaningful for one car.
        plates = [r["plate"] for r in regions if r["plate"]]
        out["plate"] = plates[0] if len(plates) == 1 else None
        return out, details
    region = _parking_region(f)
    out["roi"] = region["region"]
    return out, {"mode": "trigger", **region}


_COUNT_SKIP = {"region", "regionname", "event", "device", "time", "snapshot", "regionlist"}


def _counts(obj: Mapping[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in obj.items():
        if fold_key(key) in _COUNT_SKIP or isinstance(value, bool) or not isinstance(value, int):
            continue
        out[_snake(key)] = value
    return out


def _snake(key: str) -> str:
    return "_".join("".join(ch if ch.isalnum() else " " for ch in key.lower()).split())


def _build_counting(f: _Fields, take: _TakePictures) -> tuple[dict[str, Any], dict[str, Any]]:
    """COMM_COUNTING_POST: instant mode (one region, counts at top level) or customize
    mode (``regionList``, a ``Total`` entry without a region number)."""
    region_list = f.body.get(f.index.get("regionlist", ""))
    entries: list[Mapping[str, Any]]
    if isinstance(region_list, list):
        if len(region_list) > MAX_LIST_ITEMS:
            f.problems.append(f"{len(region_list)} regions; the first {MAX_LIST_ITEMS} were read")
        entries = [
            dict(itertools.islice(e.items(), MAX_KEYS))
            for e in region_list[:MAX_LIST_ITEMS]
            if isinstance(e, Mapping)
        ]
        mode = "customize"
    else:
        entries = [f.body]
        mode = "instant"
    regions: list[dict[str, Any]] = []
    for entry in entries:
        idx = {fold_key(k): k for k in entry}
        regions.append(
            {
                "region": parse_int(entry.get(idx.get("region", ""))),
                "region_name": entry.get(idx.get("regionname", "")),
                "counts": _counts(entry),
            }
        )
    keys = {k for r in regions for k in r["counts"]}
    count_type = (
        "size"
        if "small_vehicle" in keys
        else "car_motorcycle_nonmotor"
        if "all_car" in keys
        else None
    )
    out: dict[str, Any] = {"time": parse_time(f.get("time"))}
    if mode == "instant":
        out["roi"] = regions[0]["region"] if regions else None
    return out, {"mode": mode, "count_type": count_type, "regions": regions}


_BUILDERS: dict[Kind, Callable[[_Fields, _TakePictures], tuple[dict[str, Any], dict[str, Any]]]] = {
    Kind.PLATE: _build_plate,
    Kind.PARKING: _build_parking,
    Kind.COUNTING: _build_counting,
}
# The builders that take pictures from inside the body (interval parking: per region).
_TAKING_BUILDERS: Final = frozenset({_build_parking})


def bounded_raw(raw: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """See :func:`weighed_raw`; without the weight."""
    out, dropped, _ = weighed_raw(raw)
    return out, dropped


def weighed_raw(raw: dict[str, Any]) -> tuple[dict[str, Any], str | None, int]:
    """``raw`` with every text longer than :data:`MAX_RAW_TEXT` and everything past about
    :data:`MAX_RAW_BYTES` replaced by a short note saying what was there; and a problem
    line when anything was replaced; and about how many bytes it holds (the queues'
    byte budgets). Keeps a hostile camera's line (and every queue holding it) to a
    bounded size; a real camera's fields are far below both limits."""
    whole = _whole_weight(raw)
    if whole is not None:  # nothing to cut (every real camera's): as it is, not copied
        return raw, None, whole
    budget = [MAX_RAW_BYTES, 0, 0]  # bytes left, texts cut, values not kept

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            if len(value) > MAX_RAW_TEXT:
                budget[1] += 1
                value = f"<text of {len(value)} characters; the first {MAX_RAW_TEXT}: " + (
                    value[:MAX_RAW_TEXT] + ">"
                )
            if len(value) > budget[0]:
                budget[2] += 1
                return f"<{len(value)} characters not kept: raw is over {MAX_RAW_BYTES} bytes>"
            budget[0] -= len(value) + 8
            return value
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for k, v in value.items():
                key = str(k)[:256]
                budget[0] -= len(key) + 8
                if budget[0] < 0:
                    budget[2] += 1
                    out["…"] = f"{len(value) - len(out)} more keys not kept"
                    break
                out[key] = walk(v)
            return out
        if isinstance(value, list):
            items = []
            for v in value[:MAX_LIST_ITEMS]:
                if budget[0] < 0:
                    break
                items.append(walk(v))
            if len(items) < len(value):
                budget[2] += 1
                items.append(f"<{len(value) - len(items)} more items not kept>")
            return items
        budget[0] -= 16
        return value

    out = walk(raw)
    weight = MAX_RAW_BYTES - budget[0]
    if not budget[1] and not budget[2]:
        return out, None, weight
    return (
        out,
        f"raw: {budget[1]} texts cut to {MAX_RAW_TEXT} characters, "
        f"{budget[2]} values not kept past {MAX_RAW_BYTES} bytes",
        weight,
    )


_SCALARS: Final = (int, float, bool, type(None))


def text_items_weight(items: Mapping[str, str]) -> int | None:
    """What :func:`_whole_weight` adds for ``items``, a dictionary of texts by name (an
    ONVIF notification's items), or ``None`` when it would cut one: its sums in C."""
    keys = sum(map(len, items))
    values = sum(map(len, items.values()))
    # A total under a limit has no part over it: the max()es only for long items.
    if keys > 256 and max(map(len, items)) > 256:
        return None
    if values > MAX_RAW_TEXT and max(map(len, items.values())) > MAX_RAW_TEXT:
        return None
    return keys + values + 16 * len(items)


def _whole_weight(raw: dict[str, Any]) -> int | None:
    """What :func:`weighed_raw` would weigh ``raw`` when it would keep it whole (plain
    JSON values, no text, key or list over its limit, all within the byte budget);
    ``None`` otherwise (then it walks and copies). One loop, no copy: the common case
    (a notification's items, a camera's flat JSON) costs a few microseconds, not a
    recursive copy (measured: 7 of the RTSP path's ~100 microseconds)."""
    weight = 0
    stack: list[Any] = [raw]
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is dict:
            for k, v in value.items():
                if type(k) is not str or len(k) > 256:
                    return None
                if type(v) is str:
                    if len(v) > MAX_RAW_TEXT:
                        return None
                    weight += len(k) + len(v) + 16
                else:
                    weight += len(k) + 8
                    stack.append(v)
        elif kind is str:
            if len(value) > MAX_RAW_TEXT:
                return None
            weight += len(value) + 8
        elif kind is list:
            if len(value) > MAX_LIST_ITEMS:
                return None
            stack.extend(value)
        elif kind in _SCALARS:
            weight += 16
        else:
            return None  # anything else: the walk decides
        if weight > MAX_RAW_BYTES:
            return None
    return weight


def _raw_copy(value: Any, placeholders: Mapping[int, Mapping[str, str]]) -> Any:
    """A deep copy of the body with picture payloads replaced by short placeholders.
    A plain value is kept without a call or an ``isinstance(_, Mapping)`` (an ABC check:
    a tenth of a cold body's parse_post went to those two, per value, py-spy)."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is Base64Picture:  # a picture not taken: its text, as the parse gave it before
        return value.text()
    if kind is dict or (kind is not list and isinstance(value, Mapping)):
        marks = placeholders.get(id(value))
        out: dict[str, Any] = {}
        for k, v in value.items():
            if marks is not None and k in marks:
                out[k] = marks[k]
            elif type(v) in _PLAIN:
                out[k] = v
            else:
                out[k] = _raw_copy(v, placeholders)
        return out
    if isinstance(value, list):
        return [_raw_copy(v, placeholders) for v in value]
    return value


_PLAIN: Final = frozenset({str, int, float, bool, type(None)})
