"""Plate lists: exact, wildcard, and tolerant matching with look-alikes (a table of cases)."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

import pytest

from lprmeta.lists import Entry, Matcher, PlateList, csv_line, fold, levenshtein, read_csv

ENTRIES = ["AB1234", "XY-99-ZZ", "CD*", "?E123", "NL 12 AB"]


@pytest.mark.parametrize(
    ("plate", "tolerance", "lookalikes", "entry", "distance"),
    [
        ("AB1234", 0, False, "AB1234", 0),  # exact
        ("ab-12 34", 0, False, "AB1234", 0),  # case, spaces, dashes do not count
        ("AB·12.34", 0, False, "AB1234", 0),
        ("XY99ZZ", 0, False, "XY-99-ZZ", 0),
        ("CD777", 0, False, "CD*", 0),  # wildcard *
        ("CD", 0, False, "CD*", 0),
        ("QE123", 0, False, "?E123", 0),  # wildcard ?
        ("E123", 0, False, None, None),  # ? is exactly one character
        ("A81234", 0, False, None, None),  # no look-alikes: 8 is not B
        ("A81234", 0, True, "AB1234", 0),  # B/8
        ("ABI234", 0, True, "AB1234", 0),  # I/1
        ("A8I234", 0, True, "AB1234", 0),  # both at once, still distance 0
        ("NL12A8", 0, True, "NL 12 AB", 0),
        ("NLI2AB", 0, True, "NL 12 AB", 0),
        ("XY99Z2", 0, True, "XY-99-ZZ", 0),  # Z/2
        ("AB1235", 0, True, None, None),  # a real difference, no tolerance
        ("AB1235", 1, True, "AB1234", 1),  # substitution
        ("AB12345", 1, True, "AB1234", 1),  # insertion
        ("AB124", 1, True, "AB1234", 1),  # deletion
        ("A81235", 1, True, "AB1234", 1),  # look-alike plus one edit
        ("AB1256", 1, True, None, None),  # two edits, tolerance 1
        ("AB1256", 2, True, "AB1234", 2),
        ("ZZ9999", 2, True, None, None),
        ("", 2, True, None, None),
    ],
)
def test_matching(
    plate: str, tolerance: int, lookalikes: bool, entry: str | None, distance: int | None
) -> None:
    plates = PlateList.of("l", ENTRIES, tolerance=tolerance, lookalikes=lookalikes)
    match = plates.match(plate)
    if entry is None:
        assert match is None
    else:
        assert match is not None and (match.entry, match.distance) == (entry, distance)


def test_the_closest_entry_wins() -> None:
    plates = PlateList.of("l", ["AB1299", "AB1230"], tolerance=2)
    match = plates.match("AB1234")
    assert match is not None and (match.entry, match.distance) == ("AB1230", 1)


def test_matcher_gives_every_list() -> None:
    matcher = Matcher()
    matcher.replace(PlateList.of("residents", [("AB1234", "Flat 3")]))
    matcher.replace(PlateList.of("banned", ["AB*"]))
    matcher.replace(PlateList.of("staff", ["ZZ0000"]))
    got = {m.list: m.to_json() for m in matcher.match("ab 1234")}
    assert got == {
        "residents": {"list": "residents", "entry": "AB1234", "distance": 0, "label": "Flat 3"},
        "banned": {"list": "banned", "entry": "AB*", "distance": 0},
    }
    assert matcher.match(None) == ()


def test_levenshtein_and_fold() -> None:
    assert levenshtein("kitten", "sitting", 5) == 3
    assert levenshtein("kitten", "sitting", 1) == 2  # "more than 1"
    assert levenshtein("", "abc", 3) == 3
    assert fold("O0QD IL1 Z-S.G·B") == "00001112568"  # the look-alike table, in order
    assert fold("ab-12 34") == "A81234"


def test_csv() -> None:
    text = "plate,label\n# residents\nAB1234, Flat 3\n\n XY99 \n,ignored\n"
    assert read_csv(text) == [Entry("AB1234", "Flat 3"), Entry("XY99")]


def test_a_tolerant_lookup_does_not_scan_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    # The deletion index hands over a few candidates; a scan would compare all 20,000.
    from lprmeta import lists

    rng = random.Random(1)
    letters = "ACEFHJKMNPRTUVWXY"
    entries = sorted(
        {
            "".join(rng.choice(letters) for _ in range(2))
            + f"{rng.randrange(1000, 9999)}"
            + "".join(rng.choice(letters) for _ in range(2))
            for _ in range(20_000)
        }
    )
    plates = PlateList.of("big", entries, tolerance=1)
    compared: list[str] = []
    real = lists.levenshtein

    def counting(a: str, b: str, limit: int) -> int:
        compared.append(b)
        return real(a, b, limit)

    monkeypatch.setattr(lists, "levenshtein", counting)
    probe = entries[123]
    near = probe[:-1] + ("X" if probe[-1] != "X" else "Y")
    match = plates.match(near)
    assert match is not None and (match.entry, match.distance) == (probe, 1)
    assert len(compared) < 20


async def test_lists_in_the_daemon_hooks_limited_and_files_reloaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import io

    from lprmeta import lists_files
    from lprmeta.daemon import Daemon
    from lprmeta.events import Event, Kind, Source

    from .conftest import make_config
    from .sinks import sample_hooks

    monkeypatch.setattr(lists_files, "RELOAD_INTERVAL", 0.05)
    banned = tmp_path / "banned.csv"
    banned.write_text("plate,why\nXX666X,stolen\n")
    config = make_config(
        tmp_path,
        bus={"dedup_window": 0},
        lists=[
            {"name": "residents", "plates": ["AB1234", "CD*"], "tolerance": 1},
            {"name": "banned", "file": str(banned)},
        ],
        hooks=[{"target": "tests.sinks.sample_hooks:record_sync", "only_lists": ["residents"]}],
    )
    sample_hooks.SEEN_SYNC.clear()

    def car(plate: str) -> Event:
        return Event(kind=Kind.PLATE, camera="gate", source=Source.TCP, plate=plate)

    async with Daemon(config, stdout=io.BytesIO()) as d:
        sub = d.events()
        for plate in ("A8I234", "CD99", "XX666X", "ZZ0000"):
            d.deliver(car(plate))
        got = {}
        for _ in range(4):
            ev = await asyncio.wait_for(sub.get(), 5)
            assert ev is not None
            got[ev.plate] = [(m.list, m.entry, m.distance, m.label) for m in ev.matches]
        assert got == {
            "A8I234": [("residents", "AB1234", 0, None)],  # look-alikes folded
            "CD99": [("residents", "CD*", 0, None)],
            "XX666X": [("banned", "XX666X", 0, "stolen")],
            "ZZ0000": [],
        }
        banned.write_text("YY777Y\n")  # edited while running
        await asyncio.sleep(0.5)
        d.deliver(car("YY777Y"))
        ev = await asyncio.wait_for(sub.get(), 5)
        assert ev is not None and [m.list for m in ev.matches] == ["banned"]
        await asyncio.sleep(0.2)
    assert sample_hooks.SEEN_SYNC == ["A8I234", "CD99"]  # the hook saw residents only


def test_a_list_file_missing_at_start_is_a_config_error(tmp_path: Path) -> None:
    import asyncio

    from lprmeta.daemon import Daemon
    from lprmeta.errors import ConfigError

    from .conftest import make_config

    config = make_config(tmp_path, lists=[{"name": "l", "file": str(tmp_path / "nope.csv")}])

    async def start() -> None:
        async with Daemon(config):
            pass

    with pytest.raises(ConfigError, match=r"lists\[0\].file: cannot read"):
        asyncio.run(start())


def test_an_entry_matches_up_to_its_expiry_day_and_not_after() -> None:
    plates = PlateList.of("p", [Entry("AB1234", "until friday", date(2026, 5, 8))], tolerance=1)
    assert plates.match("AB1234", today=date(2026, 5, 8)) is not None
    assert plates.match("AB1234", today=date(2026, 5, 9)) is None
    assert plates.match("AB1235", today=date(2026, 5, 9)) is None  # nor within tolerance
    wild = PlateList.of("w", [Entry("AB*", None, date(2026, 5, 8))])
    assert wild.match("AB99", today=date(2026, 5, 9)) is None


def test_a_list_limited_to_cameras_matches_their_reads_only() -> None:
    matcher = Matcher()
    matcher.replace(PlateList.of("gate-only", ["AB1234"], cameras=["gate"]))
    assert [m.list for m in matcher.match("AB1234", "gate")] == ["gate-only"]
    assert matcher.match("AB1234", "exit") == ()


def test_list_files_read_back_what_csv_line_writes() -> None:
    entries = [
        Entry("AB-12 34"),
        Entry("XY*", 'say "hi", then wait', date(2030, 1, 2)),
        Entry("Q1", None, date(2030, 1, 2)),
    ]
    text = "plate,label,expires\n" + "".join(csv_line(e) for e in entries)
    assert read_csv(text) == entries
    with pytest.raises(ValueError, match="line 2: expiry 'soon' is not YYYY-MM-DD"):
        read_csv("plate,label,expires\nAB1,x,soon\n")
