"""One vocabulary: every wire spelling lprmeta understands, and the one fold that
compares them.

Owns the tables, nothing else (no I/O, no parsing): field aliases of both HTTP
naming eras and of the TCP JSON posts and ONVIF items, picture roles, event
names, direction words, the colour / vehicle type / list code tables and their
other spellings, ONVIF picture-path item names, and :func:`fold_key`. Each wire
format is a mapping onto these tables: a new vendor adds entries here, not a
parser (STYLE.md, "one vocabulary").

Sources: the vendor guide, "1. TCP Type" (Color, Brand, Vehicle Type tables,
metadata fields), "2. HTTP Type" (the key table, notes 1-3 on the two naming
eras) and "3. RTSP Type" (LicensePlateDetector items).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Final

from .errors import PayloadError

__all__ = [
    "ALIASES",
    "CODES",
    "FIELDS",
    "IMAGE_CANONICAL",
    "IMAGE_ROLES",
    "KIND_WORDS",
    "PICTURE_PATH_KEYS",
    "expect_object",
    "fold_key",
    "mark_no_plate",
]


@functools.lru_cache(maxsize=8192)
def fold_key(text: str) -> str:
    """A name folded for comparison: case, spaces, ``_``, ``-`` and every other
    non-alphanumeric character do not count, so ``plate_color``, ``Plate Color`` and
    ``PlateColor`` agree, and so do ``Mercedes—Benz`` (the guide's em dash),
    ``Police-car`` and ``LYNK&CO``. Cached: cameras send the same few dozen names."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def expect_object(value: Any, what: str = "payload") -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else the typed error every transport raises."""
    if type(value) is not dict and not isinstance(value, Mapping):  # the ABC's check: 0.5 us
        raise PayloadError(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def mark_no_plate(details: dict[str, Any], plate: str | None) -> None:
    """The guide's "no plate" reads (a vehicle seen, no plate read) say so in details."""
    if not plate:
        details["no_plate"] = True


# Code tables: index = wire code, in the order of the guide's C enums. Brand's table is
# the order of lprmeta.events.Brand itself (the guide's traBrandType), added there.
CODES: dict[str, tuple[str, ...]] = {
    "Color": (
        "unknown",
        "black",
        "blue",
        "cyan",
        "gray",
        "green",
        "red",
        "white",
        "yellow",
        "violet",
        "orange",
    ),
    "VehicleType": (
        "none",
        "car",
        "motor",
        "bus",
        "truck",
        "van",
        "suv",
        "forklift",
        "excavator",
        "towtruck",
        "police_car",
        "fire_engine",
        "ambulance",
        "bicycle",
        "e_bike",
        "other",
    ),
    "Direction": ("unknown", "in", "out"),
    # Plate Type 0 is not in the guide; it reads as "no list".
    "ListType": ("unknown", "black", "white", "visitor"),
}

# Other spellings seen in the guide (the HTTP and JSON examples use display names).
ALIASES: dict[str, dict[str, str]] = {
    "Color": {"grey": "gray", "purple": "violet"},
    "VehicleType": {
        "motorbike": "motor",
        "motorcycle": "motor",
        "ebike": "e_bike",
        "policecar": "police_car",
        "fireengine": "fire_engine",
        "sedan": "car",
    },
    # Direction words of every transport. Reading chosen (the guide never relates
    # them): HTTP's "Approach" is TCP's "In" (towards the camera, which at a gate faces
    # incoming traffic) and "Away" is "Out". The camera's own word is kept in raw.
    "Direction": {
        "approach": "in",
        "approaching": "in",
        "away": "out",
        "leaving": "out",
        "entry": "in",
        "exit": "out",
        # Other vendors' and eras' words (issue 16): ONVIF's Approaching/Leaving, Axis's
        # Leave, entering/leaving, inbound/outbound. Reading chosen for forward/reverse:
        # forward is the lane's own direction (in), reverse against it (out).
        "leave": "out",
        "entering": "in",
        "enter": "in",
        "inbound": "in",
        "outbound": "out",
        "incoming": "in",
        "outgoing": "out",
        "forward": "in",
        "reverse": "out",
        "towards": "in",
    },
    "ListType": {
        "blacklist": "black",
        "whitelist": "white",
        "blocklist": "black",
        "allowlist": "white",
        "visitors": "visitor",
    },
    "Brand": {
        "unknow": "unknown",
        "mercedes": "Mercedes-Benz",
        "lynkco": "LYNK&CO",
        "mg": "MorrisGarages",
    },
}


# canonical name -> folded aliases, most specific first. The canonical names are
# what `[cameras.http.fields]` accepts on its left-hand side.
FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "event": ("event", "eventtype", "eventname"),
    "device": ("device", "devicename"),
    "plate": (
        "plate",
        "licenseplate",
        "licenceplate",
        "licenseplateresult",  # ONVIF LicensePlateDetector ("3. RTSP Type")
        "plateno",
        "platenumber",
        "carnumber",
        "licenseplateinfoplatenumber",  # ONVIF Profile M: ElementItem LicensePlateInfo
    ),
    "time_msec": ("timemsec",),
    "time": ("time", "datetime", "timestamp", "recognitiontime"),
    # The old era's `type` is the plate's list type (Black/White/Visitor).
    "list": ("type", "platetype", "listtype", "list", "platelisttype"),
    "speed": ("speed", "vehiclespeed", "licensecarspeed"),
    "direction": ("direction", "drivingdirection", "licensecardirection"),
    "roi": ("detectionregion", "roi", "roiid"),
    # `region` is the plate's country/region in LPR posts ("NLD") but the ROI
    # number in parking posts (1); a number is taken as the ROI.
    "region": (
        "region",
        "country",
        "countryregion",
        "countrycode",
        "licenseplateinfocountrycode",  # ONVIF Profile M (metadatastream.xsd)
    ),
    "confidence": (
        "confidence",
        "licenseplateinfoplatenumberlikelihood",  # Profile M: the plate's own likelihood
        "likelihood",  # Profile M events' SimpleItem
    ),
    "plate_color": ("platecolor", "platecolour"),
    "vehicle_type": ("vehicletype", "vehicleinfotype"),  # Profile M: Appearance/VehicleInfo
    "vehicle_color": ("vehiclecolor", "vehiclecolour"),
    "vehicle_brand": ("vehiclebrand", "brand", "vehiclemodel", "vehicleinfobrand"),
    "resolution_width": ("resolutionwidth", "width"),
    "resolution_height": ("resolutionheight", "height"),
    "x1": ("coordinatex1",),
    "y1": ("coordinatey1",),
    "x2": ("coordinatex2",),
    "y2": ("coordinatey2",),
}

# folded key -> picture role. The canonical names for the field map are the
# guide's HTTP keys (plate_image, full_image, evidence_image0, evidence_image1).
IMAGE_ROLES: Final[Mapping[str, str]] = {
    "plateimage": "plate",
    "platepicture": "plate",
    "platesnap": "plate",
    "platesnapshot": "plate",
    "fullimage": "full",
    "fullpicture": "full",
    "fullsnap": "full",
    "fullsnapshot": "full",
    "evidenceimage0": "evidence0",
    "evidenceimage1": "evidence1",
    "evidencesnap0": "evidence0",
    "evidencesnap1": "evidence1",
    "bkgsnap": "background",
    "backgroundimage": "background",
    "backgroundsnap": "background",
    "snapshot": "snapshot",
    "vehicleimage": "vehicle",
    "vehiclesnap": "vehicle",
}
IMAGE_CANONICAL: Final[Mapping[str, str]] = {
    "plate_image": "plateimage",
    "full_image": "fullimage",
    "evidence_image0": "evidenceimage0",
    "evidence_image1": "evidenceimage1",
}

# Event names (folded) of the guide -> kind (a Kind value), matched by containment, first
# match wins.
KIND_WORDS: Final[tuple[tuple[str, str], ...]] = (
    ("parking", "parking"),
    ("counting", "counting"),
    ("vehiclecount", "counting"),
    ("violation", "violation"),
    ("attribute", "attributes"),
    ("list", "list"),
    ("noplate", "plate"),
    ("lpr", "plate"),
    ("licenseplate", "plate"),
    ("licenceplate", "plate"),
)

# ONVIF item names (folded, by their ending) that carry a picture path or URL.
PICTURE_PATH_KEYS: Final = ("picturepath", "snapshotpath", "imagepath", "pictureurl", "snapshoturl")
