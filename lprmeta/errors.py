"""The one exception tree of lprmeta.

Every exception lprmeta raises on purpose derives from :class:`LprmetaError`.
Foreign exceptions (OSError, aiohttp, lxml, av) are translated at the boundary
where they happen, with ``raise ... from exc``, so callers only need this tree::

    LprmetaError
    ├── ConfigError              the configuration is wrong (one entry per problem)
    ├── UsageError               the caller misused the library API
    ├── ListenError              a server of lprmeta cannot listen (also an OSError)
    ├── ProtocolError            a camera sent something we cannot accept
    │   ├── FramingError         TCP: bytes that are not a Milesight packet
    │   ├── PacketTooLarge       TCP/HTTP/RTSP: a size above the configured limit
    │   ├── PayloadError         a well-framed payload whose content is malformed
    │   │   └── MetadataError    TCP 0x8801 metadata chunk that cannot be read
    │   └── DocumentError        RTSP: an ONVIF metadata document that is not valid XML
    ├── TransportError           the connection to a camera failed
    │   ├── ConnectError         could not connect (refused, unreachable, timed out)
    │   ├── LoginRejected        the camera answered the login with a non-200 result
    │   ├── AuthenticationFailed RTSP/HTTP/ONVIF: the camera refused our credentials
    │   ├── NoMetadataTrack      RTSP: the stream offers no ONVIF metadata track
    │   ├── NotResponding        RTSP: the server accepts connections but answers nothing
    │   └── IdleTimeout          nothing arrived for longer than the idle timeout
    ├── SnapshotError            a picture could not be fetched or saved
    │   └── ForbiddenPictureURL  a picture URL that points away from its camera (SSRF)
    └── SinkError                an output cannot take events any more (stdout closed)

"The camera sent garbage" (ProtocolError) and "the caller misused the API"
(UsageError) are deliberately far apart: the first is counted and survived,
the second is a bug in the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AuthenticationFailed",
    "ConfigError",
    "ConfigProblem",
    "ConnectError",
    "DocumentError",
    "ForbiddenPictureURL",
    "FramingError",
    "IdleTimeout",
    "ListenError",
    "LoginRejected",
    "LprmetaError",
    "MetadataError",
    "NoMetadataTrack",
    "NotResponding",
    "PacketTooLarge",
    "PayloadError",
    "ProtocolError",
    "SchemaError",
    "SinkError",
    "SnapshotError",
    "StoreError",
    "StoreUnavailable",
    "TransportError",
    "UsageError",
]


class LprmetaError(Exception):
    """Root of every error lprmeta raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a configuration, named by its key path."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.key else self.message


class ConfigError(LprmetaError):
    """The configuration cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(LprmetaError):
    """The library API was used in a way it does not support."""


class StoreError(LprmetaError):
    """The event store (database, spool) failed."""


class StoreUnavailable(StoreError):  # reads as what it says
    """The database cannot be reached or written now (it may come back), or an event
    could not be kept at all (an HTTP push then gets 503)."""


class SchemaError(StoreError):
    """The database's schema is one this lprmeta does not know (a newer lprmeta's)."""


class ListenError(LprmetaError, OSError):
    """The HTTP receiver or /metrics cannot listen where configured (the port is taken,
    the address is not this machine's). An OSError too: its errno is the system's."""


class ProtocolError(LprmetaError):
    """A camera sent bytes or text that we cannot accept.

    ``camera`` is filled in by the input that caught it (parsers do not know
    which camera they serve); ``offset`` is where in the stream or payload the
    problem was found, when that is meaningful.
    """

    def __init__(
        self, message: str, *, camera: str | None = None, offset: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.camera = camera
        self.offset = offset

    def __str__(self) -> str:
        where = f" at offset {self.offset}" if self.offset is not None else ""
        who = f"camera {self.camera!r}: " if self.camera else ""
        return f"{who}{self.message}{where}"


class FramingError(ProtocolError):
    """TCP bytes that do not form a Milesight packet (bad start or end signature)."""


class PacketTooLarge(ProtocolError):
    """A declared or actual size above the configured limit; nothing was allocated for it."""

    def __init__(
        self,
        message: str,
        *,
        size: int,
        limit: int,
        camera: str | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message, camera=camera, offset=offset)
        self.size = size
        self.limit = limit


class PayloadError(ProtocolError):
    """A payload that is framed correctly but whose content is malformed."""


class MetadataError(PayloadError):
    """The 0x8801 metadata chunk cannot be read at all."""


class DocumentError(ProtocolError):
    """An ONVIF metadata document that is not acceptable XML."""


class TransportError(LprmetaError):
    """The connection to a camera failed."""

    def __init__(self, message: str, *, camera: str | None = None) -> None:
        super().__init__(message)
        self.camera = camera


class ConnectError(TransportError):
    """Could not connect to the camera."""


class LoginRejected(TransportError):
    """The camera answered COMM_LOGIN_REQ with a result other than 200."""

    def __init__(self, message: str, *, result: str, camera: str | None = None) -> None:
        super().__init__(message, camera=camera)
        self.result = result


class AuthenticationFailed(TransportError):
    """The camera refused the configured credentials (RTSP/HTTP 401, ONVIF NotAuthorized)."""


class NoMetadataTrack(TransportError):
    """The RTSP stream has no ONVIF metadata track; ``tracks`` lists what it does offer."""

    def __init__(self, message: str, *, tracks: list[str], camera: str | None = None) -> None:
        super().__init__(message, camera=camera)
        self.tracks = tracks


class NotResponding(TransportError):
    """The camera accepts connections but answers nothing in time (a hung server)."""


class IdleTimeout(TransportError):
    """Nothing arrived from the camera for longer than the configured idle timeout."""


class SnapshotError(LprmetaError):
    """A picture could not be fetched or saved; ``reason`` is the short form for the event."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ForbiddenPictureURL(SnapshotError):
    """A picture URL that does not point at the camera that announced it."""


class SinkError(LprmetaError):
    """An output can no longer take events (for example stdout was closed by its reader)."""
