"""The decision "too structured to parse on the loop" (``is_heavy``), at its edges."""

from __future__ import annotations

import pytest

from lprmeta.offload import HEAVY_BYTES, HEAVY_SEPARATORS, is_heavy


def body(commas: int, size: int) -> bytes:
    """``commas`` commas spread through ``size`` bytes of base64-like filler."""
    filler = b"QUJD" * (size // 4 + 1)
    step = max(1, size // (commas + 1))
    out = bytearray(filler[:size])
    for i in range(commas):
        out[(i + 1) * step % size] = ord(",")
    assert out.count(b",") == commas
    return bytes(out)


@pytest.mark.parametrize(
    "commas", [0, 1, HEAVY_SEPARATORS - 1, HEAVY_SEPARATORS, HEAVY_SEPARATORS + 1, 50_000]
)
def test_heavy_is_more_commas_than_the_limit_in_a_large_body(commas: int) -> None:
    data = body(commas, HEAVY_BYTES + 4096)
    assert is_heavy(data) is (commas > HEAVY_SEPARATORS)
    assert is_heavy(bytearray(data)) is (commas > HEAVY_SEPARATORS)


def test_a_small_body_is_never_heavy() -> None:
    assert not is_heavy(b"," * HEAVY_BYTES)
    assert is_heavy(b"," * (HEAVY_BYTES + 1))


def test_commas_at_the_very_start_and_end_count() -> None:
    data = bytearray(body(0, HEAVY_BYTES + 10_000))
    data[0:1] = b","
    for i in range(HEAVY_SEPARATORS):
        data[-1 - 2 * i] = ord(",")
    assert data.count(b",") == HEAVY_SEPARATORS + 1
    assert is_heavy(bytes(data))
