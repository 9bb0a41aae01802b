"""Sinks: where events go. Each consumes its own bus subscription.

A sink is any object with a ``name`` and an ``async run(subscription)`` that
returns when the subscription ends. It must not raise for one bad event; it may
raise :class:`~lprmeta.errors.SinkError` when it can never take events again.
"""

from __future__ import annotations

from typing import Protocol

from ..bus import Subscription
from .hooks import HookSink, resolve_hook
from .jsonl import JsonlSink
from .webhook import WebhookSink

__all__ = ["HookSink", "JsonlSink", "Sink", "WebhookSink", "resolve_hook"]


class Sink(Protocol):
    name: str

    async def run(self, sub: Subscription) -> None: ...
