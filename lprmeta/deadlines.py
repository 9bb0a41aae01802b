"""Keys remembered until a deadline, the oldest deadline first (duplicate windows).

The bus (a plate read again within its dedup window) and the RTSP input (a document
seen again on an overlapping session) each asked, per event, for the first entry of an
``OrderedDict`` to see whether anything had expired: an iterator made and dropped per
event (6% of the RTSP loop, measured). ``Deadlines`` remembers a lower bound of the
earliest deadline and looks at its entries only once that has passed.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

__all__ = ["Deadlines"]

K = TypeVar("K", bound=Hashable)


class Deadlines(Generic[K]):
    """``key -> deadline``; ``expire(now)`` forgets the keys whose deadline is ``<= now``
    (in the order they were last remembered, up to the first one still running)."""

    __slots__ = ("_earliest", "_entries")

    def __init__(self) -> None:
        self._entries: OrderedDict[K, float] = OrderedDict()
        # At most the earliest deadline held (inf when empty): nothing expires before it.
        self._earliest = math.inf

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: K) -> float | None:
        return self._entries.get(key)

    def remember(self, key: K, until: float, limit: int) -> None:
        """``key`` until ``until``, as the newest entry; past ``limit`` entries the oldest
        is forgotten."""
        entries = self._entries
        entries[key] = until
        entries.move_to_end(key)
        self._earliest = min(self._earliest, until)
        if len(entries) > limit:
            entries.popitem(last=False)

    def expire(self, now: float) -> None:
        if now < self._earliest:
            return
        entries = self._entries
        while entries:
            key, until = next(iter(entries.items()))
            if until > now:
                # The first entry is the earliest when deadlines are remembered in order
                # (a monotonic clock plus a fixed window: both callers). Out of order, a
                # later entry may outstay its deadline here, as it did before; callers
                # compare a key's deadline with the time anyway, so it is never taken for
                # a live one: only its memory is held a little longer.
                self._earliest = until
                return
            del entries[key]
        self._earliest = math.inf
