"""What every sans-IO parser here shares: the NEED_DATA sentinel."""

from __future__ import annotations

from typing import Final

__all__ = ["NEED_DATA", "NeedData"]


class NeedData:
    """Returned by a parser's ``next_*`` when more bytes must be fed first."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData()
