from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .mosquitto import Broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real mosquitto on a free loopback port, for one test."""
    workdir = tmp_path / "broker"
    workdir.mkdir()
    b = Broker(workdir)
    b.start()
    yield b
    b.stop()
