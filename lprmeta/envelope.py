"""What travels with an event from a parser to the intake, before its pictures are saved.

Owns the envelope and nothing else; no I/O. :class:`~lprmeta.events.Event` is
the JSON-line contract only: the bytes of pictures that came inside a payload,
the paths of pictures a camera announced (to be fetched), and how much memory
the read holds are I/O state, carried here until the intake has saved or
fetched the pictures and put the event on the bus.
"""

from __future__ import annotations

from dataclasses import dataclass

from .events import Event, fast_frozen_init

__all__ = ["Picture", "Read"]


@dataclass(frozen=True, slots=True)
class Picture:
    """A picture as it arrived in a payload, or as it was fetched: bytes, not yet saved."""

    role: str
    data: bytes


@fast_frozen_init
@dataclass(frozen=True, slots=True)
class Read:
    """One read as a parser made it: the event, and what the intake still has to do."""

    event: Event
    pictures: tuple[Picture, ...] = ()  # in the payload: to be saved
    picture_paths: tuple[tuple[str, str], ...] = ()  # (role, path) announced: to be fetched
    weight: int = 0  # about how many bytes the event holds (the queues' byte budgets)
