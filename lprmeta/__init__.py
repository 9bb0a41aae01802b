"""lprmeta: receive licence-plate-recognition events from Milesight LPR cameras.

Public facade. Embedding::

    import lprmeta

    config = lprmeta.load_config("lprmeta.toml")
    async with lprmeta.Daemon(config) as daemon:
        async for event in daemon.events():
            print(event.plate)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .config import Config, load_config, parse_config
from .daemon import Daemon
from .errors import (
    ConfigError,
    LprmetaError,
    PayloadError,
    ProtocolError,
    SnapshotError,
    TransportError,
    UsageError,
)
from .events import Event, ImageRef, Kind, Source

try:
    __version__ = version("lprmeta")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Config",
    "ConfigError",
    "Daemon",
    "Event",
    "ImageRef",
    "Kind",
    "LprmetaError",
    "PayloadError",
    "ProtocolError",
    "SnapshotError",
    "Source",
    "TransportError",
    "UsageError",
    "__version__",
    "load_config",
    "parse_config",
]
