"""Helpers for the fault matrix: a daemon whose events are collected as they come, and a
*witness* camera that must keep being served while another camera misbehaves."""

from __future__ import annotations

import asyncio
import io
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from lprmeta.config import Config
from lprmeta.daemon import Daemon
from lprmeta.events import Event
from lprmeta.simulator import ReadFactory, TcpCameraServer

from ..conftest import check_event

_plates = itertools.count()


class Events:
    """Every event of a daemon, collected in the background; wait for the one you need."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.all: list[Event] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._collect(daemon.events()))

    async def _collect(self, sub: Any) -> None:
        async for event in sub:
            check_event(event)
            self.all.append(event)
            self._changed.set()

    async def wait_for(self, pred: Callable[[Event], bool], timeout: float = 10.0) -> Event:
        async with asyncio.timeout(timeout):
            while True:
                for event in self.all:
                    if pred(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

    def of(self, camera: str) -> list[Event]:
        return [e for e in self.all if e.camera == camera]


class Witness:
    """A well-behaved TCP camera beside the faulty one."""

    name = "witness"

    def __init__(self) -> None:
        self.server = TcpCameraServer(password="witness-pw")
        self.factory = ReadFactory(seed=99)

    def config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": "127.0.0.1",
            "password": "witness-pw",
            "tcp": {"port": self.server.port, "backoff_initial": 0.05, "backoff_max": 0.2},
        }

    async def served(self, events: Events) -> None:
        """A read sent now arrives: the daemon is still serving this camera."""
        await self.server.wait_for_clients(1, timeout=10)
        plate = f"WIT{next(_plates):05d}"
        assert await self.server.send_read(self.factory.next(plate=plate)) == 1
        await events.wait_for(lambda e: e.plate == plate and e.camera == self.name)


@asynccontextmanager
async def witness() -> AsyncIterator[Witness]:
    w = Witness()
    await w.server.start()
    try:
        yield w
    finally:
        await w.server.close()


@asynccontextmanager
async def running(config: Config) -> AsyncIterator[Events]:
    async with Daemon(config, stdout=io.BytesIO()) as d:
        yield Events(d)


def snapshot_dir(tmp_path: Path) -> str:
    return str(tmp_path / "snapshots")
