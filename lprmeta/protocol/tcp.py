"""The Milesight LPR TCP protocol, sans-IO: framing, requests, replies, recognition packets.

Source: the vendor guide, section "1. TCP Type". Everything is little-endian
("※ Use Little-Endian").

Packet ("Basic Packet Composition")::

    SIG CC FF | COMMAND 2 | DATA_SIZE 4 | DATA | SIG END FF DD

``DATA_SIZE = DATA length + 2 bytes (SIG END)``. Reading chosen: DATA_SIZE
covers DATA and the end signature, as the guide says; a packet whose
DATA_SIZE counts DATA alone (a plausible firmware misreading of the same
sentence) is accepted as well, and counted (``alt_size``).

The decoder is a pure state machine in the style of h11: ``feed(bytes)`` then
``next_event()`` until it returns :data:`NEED_DATA`. It yields :class:`Packet`
and :class:`Junk` (bytes skipped while resynchronising on ``CC FF``), and
raises :class:`~lprmeta.errors.PacketTooLarge` / :class:`FramingError` for a
bad header, after which it has already resynchronised: call ``next_event``
again. It never allocates a declared size before the bytes have arrived.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from ..envelope import Picture, Read
from ..errors import FramingError, MetadataError, PacketTooLarge, PayloadError
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
from ..vocabulary import expect_object, mark_no_plate
from .common import NEED_DATA, NeedData
from .jsonpost import MAX_PICTURES, normalize_json, weighed_raw
from .values import from_posix, lenient_json, parse_confidence

__all__ = [
    "COMMANDS",
    "NEED_DATA",
    "Junk",
    "Packet",
    "PacketDecoder",
    "Recognition",
    "Reply",
    "decode_metadata",
    "decode_packet",
    "decode_recognition",
    "decode_reply",
    "encode_chunk",
    "encode_login",
    "encode_metadata",
    "encode_packet",
    "encode_recognition",
    "encode_register",
    "split_chunks",
]

SIG: Final = b"\xcc\xff"
SIG_END: Final = b"\xff\xdd"
HEADER: Final = struct.Struct("<2sHI")  # SIG, COMMAND, DATA_SIZE
HEADER_SIZE: Final = HEADER.size  # 8

COMM_LOGIN_REQ: Final = 0x0001
COMM_LOGIN_REPLY: Final = 0x8001
COMM_REGISTE_REQ: Final = 0x0002
COMM_REGISTE_REPLY: Final = 0x8002
COMM_RECOG_POST: Final = 0x8801
COMM_PARKING_POST: Final = 0x8802
COMM_COUNTING_POST: Final = 0x8803
COMM_LIST_EVENT_POST: Final = 0x8804
COMM_ATTRIBUTES_POST: Final = 0x8805
COMM_VIOLATION_POST: Final = 0x8806

COMMANDS: Final[Mapping[int, str]] = {
    COMM_LOGIN_REQ: "COMM_LOGIN_REQ",
    COMM_LOGIN_REPLY: "COMM_LOGIN_REPLY",
    COMM_REGISTE_REQ: "COMM_REGISTE_REQ",
    COMM_REGISTE_REPLY: "COMM_REGISTE_REPLY",
    COMM_RECOG_POST: "COMM_RECOG_POST",
    COMM_PARKING_POST: "COMM_PARKING_POST",
    COMM_COUNTING_POST: "COMM_COUNTING_POST",
    COMM_LIST_EVENT_POST: "COMM_LIST_EVENT_POST",
    COMM_ATTRIBUTES_POST: "COMM_ATTRIBUTES_POST",
    COMM_VIOLATION_POST: "COMM_VIOLATION_POST",
}

JSON_POSTS: Final[Mapping[int, Kind]] = {
    COMM_PARKING_POST: Kind.PARKING,
    COMM_COUNTING_POST: Kind.COUNTING,
    COMM_LIST_EVENT_POST: Kind.LIST,
    COMM_ATTRIBUTES_POST: Kind.ATTRIBUTES,
    COMM_VIOLATION_POST: Kind.VIOLATION,
}

# Chunk IDs ("c. Data Chunk"): Meta 11 FF 00 00, Image 22 FF 00 00. The guide
# once writes the image ID as "22 ff 00" (three bytes); IDs are matched on
# their first two bytes and the rest is kept raw.
CHUNK_META: Final = b"\x11\xff"
CHUNK_IMAGE: Final = b"\x22\xff"
CHUNK_HEADER: Final = struct.Struct("<4sI")


@dataclass(frozen=True, slots=True)
class Packet:
    command: int
    data: bytes
    # True when DATA_SIZE counted DATA only (see module doc); kept for counters.
    alt_size: bool = False

    @property
    def name(self) -> str:
        return COMMANDS.get(self.command, f"0x{self.command:04X}")


@dataclass(frozen=True, slots=True)
class Junk:
    """Bytes skipped while looking for the next ``CC FF``; ``offset`` is in the stream."""

    size: int
    offset: int


class PacketDecoder:
    """Turns a byte stream into packets. Feed any pieces; survives junk and splits."""

    def __init__(self, *, max_size: int = 32 * 1024 * 1024) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        self._pos = 0  # start of unconsumed bytes in _buf
        self._offset = 0  # stream offset of _buf[0]
        self.skipped = 0
        self.packets = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a returned packet (a partial packet)."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        if self._pos and self._pos >= len(self._buf) // 2:
            del self._buf[: self._pos]
            self._offset += self._pos
            self._pos = 0
        self._buf += data

    def next_event(self) -> Packet | Junk | NeedData:
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 2:
            return NEED_DATA
        if buf[pos : pos + 2] != SIG:
            found = buf.find(SIG, pos)
            # Keep a trailing 0xCC: it may be the first half of a signature.
            end = found if found >= 0 else (len(buf) - 1 if buf[-1] == SIG[0] else len(buf))
            skipped = end - pos
            if skipped == 0:
                return NEED_DATA
            self._pos = end
            self.skipped += skipped
            return Junk(skipped, self._offset + pos)
        if len(buf) - pos < HEADER_SIZE:
            return NEED_DATA
        _, command, size = HEADER.unpack_from(buf, pos)
        if size > self.max_size + 2:
            self._pos = pos + 2  # drop the signature; resynchronise on the next one
            raise PacketTooLarge(
                f"DATA_SIZE {size} of command 0x{command:04X} is above the limit {self.max_size}",
                size=size,
                limit=self.max_size,
                offset=self._offset + pos,
            )
        if size < 2:
            self._pos = pos + 2
            raise FramingError(
                f"DATA_SIZE {size} cannot hold the end signature", offset=self._offset + pos
            )
        start = pos + HEADER_SIZE
        end = start + size
        if len(buf) < end:
            return NEED_DATA
        if buf[end - 2 : end] == SIG_END:
            return self._take(command, start, end - 2, end, alt=False)
        # The other reading of DATA_SIZE: it counted DATA only.
        if len(buf) < end + 2:
            return NEED_DATA
        if buf[end : end + 2] == SIG_END:
            return self._take(command, start, end, end + 2, alt=True)
        self._pos = pos + 2
        raise FramingError(
            f"command 0x{command:04X}: no end signature FF DD after {size} bytes",
            offset=self._offset + pos,
        )

    def _take(self, command: int, start: int, data_end: int, end: int, *, alt: bool) -> Packet:
        # One copy, through a view released at once (the buffer is resized by the next
        # feed): a slice of the bytearray and then bytes() of it copied a packet twice.
        with memoryview(self._buf) as view:
            data = bytes(view[start:data_end])
        self._pos = end
        self.packets += 1
        return Packet(command, data, alt)

    def __iter__(self) -> Iterator[Packet | Junk]:
        """Every complete packet and junk run now buffered (errors propagate)."""
        while not isinstance(item := self.next_event(), NeedData):
            yield item


# ------------------------------------------------------------------------- encoding


def encode_packet(command: int, data: bytes) -> bytes:
    return HEADER.pack(SIG, command, len(data) + 2) + data + SIG_END


def _json_bytes(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def encode_login(user: str, password: str) -> bytes:
    """COMM_LOGIN_REQ: ``{"id": ..., "password": ...}``."""
    return encode_packet(COMM_LOGIN_REQ, _json_bytes({"id": user, "password": password}))


def encode_register(features: Sequence[str] | None) -> bytes:
    """COMM_REGISTE_REQ. ``None`` registers all (``registerAll: 1``); otherwise each
    wire key (``lprparking``, ``vehiclecount``, ...) is set to 1 with ``registerAll: 0``."""
    body: dict[str, int] = {"registerAll": 1 if features is None else 0}
    for key in features or ():
        body[key] = 1
    return encode_packet(COMM_REGISTE_REQ, _json_bytes(body))


# ------------------------------------------------------------------------- replies


@dataclass(frozen=True, slots=True)
class Reply:
    """COMM_LOGIN_REPLY / COMM_REGISTE_REPLY. ``result`` is the HTTP-like status as text."""

    command: int
    result: str
    body: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.result == "200"


def decode_reply(packet: Packet) -> Reply:
    body = expect_object(lenient_json(packet.data), packet.name)
    result = body.get("result")
    if result is None:
        raise PayloadError(f"{packet.name}: no 'result' in reply")
    return Reply(packet.command, str(result).strip(), body)


# ------------------------------------------------------------------------- recognition


@dataclass(frozen=True, slots=True)
class Chunk:
    chunk_id: bytes
    data: bytes


def split_chunks(data: bytes) -> tuple[list[Chunk], list[str]]:
    """The chunk list of a COMM_RECOG_POST; problems are returned, not raised."""
    chunks: list[Chunk] = []
    problems: list[str] = []
    pos = 0
    while pos < len(data):
        if len(chunks) == MAX_CHUNKS:
            # A camera sends a metadata chunk and two to four pictures; 100,000 tiny chunks
            # would each become a file. The rest is named, not walked.
            problems.append(
                f"more than {MAX_CHUNKS} chunks: {len(data) - pos} bytes from offset {pos} not read"
            )
            break
        if len(data) - pos < CHUNK_HEADER.size:
            problems.append(f"{len(data) - pos} trailing bytes at offset {pos} are not a chunk")
            break
        chunk_id, size = CHUNK_HEADER.unpack_from(data, pos)
        start = pos + CHUNK_HEADER.size
        if start + size > len(data):
            problems.append(
                f"chunk {chunk_id.hex()} at offset {pos} declares {size} bytes, "
                f"{len(data) - start} present; kept what is there"
            )
            chunks.append(Chunk(chunk_id, data[start:]))
            break
        chunks.append(Chunk(chunk_id, data[start : start + size]))
        pos = start + size
    return chunks, problems


MAX_CHUNKS: Final = 1 + MAX_PICTURES + 7  # metadata, pictures, and room for unknown chunks

# (name, struct format or None for the variable plate) in wire order; the
# sizes add up to 112 + plate length, as the guide's packet example says.
_META_FIELDS: Final[tuple[tuple[str, str], ...]] = (
    ("device_id", "16s"),
    ("time_ms", "<Q"),
    ("car_number", "16s"),
    ("vehicle_color", "B"),
    ("plate_color", "B"),
    ("speed", "<H"),
    ("image_count", "B"),
    ("direction", "B"),
    ("region", "32s"),
    ("roi", "B"),
    ("plate_length", "B"),
    ("plate", ""),  # plate_length bytes
    ("vehicle_type", "B"),
    ("confidence", "<f"),
    ("plate_type", "B"),
    ("distance", "<i"),
    ("azimuth", "<f"),
    ("vehicle_count", "<I"),
    ("width", "<H"),
    ("height", "<H"),
    ("x1", "<H"),
    ("y1", "<H"),
    ("x2", "<H"),
    ("y2", "<H"),
    ("brand", "<H"),
)


_PLATE_AT: Final = next(i for i, (n, _) in enumerate(_META_FIELDS) if n == "plate")
# The fixed fields before and after the plate, each run read by one precompiled Struct
# (one call instead of one per field) when the chunk holds them all.
_HEAD: Final = struct.Struct("<" + "".join(f.lstrip("<") for _, f in _META_FIELDS[:_PLATE_AT]))
_TAIL: Final = struct.Struct("<" + "".join(f.lstrip("<") for _, f in _META_FIELDS[_PLATE_AT + 1 :]))
_HEAD_NAMES: Final = tuple(n for n, _ in _META_FIELDS[:_PLATE_AT])
_TAIL_NAMES: Final = tuple(n for n, _ in _META_FIELDS[_PLATE_AT + 1 :])


def _cstr(raw: bytes) -> str:
    """A fixed-size UTF-8 field, NUL padded ("NULL Exclude Fixed Size")."""
    return raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace").strip()


def decode_metadata(data: bytes) -> tuple[dict[str, Any], list[str]]:
    """Every field of the metadata chunk that the bytes hold, in wire order.

    A shorter chunk (older firmware) yields the fields that fit, and the names
    of those that did not in the returned list; a longer one keeps the extra
    bytes as ``extra`` (hex). Raises :class:`MetadataError` only for an empty chunk.
    """
    if not data:
        raise MetadataError("metadata chunk is empty")
    if len(data) >= _HEAD.size:  # the common case: every field there, two calls
        values = dict(zip(_HEAD_NAMES, _HEAD.unpack_from(data), strict=True))
        pos = _HEAD.size
        length = values["plate_length"]
        if pos + length + _TAIL.size <= len(data):
            plate = data[pos : pos + length]
            values["plate"] = plate.decode("utf-8", errors="replace").rstrip("\x00").strip()
            pos += length
            values.update(zip(_TAIL_NAMES, _TAIL.unpack_from(data, pos), strict=True))
            pos += _TAIL.size
            if pos < len(data):
                values["extra"] = data[pos : pos + 256].hex()
                values["extra_length"] = len(data) - pos
            return values, []
    return _metadata_field_by_field(data)


def _metadata_field_by_field(data: bytes) -> tuple[dict[str, Any], list[str]]:
    """:func:`decode_metadata` one field at a time: for a chunk that stops short."""
    values: dict[str, Any] = {}
    pos = 0
    for i, (name, fmt) in enumerate(_META_FIELDS):
        if name == "plate":
            length = values["plate_length"]
            raw = data[pos : pos + length]
            values["plate"] = raw.decode("utf-8", errors="replace").rstrip("\x00").strip()
            if len(raw) < length:
                return values, [f"plate ({len(raw)} of {length} bytes)"] + [
                    n for n, _ in _META_FIELDS[i + 1 :]
                ]
            pos += length
            continue
        size = struct.calcsize(fmt)
        if pos + size > len(data):
            return values, [n for n, _ in _META_FIELDS[i:]]
        (value,) = struct.unpack_from(fmt, data, pos)
        values[name] = value
        pos += size
    if pos < len(data):
        values["extra"] = data[pos : pos + 256].hex()
        values["extra_length"] = len(data) - pos
    return values, []


# Image roles, "Note: If the Evidence function is set": with a plate, the
# pictures are plate + full + evidence...; without, full + evidence...
_ROLES_WITH_PLATE: Final = ("plate", "full", "evidence0", "evidence1")
_ROLES_NO_PLATE: Final = ("full", "evidence0", "evidence1")


def image_roles(count: int, *, has_plate: bool) -> list[str]:
    base = _ROLES_WITH_PLATE if has_plate else _ROLES_NO_PLATE
    return [base[i] if i < len(base) else f"image{i}" for i in range(count)]


def decode_recognition(data: bytes, *, camera: str, received: datetime) -> Read:
    """COMM_RECOG_POST (0x8801) -> a ``plate`` event with its pictures."""
    chunks, problems = split_chunks(data)
    meta_chunk: Chunk | None = None
    images: list[Chunk] = []
    others: list[str] = []
    for c in chunks:
        kind = c.chunk_id[:2]
        if kind == CHUNK_IMAGE:
            images.append(c)
        elif kind == CHUNK_META:
            if meta_chunk is None:
                meta_chunk = c
        else:
            others.append(f"unknown chunk {c.chunk_id.hex()} ({len(c.data)} bytes) skipped")
    if meta_chunk is None:
        raise MetadataError("COMM_RECOG_POST without a metadata chunk (11 FF 00 00)")
    if len(images) > MAX_PICTURES:
        problems.append(
            f"{len(images)} image chunks; the first {MAX_PICTURES} kept (the picture limit)"
        )
        images = images[:MAX_PICTURES]
    problems += others
    meta, missing_fields = decode_metadata(meta_chunk.data)
    # Every field present decodes to a value, never None: ``get`` is None exactly when the
    # chunk stopped short of the field (older firmware), and the event leaves it unset.
    get = meta.get

    plate = get("plate") or _cstr(get("car_number", b"")) or None
    roles: tuple[str, ...] = _ROLES_WITH_PLATE if plate else _ROLES_NO_PLATE
    if len(images) > len(roles):
        roles = tuple(image_roles(len(images), has_plate=bool(plate)))
    # A role for every image: the fixed tuples hold as many as a camera sends.
    pictures = tuple(
        Picture(role, c.data) for role, c in zip(roles, images, strict=False) if c.data
    )
    empty = (
        tuple(
            ImageRef(role, None, 0, None, missing="empty image chunk")
            for role, c in zip(roles, images, strict=False)
            if not c.data
        )
        if len(pictures) < len(images)
        else ()
    )

    raw: dict[str, Any] = dict(meta)
    device = get("device_id")
    if device is not None:
        raw["device_id"] = device.hex()
    for key in _TEXT_FIELDS:
        if key in raw:
            raw[key] = _cstr(raw[key])
    for key in _FLOAT_FIELDS:
        value = raw.get(key)
        if value is not None:
            raw[key] = round(value, 6) if math.isfinite(value) else None  # NaN is not JSON
    raw["images_received"] = len(images)
    if missing_fields:
        raw["metadata_missing"] = missing_fields

    time_ms = get("time_ms")
    details: dict[str, Any] = {"device_id": _guid(device) if device is not None else None}
    mark_no_plate(details, plate)
    if problems:
        details["problems"] = problems
    for key in ("image_count", "distance", "azimuth", "vehicle_count"):
        if key in raw:
            details[key] = raw[key]
    confidence, region, roi = get("confidence"), get("region"), get("roi")
    plate_type, direction, speed = get("plate_type"), get("direction"), get("speed")
    width, height, plate_color = get("width"), get("height"), get("plate_color")
    vehicle_type, vehicle_color, brand = get("vehicle_type"), get("vehicle_color"), get("brand")
    # A short chunk loses a suffix of the fields: with y2 there, x1, y1 and x2 are too.
    box = (meta["x1"], meta["y1"], meta["x2"], meta["y2"]) if "y2" in meta else None
    event = Event(
        kind=Kind.PLATE,
        camera=camera,
        source=Source.TCP,
        time=from_posix(time_ms) if time_ms else None,
        received=received,
        plate=plate,
        confidence=parse_confidence(confidence) if confidence is not None else None,
        country=(_cstr(region) or None) if region is not None else None,
        list=ListType.from_code(plate_type) if plate_type is not None else None,
        direction=Direction.from_code(direction) if direction is not None else None,
        speed_kmh=float(speed) if speed is not None else None,
        roi=roi or None,
        plate_box=box if box is not None and any(box) else None,
        resolution=(width, height) if width is not None and height is not None else None,
        plate_color=Color.from_code(plate_color) if plate_color is not None else None,
        vehicle=Vehicle(
            type=VehicleType.from_code(vehicle_type) if vehicle_type is not None else None,
            color=Color.from_code(vehicle_color) if vehicle_color is not None else None,
            brand=Brand.from_code(brand) if brand is not None else None,
        ),
        images=empty,
        details=details,
        raw=raw,
    )
    return Read(event, pictures)


# The metadata fields that arrive as fixed-size text (NUL padded) and as floats: ``raw``
# keeps them as text and as finite rounded numbers (JSON has no bytes and no NaN).
_TEXT_FIELDS: Final = tuple(n for n, f in _META_FIELDS if f.endswith("s") and n != "device_id")
_FLOAT_FIELDS: Final = tuple(n for n, f in _META_FIELDS if f.endswith("f"))


def _guid(raw: bytes) -> str:
    """The 16-byte device GUID, as the guide prints it (bytes in order, hex)."""
    return raw.hex()


def decode_packet(
    packet: Packet,
    *,
    camera: str,
    received: datetime,
    max_picture: int = 16 * 1024 * 1024,
    parsed: tuple[Any, list[str]] | None = None,
) -> Read | Reply:
    """Any packet a camera sends -> a Reply (login/register) or an Event.

    An unknown command becomes a ``kind: event`` with its payload kept in
    ``raw`` (parsed if it is JSON, else hex of the first 1 KiB), never dropped.
    ``parsed`` is the payload already parsed elsewhere (a heavy one, by the
    worker process) with what was cut from it.
    """
    if packet.command in (COMM_LOGIN_REPLY, COMM_REGISTE_REPLY):
        return decode_reply(packet)
    if packet.command == COMM_RECOG_POST:
        return decode_recognition(packet.data, camera=camera, received=received)
    kind = JSON_POSTS.get(packet.command)
    cut: list[str] = parsed[1] if parsed is not None else []
    details: dict[str, Any] = {} if kind else {"command": f"0x{packet.command:04X}"}
    try:
        body = parsed[0] if parsed is not None else lenient_json(packet.data)
    except PayloadError:
        if kind is not None:
            raise  # a JSON post that is not JSON: a typed error, counted by the input
        body = {"data_hex": packet.data[:1024].hex(), "data_length": len(packet.data)}
    if kind is not None:
        body = expect_object(body, packet.name)
    if isinstance(body, dict):
        # The guide's JSON posts, and an unknown command that carries JSON (kept whole).
        return normalize_json(
            body,
            camera=camera,
            source=Source.TCP,
            received=received,
            kind=kind or Kind.EVENT,
            max_picture=max_picture,
            problems=cut,
            details=details,
        )
    raw, dropped, weight = weighed_raw({"data": body})
    problems = [*cut, dropped] if dropped else cut
    if problems:
        details["problems"] = problems
    event = Event(
        kind=Kind.EVENT,
        camera=camera,
        source=Source.TCP,
        received=received,
        details=details,
        raw=raw,
    )
    return Read(event, weight=weight)


@dataclass(frozen=True, slots=True, kw_only=True)
class Recognition:
    """What a camera puts in a COMM_RECOG_POST; the simulator and fixtures encode it."""

    device_id: bytes = bytes.fromhex("04f912bbce94654089afe83cd88f70be")
    time_ms: int = 1525867890000
    plate: str = "AB1234"
    car_number: str | None = None  # the fixed 16-byte field; defaults to the plate
    vehicle_color: int = 1
    plate_color: int = 1
    speed: int = 100
    direction: int = 0
    region: str = "WOB/ZK"
    roi: int = 1
    vehicle_type: int = 1
    confidence: float = 0.9
    plate_type: int = 3
    distance: int = 30
    azimuth: float = 3.5
    vehicle_count: int = 50
    width: int = 1280
    height: int = 720
    box: tuple[int, int, int, int] = (0, 0, 0, 0)
    brand: int = 6
    images: tuple[bytes, ...] = ()


def encode_metadata(r: Recognition) -> bytes:
    plate = r.plate.encode("utf-8")
    if len(plate) > 255:
        raise ValueError("plate longer than 255 bytes")
    car_number = (r.car_number if r.car_number is not None else r.plate).encode("utf-8")[:16]
    return b"".join(
        (
            r.device_id[:16].ljust(16, b"\x00"),
            struct.pack("<Q", r.time_ms),
            car_number.ljust(16, b"\x00"),
            struct.pack(
                "<BBHBB", r.vehicle_color, r.plate_color, r.speed, len(r.images), r.direction
            ),
            r.region.encode("utf-8")[:32].ljust(32, b"\x00"),
            struct.pack("<BB", r.roi, len(plate)),
            plate,
            struct.pack(
                "<BfBifI",
                r.vehicle_type,
                r.confidence,
                r.plate_type,
                r.distance,
                r.azimuth,
                r.vehicle_count,
            ),
            struct.pack("<HHHHHHH", r.width, r.height, *r.box, r.brand),
        )
    )


def encode_chunk(chunk_id: bytes, data: bytes) -> bytes:
    return CHUNK_HEADER.pack(chunk_id, len(data)) + data


def encode_recognition(r: Recognition) -> bytes:
    """A whole COMM_RECOG_POST packet: metadata chunk, then one image chunk per picture."""
    body = encode_chunk(b"\x11\xff\x00\x00", encode_metadata(r)) + b"".join(
        encode_chunk(b"\x22\xff\x00\x00", img) for img in r.images
    )
    return encode_packet(COMM_RECOG_POST, body)
