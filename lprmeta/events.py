"""The normalized event every input produces and every sink consumes.

This module owns the event model and the vendor's code tables (colour, brand,
vehicle type, direction, list type); it does no I/O and imports nothing from
asyncio, aiohttp or av.

Tables come from the vendor guide, section "1. TCP Type": "Color Table",
"Brand Table", "Vehicle Type Table" and the metadata field list. Every table is
a *tolerant* enum: a code or name we do not know maps to ``UNKNOWN`` and never
raises; the camera's original value is always kept in the event's ``raw``.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import secrets
import time as _time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Self, TypeVar

from .vocabulary import ALIASES, CODES, fold_key

__all__ = [
    "Brand",
    "Color",
    "Direction",
    "Event",
    "ImageRef",
    "Kind",
    "ListMatch",
    "ListType",
    "Source",
    "Vehicle",
    "VehicleType",
    "event_schema",
    "fast_frozen_init",
    "format_time",
    "new_event_id",
    "plate_key",
    "replaced",
]


_W = TypeVar("_W", bound="WireEnum")


class WireEnum(StrEnum):
    """A tolerant enum: unknown names and codes become ``UNKNOWN`` instead of raising.

    Subclasses must define an ``UNKNOWN`` member. Names match case-, space- and
    dash-insensitively, plus the aliases a subclass lists in ``_aliases_``.
    """

    @classmethod
    def _missing_(cls, value: object) -> Self:
        if isinstance(value, str):
            return _lookup_name(cls, value)  # type: ignore[return-value]
        return cls("unknown")

    @classmethod
    def parse(cls, value: object) -> Self | None:
        """Map a wire value (code or name) to a member; ``None`` and ``""`` and ``"-"`` mean absent.

        Integers (and digit strings) go through the code table; text through the names.
        """
        if value is None:
            return None
        if isinstance(value, bool):
            return cls("unknown")
        if isinstance(value, int):
            return cls.from_code(value)
        if isinstance(value, str):
            if len(value) <= 64:  # a camera's handful of spellings: each read once
                return _parse_text(cls, value)  # type: ignore[return-value]
            return cls._parse_text(value)
        return cls("unknown")

    @classmethod
    def _parse_text(cls, value: str) -> Self | None:
        text = value.strip()
        if text in ("", "-"):
            return None
        if text.isdecimal():
            # A code is a small number; 5,000 digits (int() refuses past 4,300) are
            # no code (decimal digits of any script are, as int() reads them).
            return cls.from_code(int(text)) if len(text) <= 20 else cls("unknown")
        return _lookup_name(cls, text)  # type: ignore[return-value]

    @classmethod
    def from_code(cls, code: int) -> Self:
        table: tuple[Self, ...] = _code_members(cls)
        if 0 <= code < len(table):
            return table[code]
        return cls("unknown")


@functools.lru_cache(maxsize=4096)
def _parse_text(cls: type[WireEnum], value: str) -> WireEnum | None:
    return cls._parse_text(value)


@functools.cache
def _code_members(cls: type[_W]) -> tuple[_W, ...]:
    """The members of ``cls`` by code (an enum call per field per event was 1 us)."""
    return tuple(cls(value) for value in _CODES.get(cls.__name__, ()))


@functools.lru_cache(maxsize=4096)
def _lookup_name(cls: type[WireEnum], text: str) -> WireEnum:
    """A wire name -> member (cached: cameras repeat a handful of names)."""
    key = fold_key(text)
    for member in cls:
        if fold_key(member.value) == key:
            return member
    alias = ALIASES.get(cls.__name__, {}).get(key)
    return cls(alias) if alias is not None else cls("unknown")


class Color(WireEnum):
    """``enum LprColor`` of the guide's Color Table (codes 0..10)."""

    UNKNOWN = "unknown"
    BLACK = "black"
    BLUE = "blue"
    CYAN = "cyan"
    GRAY = "gray"
    GREEN = "green"
    RED = "red"
    WHITE = "white"
    YELLOW = "yellow"
    VIOLET = "violet"
    ORANGE = "orange"


class VehicleType(WireEnum):
    """The guide's Vehicle Type Table (codes 0..15)."""

    UNKNOWN = "unknown"
    NONE = "none"
    CAR = "car"
    MOTOR = "motor"
    BUS = "bus"
    TRUCK = "truck"
    VAN = "van"
    SUV = "suv"
    FORKLIFT = "forklift"
    EXCAVATOR = "excavator"
    TOWTRUCK = "towtruck"
    POLICE_CAR = "police_car"
    FIRE_ENGINE = "fire_engine"
    AMBULANCE = "ambulance"
    BICYCLE = "bicycle"
    E_BIKE = "e_bike"
    OTHER = "other"


class Direction(WireEnum):
    """Driving direction, normalized across transports.

    TCP metadata says ``0: Unknown 1: In 2: Out``; RTSP's ``LicenseCarDirection``
    carries the same codes; HTTP says "Approach" or "Away" (the reading chosen for
    how they relate is in :data:`lprmeta.vocabulary.ALIASES`). The camera's own word
    or code is always kept in ``raw``.
    """

    UNKNOWN = "unknown"
    IN = "in"
    OUT = "out"


class ListType(WireEnum):
    """Plate list type: TCP "Plate Type: 1: black 2: white 3: visitor"; HTTP ``type``."""

    UNKNOWN = "unknown"
    BLACK = "black"
    WHITE = "white"
    VISITOR = "visitor"


class Brand(WireEnum):
    """``traBrandType`` of the guide's Brand Table (codes 0..71, MAX excluded)."""

    UNKNOWN = "unknown"
    AUDI = "Audi"
    ASTON_MARTIN = "Aston Martin"
    ALFA_ROMEO = "Alfa Romeo"
    BUICK = "Buick"
    MERCEDES_BENZ = "Mercedes-Benz"
    BMW = "BMW"
    HONDA = "Honda"
    PEUGEOT = "Peugeot"
    PORSCHE = "Porsche"
    BENTLEY = "Bentley"
    BUGATTI = "Bugatti"
    VOLKSWAGEN = "Volkswagen"
    DODGE = "Dodge"
    DAEWOO = "Daewoo"
    DAIHATSU = "Daihatsu"
    TOYOTA = "Toyota"
    FORD = "Ford"
    FERRARI = "Ferrari"
    FIAT = "Fiat"
    GMC = "GMC"
    MITSUOKA = "Mitsuoka"
    HAVAL = "Haval"
    GEELY = "Geely"
    JEEP = "Jeep"
    JAGUAR = "Jaguar"
    CADILLAC = "Cadillac"
    CHRYSLER = "Chrysler"
    LEXUS = "Lexus"
    LAND_ROVER = "Land Rover"
    LINCOLN = "Lincoln"
    SUZUKI = "Suzuki"
    ROLLS_ROYCE = "Rolls-Royce"
    LAMBORGHINI = "Lamborghini"
    RENAULT = "Renault"
    MAZDA = "Mazda"
    MINI = "MINI"
    MASERATI = "Maserati"
    MAYBACH = "Maybach"
    ACURA = "Acura"
    OPEL = "Opel"
    CHERY = "Chery"
    KIA = "Kia"
    NISSAN = "Nissan"
    SKODA = "Skoda"
    MITSUBISHI = "Mitsubishi"
    SUBARU = "Subaru"
    SMART = "Smart"
    SSANGYONG = "Ssangyong"
    TESLA = "Tesla"
    ISUZU = "Isuzu"
    CHEVROLET = "Chevrolet"
    CITROEN = "Citroen"
    HYUNDAI = "Hyundai"
    INFINITY = "Infinity"
    MERCURY = "Mercury"
    SATURN = "Saturn"
    SAAB = "SAAB"
    LYNK_CO = "LYNK&CO"
    MORRIS_GARAGES = "MorrisGarages"
    PAGANI = "Pagani"
    SPYKER = "Spyker"
    BYD = "BYD"
    MCLAREN = "McLaren"
    KOENIGSEGG = "Koenigsegg"
    VOLVO = "Volvo"
    LANCIA = "Lancia"
    SHELBY = "Shelby"
    SEAT = "Seat"
    CUPRA = "CUPRA"
    DACIA = "Dacia"
    DS = "DS"


# The code tables and other spellings are the vocabulary's; Brand's codes are the order
# of the enum above (the guide's traBrandType).
_CODES: dict[str, tuple[str, ...]] = {
    **CODES,
    "Brand": ("unknown", *(m.value for m in list(Brand)[1:])),
}


class Kind(StrEnum):
    """What an event is about; ``event`` is anything the camera sent that we do not model."""

    PLATE = "plate"
    PARKING = "parking"
    COUNTING = "counting"
    LIST = "list"
    ATTRIBUTES = "attributes"
    VIOLATION = "violation"
    EVENT = "event"


class Source(StrEnum):
    TCP = "tcp"
    HTTP = "http"
    RTSP = "rtsp"
    ONVIF = "onvif"  # the camera's ONVIF event service (PullPoint)


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A picture as the JSON line carries it: a saved file, or the reason it is missing."""

    role: str
    path: str | None
    bytes: int | None
    sha256: str | None
    missing: str | None = None
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "role": self.role,
            "path": self.path,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }
        if self.missing is not None:
            out["missing"] = self.missing
        if self.url is not None:
            out["url"] = self.url
        return out


@dataclass(frozen=True, slots=True)
class ListMatch:
    """A configured list the event's plate is on (``[[lists]]``)."""

    list: str
    entry: str  # as written in the list
    distance: int  # edits after look-alike folding; 0 for exact and wildcard matches
    label: str | None = None  # a list file's second column, if any

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"list": self.list, "entry": self.entry, "distance": self.distance}
        if self.label:
            out["label"] = self.label
        return out


@dataclass(frozen=True, slots=True)
class Vehicle:
    type: VehicleType | None = None
    color: Color | None = None
    brand: Brand | None = None

    def to_json(self) -> dict[str, Any]:
        return {"type": _value(self.type), "color": _value(self.color), "brand": _value(self.brand)}

    def richer(self, other: Vehicle) -> Vehicle:
        return Vehicle(
            type=_known(self.type, other.type),
            color=_known(self.color, other.color),
            brand=_known(self.brand, other.brand),
        )


_ID_PREFIX = secrets.token_hex(5)  # this process
_ID_COUNTER = itertools.count()


# The millisecond and the id's first 22 characters for it: one tuple, replaced whole.
_id_head: list[tuple[int, str]] = [(-1, "")]


def new_event_id() -> str:
    """A unique, roughly time-ordered id: milliseconds since the epoch, 40 random bits
    drawn once per process, and a counter (no system call per event). The first two are
    written once a millisecond."""
    ms = _time.time_ns() // 1_000_000
    head = _id_head[0]
    if head[0] != ms:
        head = _id_head[0] = (ms, f"{ms:012x}{_ID_PREFIX}")
    return f"{head[1]}{next(_ID_COUNTER) & 0xFFFFFF:06x}"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One normalized event: the JSON line contract, and nothing else (what travels with
    it until its pictures are saved is :class:`lprmeta.envelope.Read`). Every field of
    the JSON line is here; ``None`` means unknown."""

    kind: Kind
    camera: str
    source: Source
    time: datetime | None = None
    received: datetime = field(default_factory=_utcnow)
    plate: str | None = None
    confidence: float | None = None
    country: str | None = None
    list: ListType | None = None
    direction: Direction | None = None
    speed_kmh: float | None = None
    roi: int | None = None
    plate_box: tuple[int, int, int, int] | None = None
    resolution: tuple[int, int] | None = None
    plate_color: Color | None = None
    vehicle: Vehicle = field(default_factory=Vehicle)
    images: tuple[ImageRef, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)
    matches: tuple[ListMatch, ...] = ()
    id: str = field(default_factory=new_event_id)

    def to_json(self) -> dict[str, Any]:
        """The JSON line contract (see ``lprmeta/schema/event.schema.json``)."""
        return {
            "id": self.id,
            # _value_, not value: the property is 0.5 us a call, the attribute nothing.
            "kind": self.kind._value_,
            "camera": self.camera,
            "source": self.source._value_,
            "time": format_time(self.time),
            "received": format_time(self.received),
            "plate": self.plate,
            "confidence": self.confidence,
            "country": self.country,
            # Written out, not through _value() and empty comprehensions: every line of
            # every sink is built here (5.4 -> 4 us, measured).
            "list": self.list._value_ if self.list is not None else None,
            "direction": self.direction._value_ if self.direction is not None else None,
            "speed_kmh": self.speed_kmh,
            "roi": self.roi,
            "plate_box": list(self.plate_box) if self.plate_box is not None else None,
            "resolution": list(self.resolution) if self.resolution is not None else None,
            "plate_color": self.plate_color._value_ if self.plate_color is not None else None,
            "vehicle": self.vehicle.to_json(),
            "images": [img.to_json() for img in self.images] if self.images else [],
            "details": dict(self.details),
            "raw": dict(self.raw),
            "matches": [m.to_json() for m in self.matches] if self.matches else [],
        }

    def merged_with(self, other: Event) -> Event:
        """This event enriched by a duplicate read of the same car.

        Known values win over unknown ones (the first event's known value wins
        over the second's); every image of both is kept (same bytes once); the
        raw payloads are kept side by side under ``raw["merged"]``.
        """
        sources: list[str] = list(self.details.get("sources", [self.source.value]))
        for src in other.details.get("sources", [other.source.value]):
            if src not in sources:
                sources.append(src)
        details = {**other.details, **self.details, "sources": sources}
        merged_raw: list[Any] = list(self.raw.get("merged", [dict(self.raw)]))
        merged_raw.extend(other.raw.get("merged", [dict(other.raw)]))
        return Event(
            id=self.id,
            kind=self.kind,
            camera=self.camera,
            source=self.source,
            time=self.time or other.time,
            received=self.received,
            plate=self.plate or other.plate,
            confidence=_first(self.confidence, other.confidence),
            country=self.country or other.country,
            list=_known(self.list, other.list),
            direction=_known(self.direction, other.direction),
            speed_kmh=_first(self.speed_kmh, other.speed_kmh),
            roi=_first(self.roi, other.roi),
            plate_box=self.plate_box or other.plate_box,
            resolution=self.resolution or other.resolution,
            plate_color=_known(self.plate_color, other.plate_color),
            vehicle=self.vehicle.richer(other.vehicle),
            images=dedupe_images((*self.images, *other.images)),
            details=details,
            raw={"merged": merged_raw},
            matches=_closest((*self.matches, *other.matches)),
        )


def fast_frozen_init(cls: type[_C]) -> type[_C]:
    """``cls`` (a frozen, slotted dataclass) with a faster ``__init__``, on every event of
    every transport. The dataclass's own calls ``object.__setattr__(self, name, value)``
    per field, a look-up by name each time (a frozen class refuses plain assignment).

    This one lends the new object, for the length of ``__init__``, a class of the same
    slots that is not frozen (``_<name>Init``): plain assignments, then the object gets
    its class back. An object's class may change between two classes of the same slots
    and base (CPython checks that the layouts agree); nothing else ever sees the loan.
    An ``Event`` with each slot's descriptor called took 4.7 us, this way 3.7 (measured
    2026-11-30; the dataclass's own 6.3). The same parameters (positional, keyword-only),
    defaults and factories; a test compares the two for each class it is used on. A
    subclass would get its own class swapped for ``cls``: subclassing is refused."""
    loan = type(f"_{cls.__name__}Init", (), {"__slots__": cls.__slots__})  # type: ignore[attr-defined]
    names: dict[str, Any] = {
        "_MISSING": dataclasses.MISSING,
        "_loan": loan,
        "_cls": cls,
        "_set": object.__setattr__,
    }
    positional: list[str] = []
    keyword: list[str] = []
    body: list[str] = ["_set(self, '__class__', _loan)"]
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        n = f.name
        params = keyword if f.kw_only else positional
        if f.default is not dataclasses.MISSING:
            names[f"_default_{n}"] = f.default
            params.append(f"{n}=_default_{n}")
        elif f.default_factory is not dataclasses.MISSING:
            names[f"_factory_{n}"] = f.default_factory
            params.append(f"{n}=_MISSING")
            body.append(f"if {n} is _MISSING: {n} = _factory_{n}()")
        else:
            params.append(n)
        body.append(f"self.{n} = {n}")
    body.append("self.__class__ = _cls")
    signature = ", ".join(["self", *positional, *(["*", *keyword] if keyword else [])])
    source = f"def __init__({signature}):\n    " + "\n    ".join(body or ["pass"])
    exec(source, names)  # noqa: S102  # the source is built above from the field names only
    init = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    # __replace__ (copy.replace's protocol): every slot copied by a plain store on the
    # same loan, then the changes; dataclasses.replace read each field by name and called
    # __init__ with all of them (4.3 us for an Event; this way about 1).
    fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    names["_fields"] = frozenset(fields)
    names["_new"] = object.__new__
    copy_body = ["new = _new(_cls)", "_set(new, '__class__', _loan)"]
    copy_body += [f"new.{n} = self.{n}" for n in fields]
    copy_body += [
        "for name, value in changes.items():",
        "    if name not in _fields:",
        f"        raise TypeError(f'{cls.__name__} has no field {{name!r}}')",
        "    setattr(new, name, value)",
        "new.__class__ = _cls",
        "return new",
    ]
    exec("def __replace__(self, /, **changes):\n    " + "\n    ".join(copy_body), names)  # noqa: S102
    copier = names["__replace__"]
    copier.__qualname__ = f"{cls.__qualname__}.__replace__"
    cls.__replace__ = copier  # type: ignore[attr-defined]

    def refuse_subclass(sub: type, /, **kwargs: Any) -> None:
        raise TypeError(f"{cls.__name__} has a fast __init__ and cannot be subclassed")

    cls.__init_subclass__ = classmethod(refuse_subclass)  # type: ignore[assignment]
    return cls


_C = TypeVar("_C")
fast_frozen_init(Event)


def replaced(obj: _C, /, **changes: Any) -> _C:
    """``dataclasses.replace(obj, **changes)`` for a class of :func:`fast_frozen_init`,
    by the ``__replace__`` it was given (a TypeError for a name that is no field)."""
    return obj.__replace__(**changes)  # type: ignore[attr-defined,no-any-return]


def _value(member: StrEnum | None) -> str | None:
    return member._value_ if member is not None else None


_T = TypeVar("_T")
_E = TypeVar("_E", bound=StrEnum)


def _first(a: _T | None, b: _T | None) -> _T | None:
    return a if a is not None else b


def _known(a: _E | None, b: _E | None) -> _E | None:
    """Prefer a known enum value over ``None`` or ``unknown``."""
    if a is None or (a.value == "unknown" and b is not None):
        return b
    return a


# The text of the seconds last written: an event's two times (the camera's, ours) and the
# next events' are of a few seconds; isoformat() of an aware time is 1.5 us, this 0.7.
# Not one second but a few: a camera's clock a second off would make one miss every time.
_SECONDS: dict[tuple[int, ...], str] = {}
_MAX_SECONDS: Final = 256


def format_time(value: datetime | None) -> str | None:
    """ISO 8601 with milliseconds; UTC is written ``Z``, a camera's naive local time as is."""
    if value is None:
        return None
    if value.tzinfo is UTC:  # nearly every time: the text up to the second is remembered
        key = (value.year, value.month, value.day, value.hour, value.minute, value.second)
        head = _SECONDS.get(key)
        if head is None:  # isoformat(): YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00, year 4 digits
            if len(_SECONDS) >= _MAX_SECONDS:
                _SECONDS.clear()
            head = _SECONDS[key] = value.isoformat()[:19]
        return f"{head}.{value.microsecond // 1000:03d}Z"
    text = value.isoformat(timespec="milliseconds")
    if text.endswith("+00:00"):
        text = text[:-6] + "Z"
    return text


_PLATE_SEPARATORS = str.maketrans("", "", "-·.")


def plate_key(plate: str) -> str:
    """The form under which two reads of one plate compare equal (dedup): upper case,
    without whitespace, ``-``, ``·`` or ``.``."""
    return "".join(plate.upper().split()).translate(_PLATE_SEPARATORS)


def _closest(matches: Iterable[ListMatch]) -> tuple[ListMatch, ...]:
    """One match per list, the closest."""
    best: dict[str, ListMatch] = {}
    for m in matches:
        if m.list not in best or m.distance < best[m.list].distance:
            best[m.list] = m
    return tuple(best.values())


def dedupe_images(images: Iterable[ImageRef]) -> tuple[ImageRef, ...]:
    seen: set[str] = set()
    out: list[ImageRef] = []
    for img in images:
        key = img.sha256 or f"{img.role}:{img.path}:{img.missing}"
        if key not in seen:
            seen.add(key)
            out.append(img)
    return tuple(out)


def event_schema() -> dict[str, Any]:
    """The JSON Schema of one stdout line (shipped as ``lprmeta/schema/event.schema.json``)."""
    import json  # noqa: PLC0415
    from importlib.resources import files  # noqa: PLC0415  # rarely needed

    text = files("lprmeta").joinpath("schema/event.schema.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]
