"""What the fuzzers run: each parser on arbitrary bytes.

The contract (issue 7): any input gives events or a typed error
(:class:`~lprmeta.errors.ProtocolError` and its subclasses), never another
exception; every event can be written as a JSON line. Used by
``tests/test_fuzz.py`` (hypothesis, a short budget, and the saved corpus) and
``bench/fuzz.py`` (atheris, coverage-guided, minutes per parser).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import jsonschema

from lprmeta.envelope import Read
from lprmeta.errors import ProtocolError
from lprmeta.events import event_schema
from lprmeta.protocol.common import NeedData
from lprmeta.protocol.http import decode_body, parse_get, parse_get_params, parse_post, split_target
from lprmeta.protocol.onvif import DocumentAssembler, document_events
from lprmeta.protocol.tcp import Packet, PacketDecoder, decode_packet
from lprmeta.sinks.jsonl import encode_line

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LIMIT = 64 * 1024  # small limits, so that limit paths are reached too
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


_SCHEMA = jsonschema.Draft202012Validator(event_schema())


def _emit(reads: list[Read] | Read) -> None:
    """Every event must come out as one JSON line, as the daemon writes it, that the
    shipped schema accepts."""
    for read in reads if isinstance(reads, list) else [reads]:
        line = encode_line(read.event)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        errors = list(_SCHEMA.iter_errors(json.loads(line)))
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def tcp(data: bytes) -> None:
    """The TCP decoder fed in pieces (the first byte sets their size), every packet decoded."""
    piece = (data[0] % 64 + 1) if data else 1
    decoder = PacketDecoder(max_size=LIMIT)
    for i in range(1, len(data), piece):
        decoder.feed(data[i : i + piece])
        while True:
            try:
                item = decoder.next_event()
            except ProtocolError:
                continue  # FramingError, PacketTooLarge: resynchronised already
            if isinstance(item, NeedData):
                break
            if isinstance(item, Packet):
                try:
                    result = decode_packet(item, camera="f", received=NOW, max_picture=LIMIT)
                except ProtocolError:
                    continue
                if isinstance(result, Read):
                    _emit(result)
    assert decoder.buffered <= len(data)


def onvif(data: bytes) -> None:
    """Fragments (the first byte sets their size, every third a new pts) -> documents -> events."""
    mtu = (data[0] % 200 + 1) if data else 1
    assembler = DocumentAssembler(max_size=LIMIT)
    for n, i in enumerate(range(1, len(data), mtu)):
        for doc in assembler.feed(data[i : i + mtu], pts=n // 3):
            try:
                events, _ = document_events(doc, camera="f", received=NOW, max_size=LIMIT)
            except ProtocolError:
                continue
            _emit(events)
    assembler.flush()
    assert assembler.pending == 0


def http(data: bytes) -> None:
    """A POST body, and the same bytes as a GET request target."""
    try:
        body = decode_body(data)
        _emit(parse_post(body, camera="f", received=NOW, max_picture=LIMIT))
    except ProtocolError:
        pass
    target = data.decode("utf-8", errors="replace")
    path, params = split_target(target)
    assert path.startswith(target[: len(path)]) or path == ""
    _emit(parse_get(parse_get_params(params), camera="f", received=NOW))


TARGETS: dict[str, Callable[[bytes], None]] = {"tcp": tcp, "onvif": onvif, "http": http}

# Seeds: the regular fixtures of each parser, and the fuzz corpus (what fuzzing found).
SEEDS: dict[str, list[str]] = {
    "tcp": ["tcp/*.bin", "fuzz/tcp/*"],
    "onvif": ["onvif/*.xml", "fuzz/onvif/*"],
    "http": ["http/*.json", "http/*.url", "json/*.json", "fuzz/http/*"],
}


def seeds(target: str) -> list[Path]:
    return sorted(
        p
        for pattern in SEEDS[target]
        for p in FIXTURES.glob(pattern)
        if p.is_file() and not p.name.endswith((".expected.json", ".md", ".py"))
    )
