"""Why the RTSP daemon's event loop spends ~2.5x the pipeline's time per document.

In one process, no sockets: a Milesight plate document -> ``document_events`` -> its
event's JSON line (``Event.to_json`` + orjson), timed per document, in three settings:

* ``warm``: one document after another, as ``pipeline_bench.py`` feeds them;
* ``cold``: before each document, 8 MiB of memory is written and 2 MiB copied, which
  empties the core's caches as 200 RTSP readers' demuxing does between two documents
  that the loop handles (the daemon and its readers share one core in ``rtsp_bench.py``);
* ``other Python``: other Python objects are touched in between instead (the loop's own
  other work): a control, to show it is the caches and not the interpreter.

Then the caches are emptied once per batch of 1, 2, 4, 8 and 16 documents: what a
document costs when the loop handles several per wake-up (the RTSP inbox drains what
has arrived; ``linger`` decides how much that is under load).

Measured 2026-11-30 on this machine, two runs: warm 45.6 / 35.8 us a document, cold
120.6 / 108.5 us (2.6x / 3.0x), other Python 51.8 / 48.1 us; per document by batch of
1, 2, 4, 8, 16: 165, 86, 77, 70, 58 / 113, 77, 76, 72, 56 us. Only the time in the
documents' own work is counted, not the emptying.

    python bench/cold_bench.py [--documents 4000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from _common import ROOT, machine, pin, save

sys.path.insert(0, str(ROOT))

import orjson

from lprmeta.protocol.onvif import document_events
from lprmeta.simulator.script import onvif_notification

_MEMORY = bytearray(8 * 1024 * 1024)
_PAGES = b"\x01" * (len(_MEMORY) // 4096)
_OBJECTS = [{f"k{i}": [i] * 10} for i in range(20_000)]


def empty_caches() -> None:
    """Write a byte in every page of 8 MiB and copy 2 MiB: the core's caches hold
    something else afterwards."""
    _MEMORY[::4096] = _PAGES
    bytes(_MEMORY[: 2 * 1024 * 1024])


def other_python() -> None:
    for obj in _OBJECTS[::7]:
        obj.get("x")


def one(doc: bytes) -> None:
    for read in document_events(doc, camera="cam", received=datetime.now(UTC))[0]:
        orjson.dumps(read.event.to_json())


def per_document(docs: list[bytes], batch: int, between: Callable[[], None] | None) -> float:
    """Microseconds per document, counting only the documents' own work."""
    spent = 0.0
    for i in range(0, len(docs), batch):
        if between is not None:
            between()
        start = time.perf_counter()
        for doc in docs[i : i + batch]:
            one(doc)
        spent += time.perf_counter() - start
    return spent / len(docs) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--documents", type=int, default=4000)
    args = ap.parse_args()
    pin({0})
    now = datetime.now(UTC)
    docs = [
        onvif_notification(plate=f"R{i:07d}", when=now, picture_path=None)
        for i in range(args.documents)
    ]
    for doc in docs[:10]:  # the document shape learned, the caches of lru's filled
        one(doc)
    result: dict[str, Any] = {"machine": machine(), "documents": args.documents}
    settings: list[tuple[str, Callable[[], None] | None]] = [
        ("warm", None),
        ("cold", empty_caches),
        ("other Python", other_python),
    ]
    for name, between in settings:
        result[name] = round(per_document(docs, 1, between), 1)
        print(f"{name:13} {result[name]:7.1f} us a document", flush=True)
    result["cold, per batch"] = {}
    for batch in (1, 2, 4, 8, 16):
        us = round(per_document(docs, batch, empty_caches), 1)
        result["cold, per batch"][batch] = us
        print(f"cold, caches emptied once per {batch:2} documents: {us:7.1f} us a document")
    print(f"saved {save('cold', result)}")


if __name__ == "__main__":
    main()
