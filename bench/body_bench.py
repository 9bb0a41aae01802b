"""The HTTP receiver's parse of a camera's body, with its pictures cut out before the
parse (what the receiver does) against the whole body parsed by orjson (what it did
until 2026-11-30, and what it still does with a body that is not of that kind), in the
same run (issue 17).

Each pass runs ``--bodies`` different bodies of ``http_bench.py`` (~134 KB, two
pictures, both naming eras) through the parse and ``parse_post`` (the picture decoded,
the event built); a body is seen once per pass, so its bytes come from memory, as on the
receiver's loop where a fresh body has just pushed everything else out of the cache.
The two ways alternate, pass by pass (ABBA), pinned to one core; the medians and the
median of the pairs' ratios are printed.

    python bench/body_bench.py [--bodies 1000] [--passes 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from _common import machine, pin, save, table
from http_bench import templates

from lprmeta.envelope import Read
from lprmeta.offload import is_heavy, parse_on_loop
from lprmeta.protocol.http import parse_post
from lprmeta.protocol.values import lenient_json


def whole(body: bytes) -> Read:
    """Before: is_heavy() (every byte looked at for commas), then orjson on all of it."""
    assert not is_heavy(body)
    return parse_post(lenient_json(body), camera="bench", received=datetime.now(UTC))


def cut(body: bytes) -> Read:
    """Now: the receiver's own parse (pictures cut out, decoded from the body's bytes)."""
    parsed = parse_on_loop(body)
    assert parsed is not None
    return parse_post(parsed[0], camera="bench", received=datetime.now(UTC))


def one_pass(way: Callable[[bytes], Read], bodies: list[bytes]) -> float:
    start = time.perf_counter()
    for body in bodies:
        way(body)
    return (time.perf_counter() - start) / len(bodies) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bodies", type=int, default=1000)
    ap.add_argument("--passes", type=int, default=10)
    args = ap.parse_args()
    pin({0})
    bodies = [body for body, _ in templates(args.bodies)]
    for a, b in zip(whole(bodies[1]).pictures, cut(bodies[1]).pictures, strict=True):
        assert (a.role, a.data) == (b.role, b.data)  # the same pictures either way
    times: dict[str, list[float]] = {"whole": [], "cut": []}
    for i in range(args.passes):
        order = [("whole", whole), ("cut", cut)]
        for name, way in order if i % 2 == 0 else reversed(order):
            times[name].append(one_pass(way, bodies))
    ratios = [c / w for w, c in zip(times["whole"], times["cut"], strict=True)]
    result: dict[str, Any] = {
        "machine": machine(),
        "bodies": args.bodies,
        "body_bytes": len(bodies[0]),
        "us_per_body": {k: [round(x, 1) for x in v] for k, v in times.items()},
        "median_us": {k: round(statistics.median(v), 1) for k, v in times.items()},
        "median_ratio": round(statistics.median(ratios), 3),
    }
    save("body", result)
    print(
        f"HTTP body parse on {result['machine']}: {args.bodies} bodies of "
        f"{result['body_bytes']} bytes, {args.passes} passes"
    )
    us = result["median_us"]
    rows = [
        ("whole body parsed by orjson (before), a body", f"{us['whole']} us", "", ""),
        ("pictures cut out first (the receiver), a body", f"{us['cut']} us", "", ""),
        ("cut / whole, median of the passes' ratios", f"{result['median_ratio']:.2f}", "", ""),
    ]
    print(table(rows))


if __name__ == "__main__":
    main()
