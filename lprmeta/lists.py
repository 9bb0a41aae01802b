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

Pure: no I/O. :func:`read_csv` parses a list file; the daemon reloads files
that change (``lists.watch``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fnmatch import translate
from itertools import combinations
from typing import Final

from .events import Event, ListMatch, plate_key

__all__ = ["ListMatch", "Matcher", "PlateList", "fold", "levenshtein", "on_lists", "read_csv"]

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


@dataclass
class PlateList:
    name: str
    tolerance: int = 0
    lookalikes: bool = True
    _exact: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    _wild: list[tuple[re.Pattern[str], str, str | None]] = field(default_factory=list)
    _index: dict[str, list[tuple[str, str, str | None]]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        name: str,
        entries: Iterable[str | tuple[str, str | None]],
        *,
        tolerance: int = 0,
        lookalikes: bool = True,
    ) -> PlateList:
        plates = cls(name, tolerance=tolerance, lookalikes=lookalikes)
        for entry in entries:
            text, label = (entry, None) if isinstance(entry, str) else entry
            plates.add(text, label)
        return plates

    def _norm(self, plate: str) -> str:
        return fold(plate) if self.lookalikes else plate_key(plate)

    def add(self, entry: str, label: str | None = None) -> None:
        key = self._norm(entry)
        if not key:
            return
        if "*" in key or "?" in key:
            self._wild.append((re.compile(translate(key)), entry, label))
            return
        self._exact.setdefault(key, (entry, label))
        if self.tolerance:
            for variant in set(_deletions(key, self.tolerance)):
                self._index.setdefault(variant, []).append((key, entry, label))

    def __len__(self) -> int:
        return len(self._exact) + len(self._wild)

    def match(self, plate: str) -> ListMatch | None:
        """The best (closest) entry this plate matches, if any."""
        key = self._norm(plate)
        if not key:
            return None
        hit = self._exact.get(key)
        if hit is not None:
            return ListMatch(self.name, hit[0], 0, hit[1])
        for pattern, entry, label in self._wild:
            if pattern.match(key):
                return ListMatch(self.name, entry, 0, label)
        if not self.tolerance:
            return None
        best: ListMatch | None = None
        seen: set[str] = set()
        for variant in set(_deletions(key, self.tolerance)):
            for candidate, entry, label in self._index.get(variant, ()):
                if candidate in seen:
                    continue
                seen.add(candidate)
                distance = levenshtein(key, candidate, self.tolerance)
                if distance <= self.tolerance and (best is None or distance < best.distance):
                    best = ListMatch(self.name, entry, distance, label)
        return best


@dataclass
class Matcher:
    """Every configured list; ``match`` gives the lists a plate is on."""

    lists: dict[str, PlateList] = field(default_factory=dict)

    def replace(self, plates: PlateList) -> None:
        self.lists[plates.name] = plates

    def match(self, plate: str | None) -> tuple[ListMatch, ...]:
        if not plate or not self.lists:
            return ()
        return tuple(m for p in self.lists.values() if (m := p.match(plate)) is not None)


def on_lists(names: Iterable[str]) -> Callable[[Event], bool] | None:
    """A subscription filter: only events matching one of these lists (None: every event)."""
    wanted = frozenset(names)
    if not wanted:
        return None
    return lambda event: any(m.list in wanted for m in event.matches)


def read_csv(text: str) -> list[tuple[str, str | None]]:
    """A list file: one plate a line in the first column, an optional label in the second;
    blank lines, ``#`` comments and a ``plate`` header are skipped."""
    out: list[tuple[str, str | None]] = []
    for row in csv.reader(io.StringIO(text)):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        plate = row[0].strip()
        if plate.casefold() in ("plate", "licence plate", "license plate", "kenteken"):
            continue
        label = row[1].strip() if len(row) > 1 and row[1].strip() else None
        out.append((plate, label))
    return out
