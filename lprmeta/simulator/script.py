"""What the simulated camera says: plate reads and JSON posts, rendered per transport.

A :class:`Read` is one car passing; it renders to a TCP COMM_RECOG_POST, to an
HTTP JSON body of either naming era, and to an ONVIF notification. Posts
(parking, counting, list, attributes, violation) follow the guide's examples.
Everything is deterministic for a given seed, so tests and benchmarks can
check what arrives against what was sent.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from ..events import Brand, Color, VehicleType
from ..protocol.tcp import Recognition

__all__ = [
    "Read",
    "ReadFactory",
    "analytics_document",
    "counting_post",
    "fake_jpeg",
    "list_post",
    "onvif_notification",
    "parking_post",
]

_COLOR_NAMES = [c.value.capitalize() for c in Color][1:]


# A real 64x32 baseline JPEG (a grey plate with dark bars) after its SOI: quantisation
# and Huffman tables, frame, scan, EOI. Encoded once with PyAV's mjpeg encoder.
_PICTURE = base64.b64decode(
    "/9sAQwAIBgYHBgcICAgICAgJCQkKCgoJCQkJCgoKCgoKDAwMCgoKCgoKCgwMDAwNDg0NDQwNDg4PDw8SEhER"
    "FRUVGRkf/90ABAAE/8QBogAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoLAQADAQEBAQEBAQEBAAAAAAAA"
    "AQIDBAUGBwgJCgsQAAIBAwMCBAMFBQQEAAABfQECAwAEEQUSITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNi"
    "coIJChYXGBkaJSYnKCkqNDU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6g4SFhoeIiYqS"
    "k5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2drh4uPk5ebn6Onq8fLz9PX29/j5"
    "+hEAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcY"
    "GRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJma"
    "oqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/8AAEQgAIABA"
    "AwEiAAIRAAMRAP/aAAwDAQACEQMRAD8AwNL8M6lrXm/Ybfz/ACdnmfvIY9vmbtv+tdM52npnpzWj/wAK88R/"
    "9A//AMmbP/4/XZ/DaPy/7T9/sv8A7Xqh8JfFeteJ/wC2P7Vu/tX2b7F5P7i3i2eb9p3/AOoijznYv3s4xxQB"
    "zf8AwrzxH/0D/wDyZs//AI/R/wAK88R/9A//AMmbP/4/XSfCXxXrXif+2P7Vu/tX2b7F5P7i3i2eb9p3/wCo"
    "ijznYv3s4xxR8JfFeteJ/wC2P7Vu/tX2b7F5P7i3i2eb9p3/AOoijznYv3s4xxQBzf8AwrzxH/0D/wDyZs//"
    "AI/R/wAK88R/9A//AMmbP/4/XSfCXxXrXif+2P7Vu/tX2b7F5P7i3i2eb9p3/wCoijznYv3s4xxR8JfFeteJ"
    "/wC2P7Vu/tX2b7F5P7i3i2eb9p3/AOoijznYv3s4xxQBzf8AwrzxH/0D/wDyZs//AI/WdqnhnUtF8r7db+R5"
    "2/y/3kMm7y9u7/VO+Mbh1x14rtfhL4r1rxP/AGx/at39q+zfYvJ/cW8WzzftO/8A1EUec7F+9nGOKv8AxJj8"
    "z+zPb7V/7QoA/9DsfAsfl/b/AH+z/wDtasT4S+FNa8Mf2x/atp9l+0/YvJ/f28u/yvtO/wD1EsmMb1+9jOeK"
    "u2dxd6fv+zyeX5m3d8iNnbnH31bpk9Ktf21q3/Pz/wCQof8A43QBkfCXwprXhj+2P7VtPsv2n7F5P7+3l3+V"
    "9p3/AOolkxjev3sZzxR8JfCmteGP7Y/tW0+y/afsXk/v7eXf5X2nf/qJZMY3r97Gc8Vr/wBtat/z8/8AkKH/"
    "AON0f21q3/Pz/wCQof8A43QBkfCXwprXhj+2P7VtPsv2n7F5P7+3l3+V9p3/AOolkxjev3sZzxR8JfCmteGP"
    "7Y/tW0+y/afsXk/v7eXf5X2nf/qJZMY3r97Gc8Vr/wBtat/z8/8AkKH/AON0f21q3/Pz/wCQof8A43QBkfCX"
    "wprXhj+2P7VtPsv2n7F5P7+3l3+V9p3/AOolkxjev3sZzxW346j8z7B7faP/AGjUf9tat/z8/wDkKH/43VW8"
    "uLvUNn2iTzPL3bfkRcbsZ+4q9cDrQB//2Q=="
)
_JFIF = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"


def fake_jpeg(size: int = 2048, *, seed: int = 0) -> bytes:
    """A JPEG of exactly ``size`` bytes; distinct seeds give distinct bytes.

    From about 1.4 KB up it is a real picture a browser shows (64x32 pixels):
    SOI, APP0 JFIF, comment segments of random filler, then the picture's tables
    and scan. Below that it is only JPEG-shaped (SOI, APP0, filler, EOI): what
    lprmeta checks (the SOI marker) and hashes is all there.
    """
    rng = random.Random(seed)
    fill = size - len(_JFIF) - len(_PICTURE)
    if fill < 0:
        body = rng.randbytes(max(0, size - len(_JFIF) - 2)).replace(b"\xff", b"\xfe")
        return _JFIF + body + b"\xff\xd9"
    segments = []
    while fill >= 4:
        n = min(fill - 4, 65533)
        data = rng.randbytes(n).replace(b"\xff", b"\xfe")  # no stray markers
        segments.append(b"\xff\xfe" + (n + 2).to_bytes(2, "big") + data)
        fill -= n + 4
    # 1-3 bytes left: fill bytes (0xFF), which may precede any marker.
    return _JFIF + b"".join(segments) + b"\xff" * fill + _PICTURE


@dataclass(frozen=True, slots=True, kw_only=True)
class Read:
    plate: str
    time: datetime
    seq: int = 0
    country: str = "NLD"
    speed: int = 30
    direction: int = 1  # 1 in (Approach), 2 out (Away)
    roi: int = 1
    confidence: float = 0.9
    list_type: int = 2  # 1 black, 2 white, 3 visitor
    plate_color: int = 7  # white
    vehicle_color: int = 6  # red
    vehicle_type: int = 1  # car
    brand: int = 12  # Volkswagen
    resolution: tuple[int, int] = (1920, 1080)
    box: tuple[int, int, int, int] = (539, 736, 699, 874)
    plate_jpeg: bytes = b""
    full_jpeg: bytes = b""
    evidence_jpegs: tuple[bytes, ...] = ()

    @property
    def pictures(self) -> list[bytes]:
        """In the order the guide gives for a read with a plate: plate, full, evidence."""
        return [p for p in (self.plate_jpeg, self.full_jpeg, *self.evidence_jpegs) if p]

    def picture_hashes(self) -> set[str]:
        return {hashlib.sha256(p).hexdigest() for p in self.pictures}

    # ----------------------------------------------------------------- TCP
    def recognition(self) -> Recognition:
        return Recognition(
            time_ms=int(self.time.timestamp() * 1000),
            plate=self.plate,
            vehicle_color=self.vehicle_color,
            plate_color=self.plate_color,
            speed=self.speed,
            direction=self.direction,
            region=self.country,
            roi=self.roi,
            vehicle_type=self.vehicle_type,
            confidence=self.confidence,
            plate_type=self.list_type,
            width=self.resolution[0],
            height=self.resolution[1],
            box=self.box,
            brand=self.brand,
            images=tuple(self.pictures),
        )

    # ----------------------------------------------------------------- RTSP
    def onvif_document(self, picture_path: str | None = None) -> bytes:
        """The notification the guide's "3. RTSP Type" shows, for this read."""
        return onvif_notification(
            plate=self.plate,
            when=self.time,
            picture_path=picture_path,
            speed=f"{self.speed}km/h",
            direction=self.direction,
        )

    def onvif_documents(self, flavour: str, picture_path: str | None = None) -> list[bytes]:
        """What a camera of this ONVIF flavour sends on its metadata track for this read:
        Milesight's notification; Profile M's plate event; or Profile M scene
        descriptions (three frames of the car, the plate read better each time, the
        car leaving in the last)."""
        if flavour == "milesight":
            return [self.onvif_document(picture_path)]
        if flavour == "profile-m-events":
            return [profile_m_event(self, picture_path)]
        if flavour == "profile-m-frames":
            return profile_m_frames(self, picture_path)
        if flavour == "axis":
            return [axis_alpv_event(self)]
        raise ValueError(f"unknown ONVIF flavour {flavour!r}")

    # ----------------------------------------------------------------- HTTP
    def http_body(self, *, era: str = "new", device: str = "Network Camera") -> dict[str, Any]:
        """The guide's HTTP key table. ``era="old"`` spells keys ``abc_def`` (before
        45.8.0.3-LPR_XX-r1); ``"new"`` spells the newer ones ``Abc Def``."""
        t = self.time.strftime("%Y-%m-%d %H:%M:%S.") + f"{self.time.microsecond // 1000:03d}"
        old = era == "old"
        body: dict[str, Any] = {
            "device": device,
            "time": t,
            "time_msec": t,
            "plate": self.plate,
            "type": ["", "Black", "White", "Visitor"][self.list_type],
            "speed": str(self.speed),
            "direction": "Approach" if self.direction == 1 else "Away",
            "detection_region": self.roi,
            "region": self.country,
            "resolution_width": self.resolution[0],
            "resolution_height": self.resolution[1],
            "coordinate_x1": self.box[0],
            "coordinate_y1": self.box[1],
            "coordinate_x2": self.box[2],
            "coordinate_y2": self.box[3],
            "confidence": f"{self.confidence * 100:.0f}",
            ("plate_color" if old else "Plate Color"): _COLOR_NAMES[self.plate_color - 1],
            ("vehicle_type" if old else "Vehicle Type"): VehicleType.from_code(
                self.vehicle_type
            ).value.capitalize(),
            ("vehicle_color" if old else "Vehicle Color"): _COLOR_NAMES[self.vehicle_color - 1],
            ("vehicle_brand" if old else "Vehicle Brand"): Brand.from_code(self.brand).value,
        }
        for key, pic in (("plate_image", self.plate_jpeg), ("full_image", self.full_jpeg)):
            if pic:
                body[key] = base64.b64encode(pic).decode()
        for i, pic in enumerate(self.evidence_jpegs):
            body[f"evidence_image{i}"] = base64.b64encode(pic).decode()
        return body


@dataclass
class ReadFactory:
    """Plausible reads, deterministic per seed. ``picture_bytes`` sizes each picture."""

    seed: int = 1
    picture_bytes: int = 2048
    with_full: bool = True
    countries: tuple[str, ...] = ("NLD", "DEU", "BEL", "FRA")
    _n: int = field(default=0, init=False)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def plate(self) -> str:
        r = self._rng
        letters = "BDFGHJKLNPRSTVXZ"
        return (
            "".join(r.choice(letters) for _ in range(2))
            + f"{r.randrange(100, 999)}"
            + "".join(r.choice(letters) for _ in range(2))
        )

    def next(self, *, plate: str | None = None, when: datetime | None = None) -> Read:
        self._n += 1
        n, r = self._n, self._rng
        half = self.picture_bytes // 2 if self.with_full else self.picture_bytes
        return Read(
            plate=plate or self.plate(),
            time=when or datetime.now(UTC),
            seq=n,
            country=r.choice(self.countries),
            speed=r.randrange(5, 60),
            direction=r.choice((1, 2)),
            roi=r.randrange(1, 5),
            confidence=round(r.uniform(0.7, 0.99), 2),
            list_type=r.choice((1, 2, 3)),
            plate_color=r.randrange(1, 11),
            vehicle_color=r.randrange(1, 11),
            vehicle_type=r.randrange(1, 16),
            brand=r.randrange(1, 72),
            plate_jpeg=fake_jpeg(max(64, half // 4), seed=self.seed * 1_000_003 + n * 2),
            full_jpeg=fake_jpeg(half, seed=self.seed * 1_000_003 + n * 2 + 1)
            if self.with_full
            else b"",
        )

    def __iter__(self) -> Iterator[Read]:
        while True:
            yield self.next()


_ONVIF_NS = (
    'xmlns:tt="http://www.onvif.org/ver10/schema" '
    'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" '
    'xmlns:tns1="http://www.onvif.org/ver10/topics"'
)


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def onvif_notification(
    *,
    plate: str,
    when: datetime,
    picture_path: str | None = None,
    speed: str = "25km/h",
    direction: int = 1,
    topic: str = "tns1:RuleEngine/LicensePlateDetector/LicensePlate",
) -> bytes:
    """A ``tt:MetadataStream`` document with one LicensePlateDetector notification."""
    data = [("LicenseCarSpeed", speed), ("LicenseCarDirection", str(direction))]
    if picture_path is not None:
        data.insert(0, ("LicensePlatePicturePath", picture_path))
    items = "".join(f"<tt:SimpleItem Name={quoteattr(k)} Value={quoteattr(v)}/>" for k, v in data)
    return (
        f"<tt:MetadataStream {_ONVIF_NS}><tt:Event><wsnt:NotificationMessage>"
        '<wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">'
        f"{escape(topic)}</wsnt:Topic><wsnt:Message>"
        f'<tt:Message UtcTime="{_utc(when)}" PropertyOperation="Changed"><tt:Source>'
        '<tt:SimpleItem Name="VideoSourceConfigurationToken" Value="VideoSourceToken"/>'
        '<tt:SimpleItem Name="VideoAnalyticsConfigurationToken" Value="VideoAnalyticsToken"/>'
        '<tt:SimpleItem Name="Rule" Value="MyLicensePlateDetectorRule"/></tt:Source>'
        f'<tt:Key><tt:SimpleItem Name="LicensePlateResult" Value={quoteattr(plate)}/></tt:Key>'
        f"<tt:Data>{items}</tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>"
        "</tt:Event></tt:MetadataStream>"
    ).encode()


ONVIF_FLAVOURS = ("milesight", "profile-m-events", "profile-m-frames", "axis")
_AXIS_LISTS = {1: "Block list", 2: "Allow list", 3: ""}


def axis_alpv_event(read: Read) -> bytes:
    """Axis License Plate Verifier's real-time event (``ALPV.AllPlates``, the items of
    VAPIX's "License plate verifier API"), with the plate picture inline (base64)."""
    items = [
        ("carState", "new"),
        ("carID", str(read.seq)),
        ("carMoveDirection", "in" if read.direction == 1 else "out"),
        ("text", read.plate),
        ("country", read.country),
        ("listName", _AXIS_LISTS.get(read.list_type, "")),
        ("action", "No action"),
        ("consumedTime", "97"),
    ]
    if read.plate_jpeg:
        items.append(("plateImage", base64.b64encode(read.plate_jpeg).decode()))
    data = "".join(f"<tt:SimpleItem Name={quoteattr(k)} Value={quoteattr(v)}/>" for k, v in items)
    return (
        f'<tt:MetadataStream {_ONVIF_NS} xmlns:tnsaxis="http://www.axis.com/2009/event/topics">'
        "<tt:Event><wsnt:NotificationMessage>"
        '<wsnt:Topic Dialect="http://docs.oasis-open.org/wsn/t-1/TopicExpression/Simple">'
        "tnsaxis:CameraApplicationPlatform/ALPV.AllPlates</wsnt:Topic><wsnt:Message>"
        f'<tt:Message UtcTime="{_utc(read.time)}"><tt:Source/><tt:Data>{data}</tt:Data>'
        "</tt:Message></wsnt:Message></wsnt:NotificationMessage></tt:Event></tt:MetadataStream>"
    ).encode()


_VEHICLE_TYPES = {1: "Car", 2: "Truck", 3: "Bus", 4: "Motorcycle", 5: "Bicycle"}


def profile_m_event(read: Read, picture_path: str | None = None) -> bytes:
    """ONVIF Profile M's plate event (``tns1:RuleEngine/Recognition/LicensePlate``), the
    plate in an ElementItem ``LicensePlateInfo`` (metadatastream.xsd), with the event's
    Likelihood and, when there is one, the picture's path."""
    extra = (
        f'<tt:SimpleItem Name="ImagePath" Value={quoteattr(picture_path)}/>' if picture_path else ""
    )
    return (
        f"<tt:MetadataStream {_ONVIF_NS}><tt:Event><wsnt:NotificationMessage>"
        '<wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">'
        "tns1:RuleEngine/Recognition/LicensePlate</wsnt:Topic><wsnt:Message>"
        f'<tt:Message UtcTime="{_utc(read.time)}" PropertyOperation="Changed"><tt:Source>'
        '<tt:SimpleItem Name="VideoSource" Value="VideoSource_1"/>'
        '<tt:SimpleItem Name="Rule" Value="LPR"/></tt:Source>'
        f'<tt:Key><tt:SimpleItem Name="ObjectId" Value="{read.seq}"/></tt:Key><tt:Data>'
        '<tt:ElementItem Name="LicensePlateInfo"><tt:LicensePlateInfo>'
        f'<tt:PlateNumber Likelihood="{read.confidence:.2f}">{escape(read.plate)}'
        f'</tt:PlateNumber><tt:CountryCode Likelihood="0.9">{escape(read.country)}'
        "</tt:CountryCode></tt:LicensePlateInfo></tt:ElementItem>"
        f'<tt:SimpleItem Name="Likelihood" Value="{read.confidence:.2f}"/>{extra}'
        "</tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>"
        "</tt:Event></tt:MetadataStream>"
    ).encode()


def profile_m_frames(read: Read, picture_path: str | None = None) -> list[bytes]:
    """Three Profile M scene descriptions of one car passing: a vehicle object and its
    plate object (``Parent``), the plate misread then read with the read's confidence,
    the crop inline (``Image``) in the best frame, the scene picture's path
    (``SceneImageRef``), and the car deleted from the scene in the last frame."""
    vehicle, plate_id = read.seq * 2 + 1, read.seq * 2 + 2
    misread = read.plate[:-1] + ("0" if read.plate[-1] != "0" else "8")
    crop = base64.b64encode(read.plate_jpeg).decode() if read.plate_jpeg else ""
    kind = _VEHICLE_TYPES.get(read.vehicle_type % 5 + 1, "Car")
    docs = []
    for n, (text, likelihood) in enumerate(
        ((misread, 0.41), (read.plate, read.confidence), (misread, 0.52))
    ):
        when = _utc(read.time + timedelta(milliseconds=100 * n))
        image = f"<tt:Image>{crop}</tt:Image>" if n == 1 and crop else ""
        scene = (
            f"<tt:SceneImageRef>{escape(picture_path)}</tt:SceneImageRef>"
            if n == 1 and picture_path
            else ""
        )
        gone = (
            f'<tt:ObjectTree><tt:Delete ObjectId="{vehicle}"/>'
            f'<tt:Delete ObjectId="{plate_id}"/></tt:ObjectTree>'
            if n == 2
            else ""
        )
        docs.append(
            (
                f"<tt:MetadataStream {_ONVIF_NS}><tt:VideoAnalytics>"
                f'<tt:Frame UtcTime="{when}"><tt:Object ObjectId="{vehicle}"><tt:Appearance>'
                '<tt:Class><tt:Type Likelihood="0.95">Vehicle</tt:Type></tt:Class>'
                f'<tt:VehicleInfo><tt:Type Likelihood="0.9">{kind}</tt:Type></tt:VehicleInfo>'
                f"</tt:Appearance><tt:Behaviour><tt:Speed>{read.speed / 3.6:.1f}</tt:Speed>"
                f'</tt:Behaviour></tt:Object><tt:Object ObjectId="{plate_id}" '
                f'Parent="{vehicle}"><tt:Appearance><tt:LicensePlateInfo>'
                f'<tt:PlateNumber Likelihood="{likelihood:.2f}">{escape(text)}</tt:PlateNumber>'
                f'<tt:CountryCode Likelihood="0.9">{escape(read.country)}</tt:CountryCode>'
                f"</tt:LicensePlateInfo>{image}</tt:Appearance></tt:Object>{gone}{scene}"
                "</tt:Frame></tt:VideoAnalytics></tt:MetadataStream>"
            ).encode()
        )
    return docs


def analytics_document(when: datetime, *, objects: int = 2, seed: int = 0) -> bytes:
    """A scene description (``tt:VideoAnalytics``), as cameras send with every video frame."""
    rng = random.Random(seed)
    body = "".join(
        f'<tt:Object ObjectId="{i}"><tt:Appearance><tt:Shape>'
        f'<tt:BoundingBox left="{rng.random():.3f}" top="{rng.random():.3f}" '
        f'right="{rng.random():.3f}" bottom="{rng.random():.3f}"/>'
        f'<tt:CenterOfGravity x="{rng.random():.3f}" y="{rng.random():.3f}"/></tt:Shape>'
        '<tt:Class><tt:Type Likelihood="0.8">Vehicle</tt:Type></tt:Class></tt:Appearance>'
        "</tt:Object>"
        for i in range(objects)
    )
    return (
        f'<tt:MetadataStream {_ONVIF_NS}><tt:VideoAnalytics><tt:Frame UtcTime="{_utc(when)}">'
        f"{body}</tt:Frame></tt:VideoAnalytics></tt:MetadataStream>"
    ).encode()


def parking_post(read: Read, *, region: int = 1, state: int = 1) -> dict[str, Any]:
    """COMM_PARKING_POST, trigger mode, after the guide's example."""
    return {
        "event": "Parking Detection",
        "device": "Network Camera",
        "time": read.time.strftime("%Y-%m-%d %H:%M:%S"),
        "report_type": "trigger",
        "region": region,
        "region name": f"ROI{region}",
        "state": state,
        "Length of Parking": "00:00:31",
        "License Plate": read.plate,
        "Plate Color": _COLOR_NAMES[read.plate_color - 1],
        "Vehicle Type": "Car",
        "Vehicle Color": _COLOR_NAMES[read.vehicle_color - 1],
        "Vehicle Brand": Brand.from_code(read.brand).value,
        "Object tracking box_x1": 732,
        "Object tracking box_y1": 885,
        "Object tracking box_x2": 1193,
        "Object tracking box_y2": 1558,
        "plateSnap": base64.b64encode(read.plate_jpeg).decode(),
        "bkgSnap": base64.b64encode(read.full_jpeg or read.plate_jpeg).decode(),
    }


def counting_post(when: datetime, *, cars: int = 1, region: int = 1) -> dict[str, Any]:
    """COMM_COUNTING_POST, instant mode, after the guide's example."""
    return {
        "event": "Vehicle Counting",
        "device": "Network Camera",
        "time": when.strftime("%Y-%m-%d %H:%M:%S"),
        "region": region,
        "region name": f"ROI_{region}",
        "All-Car": cars,
        "All-Motorcycle": 0,
        "All-Non-motor": 0,
        "Car": cars,
        "Motorbike": 0,
        "Bus": 0,
        "Truck": 0,
        "Van": 0,
        "SUV": 0,
        "Fire engine": 0,
        "Ambulance": 0,
        "Bicycle": 0,
        "Other": 0,
        "snapshot": base64.b64encode(fake_jpeg(2048, seed=cars)).decode(),
    }


def list_post(read: Read, event: str = "List Event") -> dict[str, Any]:
    """List / Attributes / Violation posts: the guide shows no body; this one carries
    the LPR fields in the newer spelling, as those events do on the camera's page."""
    return {
        "event": event,
        "device": "Network Camera",
        "time": read.time.strftime("%Y-%m-%d %H:%M:%S"),
        "License Plate": read.plate,
        "Plate Type": ["", "Black", "White", "Visitor"][read.list_type],
        "Plate Color": _COLOR_NAMES[read.plate_color - 1],
        "plate_image": base64.b64encode(read.plate_jpeg).decode(),
    }
