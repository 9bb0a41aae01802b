"""The guide's notes 1-7 on which firmware supports which feature."""

from __future__ import annotations

import pytest

from lprmeta.firmware import Firmware, check_features, family_of, parse_firmware, recommendation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45.8.0.3-LPR_XX-r3", Firmware(45, 3)),
        ("T_61.8.0.3_XX-r7", Firmware(61, 7)),
        ("T_45.8.0.3_XX-r9", Firmware(45, 9)),
        ("61.8.0.3-LPR_XX-r13", Firmware(61, 13)),
        ("V1.2.3", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_firmware(text: str | None, expected: Firmware | None) -> None:
    assert parse_firmware(text) == expected


def test_family() -> None:
    assert family_of("MS-C5367-X23LPC") == "C"
    assert family_of("TS2866-X4TPE") == "E"
    assert family_of("TS4466-FPC/P") == "C"
    assert family_of("unknown") is None


@pytest.mark.parametrize(
    ("model", "firmware", "features", "warnings"),
    [
        # note 2: parking needs an FP model and r3 (C) / r7 (E)
        ("TS4466-FPC/P", "45.8.0.3-LPR_XX-r3", ["parking"], []),
        ("TS4466-FPC/P", "45.8.0.3-LPR_XX-r2", ["parking"], ["parking: needs firmware 45.8.0.3"]),
        ("TS2866-X4TPC", "45.8.0.3-LPR_XX-r9", ["parking"], ["parking: needs a TSxxxx-FP model"]),
        ("TS4466-FPE/P", "T_61.8.0.3_XX-r6", ["parking"], ["parking: needs firmware T_61"]),
        # note 3: counting on all but FP models
        ("TS2866-X4TPC", "45.8.0.3-LPR_XX-r3", ["counting"], []),
        (
            "TS4466-FPC/P",
            "45.8.0.3-LPR_XX-r9",
            ["counting"],
            ["counting: not offered on TSxxxx-FP"],
        ),
        # note 4: list events r8 (C) / r7 (E)
        ("MS-C5367-X23LPC", "45.8.0.3-LPR_XX-r7", ["list"], ["list: needs firmware 45.8.0.3"]),
        ("MS-C5367-X23LPE", "T_61.8.0.3_XX-r7", ["list"], []),
        # note 6: violation r6 (C)
        ("MS-C5367-X23LPC", "45.8.0.3-LPR_XX-r6", ["violation", "list"], ["list: needs"]),
        # unknown model or firmware: the guide says nothing, nor do we
        ("Some Camera", "45.8.0.3-LPR_XX-r1", ["parking"], []),
        ("TS2866-X4TPC", "1.0.0", ["parking"], []),
    ],
)
def test_feature_gates(model: str, firmware: str, features: list[str], warnings: list[str]) -> None:
    got = check_features(model, firmware, features)
    assert len(got) == len(warnings)
    for text, start in zip(got, warnings, strict=True):
        assert text.startswith(start), text


def test_recommendation() -> None:
    assert recommendation("MS-C5367-X23LPC", "45.8.0.3-LPR_XX-r8") is not None
    assert recommendation("MS-C5367-X23LPC", "45.8.0.3-LPR_XX-r9") is None
    assert recommendation("TS2866-X4TPE", "T_61.8.0.3_XX-r12") is not None
