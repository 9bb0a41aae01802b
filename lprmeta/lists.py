"""Allow/deny lists of plates, and which of them an event's plate matches.

A list has entries of three sorts:

* exact: ``AB1234`` (case, spaces, ``-``, ``·`` and ``.`` do not count: ``ab-12 34`` is the same);
* wildcard: ``AB*``, ``?B12*`` (``*`` any run, ``?`` one character);
* with ``tolerance`` N > 0, every exact entry also matches plates within N
  edits (insert, delete, substitute).

With ``lookalikes`` (the default) both sides are compared after **look-alike
folding**: characters an LPR engine confuses are read as one (``O Q D`` as
``0``, ``I L`` as ``1``, ``Z`` as ``2``, ``S`` as ``5``, ``G`` as ``6``, ``B``
as ``8``), so ``A8I234`` is ``AB1234`` at distance 0, even with no tolerance.

Tolerant lookups use a deletion-neighbourhood index (every entry with up to N
characters deleted, as SymSpell does): a lookup costs the plate's own
neighbourhood, not a scan of the list, so lists of tens of thousands of plates
answer in microseconds.

An entry may carry an **expiry date** (a list file's third column,
``YYYY-MM-DD``): it matches up to and including that day (the daemon's local
date) and not after. A list may be limited to some **cameras**: a plate read by
another camera is not on it.

Pure: no I/O. :func:`read_csv` parses a list file and :func:`csv_line` writes
one line of it; the daemon reloads files that change and edits them
(:mod:`lprmeta.lists_files`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from fnmatch import translate
from itertools import combinations
from typing import Final

from .events import Event, ListMatch, plate_key

__all__ = [
    "Entry",
    "ListMatch",
    "Matcher",
    "PlateList",
    "csv_line",
    "fold",
    "levenshtein",
    "on_lists",
    "read_csv",
]

LOOKALIKES: Final = str.maketrans(
    {"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "Z": "2", "S": "5", "G": "6", "B": "8"}
)


def fold(plate: str) -> str:
    """A plate as lists compare it with look-alikes folded: ``A8-I23 4`` -> ``A81234``."""
    return plate_key(plate).translate(LOOKALIKES)


def levenshtein(a: str, b: str, limit: int) -> int:
    """Edit distance of ``a`` and ``b``, or ``limit + 1`` once it is certainly above ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        best = i
        for j, cb in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            current.append(cost)
            best = min(best, cost)
        if best > limit:
            return limit + 1
        previous = current
    return previous[-1]


def _deletions(text: str, n: int) -> Iterator[str]:
    for k in range(n + 1):
        for drop in combinations(range(len(text)), k):
            yield "".join(ch for i, ch in enumerate(text) if i not in drop)


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a list: the plate as written, an optional label and expiry day."""

    plate: str
    label: str | None = None
    expires: date | None = None

    def live(self, today: date) -> bool:
        return self.expires is None or today <= self.expires

    def to_json(self) -> dict[str, str | None]:
        return {
            "plate": self.plate,
            "label": self.label,
            "expires": self.expires.isoformat() if self.expires else None,
        }


@dataclass
class PlateList:
    name: str
    tolerance: int = 0
    lookalikes: bool = True
    # Only reads of these cameras can be on the list (None: every camera's).
    cameras: frozenset[str] | None = None
    entries: list[Entry] = field(default_factory=list)  # as given, for showing them
    _exact: dict[str, Entry] = field(default_factory=dict)
    _wild: list[tuple[re.Pattern[str], Entry]] = field(default_factory=list)
    _index: dict[str, list[tuple[str, Entry]]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        name: str,
        entries: Iterable[str | tuple[str, str | None] | Entry],
        *,
        tolerance: int = 0,
        lookalikes: bool = True,
        cameras: Iterable[str] | None = None,
    ) -> PlateList:
        plates = cls(
            name,
            tolerance=tolerance,
            lookalikes=lookalikes,
            cameras=frozenset(cameras) if cameras else None,
        )
        for given in entries:
            if isinstance(given, str):
                plates.add(Entry(given))
            elif isinstance(given, Entry):
                plates.add(given)
            else:
                plates.add(Entry(given[0], given[1]))
        return plates

    def _norm(self, plate: str) -> str:
        return fold(plate) if self.lookalikes else plate_key(plate)

    def add(self, entry: Entry | str, label: str | None = None) -> None:
        if isinstance(entry, str):
            entry = Entry(entry, label)
        key = self._norm(entry.plate)
        if not key:
            return
        self.entries.append(entry)
        if "*" in key or "?" in key:
            self._wild.append((re.compile(translate(key)), entry))
            return
        self._exact.setdefault(key, entry)
        if self.tolerance:
            for variant in set(_deletions(key, self.tolerance)):
                self._index.setdefault(variant, []).append((key, entry))

    def __len__(self) -> int:
        return len(self._exact) + len(self._wild)

    def match(
        self, plate: str, camera: str | None = None, today: date | None = None
    ) -> ListMatch | None:
        """The best (closest) live entry this plate matches, if any; ``camera``: the
        camera that read it (a list limited to other cameras does not match)."""
        if self.cameras is not None and camera is not None and camera not in self.cameras:
            return None
        key = self._norm(plate)
        if not key:
            return None
        day = today or date.today()
        hit = self._exact.get(key)
        if hit is not None and hit.live(day):
            return ListMatch(self.name, hit.plate, 0, hit.label)
        for pattern, entry in self._wild:
            if entry.live(day) and pattern.match(key):
                return ListMatch(self.name, entry.plate, 0, entry.label)
        if not self.tolerance:
            return None
        best: ListMatch | None = None
        seen: set[str] = set()
        for variant in set(_deletions(key, self.tolerance)):
            for candidate, entry in self._index.get(variant, ()):
                if candidate in seen or not entry.live(day):
                    continue
                seen.add(candidate)
                distance = levenshtein(key, candidate, self.tolerance)
                if distance <= self.tolerance and (best is None or distance < best.distance):
                    best = ListMatch(self.name, entry.plate, distance, entry.label)
        return best


@dataclass
class Matcher:
    """Every configured list; ``match`` gives the lists a plate is on."""

    lists: dict[str, PlateList] = field(default_factory=dict)

    def replace(self, plates: PlateList) -> None:
        self.lists[plates.name] = plates

    def match(self, plate: str | None, camera: str | None = None) -> tuple[ListMatch, ...]:
        if not plate or not self.lists:
            return ()
        today = date.today()
        return tuple(
            m for p in self.lists.values() if (m := p.match(plate, camera, today)) is not None
        )


def on_lists(names: Iterable[str]) -> Callable[[Event], bool] | None:
    """A subscription filter: only events matching one of these lists (None: every event)."""
    wanted = frozenset(names)
    if not wanted:
        return None
    return lambda event: any(m.list in wanted for m in event.matches)


HEADERS: Final = ("plate", "licence plate", "license plate", "kenteken")


def read_csv(text: str) -> list[Entry]:
    """A list file: one plate a line in the first column, an optional label in the
    second and an optional expiry date (``YYYY-MM-DD``) in the third; blank lines,
    ``#`` comments and a ``plate`` header are skipped. A third column that is not a
    date is a ValueError naming the line (a list that silently never expires would
    let a car in it should not)."""
    out: list[Entry] = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        plate = row[0].strip()
        if plate.casefold() in HEADERS:
            continue
        label = row[1].strip() if len(row) > 1 and row[1].strip() else None
        expires = None
        if len(row) > 2 and row[2].strip():
            try:
                expires = date.fromisoformat(row[2].strip())
            except ValueError:
                raise ValueError(f"line {n}: expiry {row[2].strip()!r} is not YYYY-MM-DD") from None
        out.append(Entry(plate, label, expires))
    return out


def csv_line(entry: Entry) -> str:
    """The line of a list file :func:`read_csv` reads back as ``entry``."""
    buf = io.StringIO()
    row = [entry.plate, entry.label or "", entry.expires.isoformat() if entry.expires else ""]
    while len(row) > 1 and not row[-1]:
        row.pop()
    csv.writer(buf, lineterminator="\n").writerow(row)
    return buf.getvalue()
