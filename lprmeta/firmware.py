"""Which camera firmware supports which feature: the guide's notes 1-7, as a table.

The guide gates features on the camera's model family and firmware version.
Models ending in ``C`` run the "45" platform (firmware like
``45.8.0.3-LPR_XX-r3``); models ending in ``E`` run the "61" platform
(``T_61.8.0.3_XX-r7``). A requirement is met when the firmware is of the same
platform and its revision (``-rN``) is at least the one the guide names.

Readings chosen where the notes are ambiguous:

* ``TSxxxx-FPC/P``: the ``/P`` is a suffix; the family letter is the one
  before it (C). A model string we cannot place is not judged (no warning).
* Note 5 asks TSxxxx-xxxC models (a "45" platform model) for
  ``T_61.8.0.3_XX-r1``. Taken as printed: the revision is compared on
  whatever platform the firmware reports (r1 is the first revision, so it
  only warns for firmware older than any released with the feature).
* Note 7's "recommended" versions are advice, logged at info level, not a gate.

Pure: no I/O; the RTSP input and ``lprmeta probe`` feed it ONVIF device info.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["FEATURES", "Firmware", "check_features", "family_of", "parse_firmware"]

_FW = re.compile(r"(?:^|[^0-9])(45|61)\.8\.0\.\d+\D.*?r(\d+)\b", re.I)


@dataclass(frozen=True, slots=True, order=True)
class Firmware:
    platform: int  # 45 or 61
    revision: int  # the N of -rN

    def __str__(self) -> str:
        return (
            f"45.8.0.3-LPR_XX-r{self.revision}"
            if self.platform == 45
            else f"T_61.8.0.3_XX-r{self.revision}"
        )


def parse_firmware(text: str | None) -> Firmware | None:
    """``45.8.0.3-LPR_XX-r3`` -> Firmware(45, 3); ``T_61.8.0.3_XX-r7`` -> Firmware(61, 7)."""
    if not text:
        return None
    m = _FW.search(text)
    return Firmware(int(m.group(1)), int(m.group(2))) if m else None


def family_of(model: str | None) -> str | None:
    """The model family letter ("C" or "E"); ``None`` when the model cannot be placed."""
    if not model:
        return None
    code = model.strip().upper().split("/")[0].rstrip()
    if code[-1:] in ("C", "E"):
        return code[-1]
    return None


def _is_fp(model: str) -> bool:
    return "-FP" in model.upper()


@dataclass(frozen=True, slots=True)
class Requirement:
    note: int
    # family -> minimum firmware; a family not listed does not have the feature
    minimum: dict[str, Firmware]
    # model filter: "fp" only parking models, "not_fp" all but those, None any
    models: str | None = None


# feature (as in cameras.tcp.register, plus "evidence") -> the guide's note
FEATURES: Final[dict[str, Requirement]] = {
    "evidence": Requirement(1, {"C": Firmware(45, 1), "E": Firmware(61, 7)}),
    "parking": Requirement(2, {"C": Firmware(45, 3), "E": Firmware(61, 7)}, models="fp"),
    "counting": Requirement(3, {"C": Firmware(45, 3), "E": Firmware(61, 7)}, models="not_fp"),
    "list": Requirement(4, {"C": Firmware(45, 8), "E": Firmware(61, 7)}),
    "attributes": Requirement(5, {"C": Firmware(61, 1)}, models="not_fp"),
    "violation": Requirement(6, {"C": Firmware(45, 6), "E": Firmware(61, 7)}),
}
RECOMMENDED: Final[dict[str, Firmware]] = {"C": Firmware(45, 9), "E": Firmware(61, 13)}


def check_features(model: str | None, firmware: str | None, features: list[str]) -> list[str]:
    """One warning per configured feature this model/firmware does not support.

    Unknown models or firmware give no warning: we only say what the guide says.
    """
    family, fw = family_of(model), parse_firmware(firmware)
    if family is None or fw is None or model is None:
        return []
    out: list[str] = []
    for feature in features:
        req = FEATURES.get(feature)
        if req is None:
            continue
        if req.models == "fp" and not _is_fp(model):
            out.append(
                f"{feature}: needs a TSxxxx-FP model (guide note {req.note}); {model} is not"
            )
            continue
        if req.models == "not_fp" and _is_fp(model):
            out.append(f"{feature}: not offered on TSxxxx-FP models (guide note {req.note})")
            continue
        minimum = req.minimum.get(family)
        if minimum is None:
            out.append(f"{feature}: not offered on {family} models (guide note {req.note})")
        elif fw.revision < minimum.revision:
            out.append(
                f"{feature}: needs firmware {minimum} or later (guide note {req.note}); "
                f"this camera runs {firmware}"
            )
    return out


def recommendation(model: str | None, firmware: str | None) -> str | None:
    """The guide's note 7: the firmware it recommends before integration, if newer."""
    family, fw = family_of(model), parse_firmware(firmware)
    if family is None or fw is None:
        return None
    wanted = RECOMMENDED[family]
    if fw.platform == wanted.platform and fw.revision < wanted.revision:
        return f"the guide recommends firmware {wanted} or later for {family} models (note 7)"
    return None
