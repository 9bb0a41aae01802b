"""Fuzzing, short budget: every saved case, then mutations of them (hypothesis).

Any input gives events or a typed error, never another exception. The long
run is ``bench/fuzz.py`` (atheris, coverage-guided, minutes per parser)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .fuzz_targets import TARGETS, seeds

CASES = [(name, path) for name in TARGETS for path in seeds(name)]


@pytest.mark.parametrize(("target", "path"), CASES, ids=lambda c: getattr(c, "name", c))
def test_saved_case(target: str, path: Path) -> None:
    data = path.read_bytes()
    TARGETS[target](data)
    TARGETS[target](b"\x00" + data)  # and in one-byte pieces / fragments
    TARGETS[target](b"\x07" + data)


@st.composite
def mutated(draw: st.DrawFn, target: str) -> bytes:
    """A saved case with a few byte-level mutations: what breaks framing and parsing."""
    data = bytearray(draw(st.sampled_from([p.read_bytes() for p in seeds(target)])))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splice", "repeat"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[at:]
        elif op == "splice":
            data[at:at] = draw(
                st.sampled_from(
                    [b"\xcc\xff", b"\xff\xdd", b"<", b"</", b'"', b"[", b"\\u", b"&", b"="]
                )
            )
        elif op == "repeat":
            data[at:at] = bytes(data[at : at + 64]) * draw(st.integers(2, 4))
    return bytes(data)


FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(mutated("tcp"))
def test_fuzz_tcp(data: bytes) -> None:
    TARGETS["tcp"](data)


@FUZZ
@given(mutated("onvif"))
def test_fuzz_onvif(data: bytes) -> None:
    TARGETS["onvif"](data)


@FUZZ
@given(mutated("http"))
def test_fuzz_http(data: bytes) -> None:
    TARGETS["http"](data)


@FUZZ
@given(st.sampled_from(list(TARGETS)), st.binary(max_size=2048))
def test_fuzz_raw_bytes(target: str, data: bytes) -> None:
    TARGETS[target](data)
