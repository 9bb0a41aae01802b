"""A small RTSP client: what a stream offers, before PyAV plays it.

FFmpeg (through PyAV) does the streaming, but it tells neither the session
timeout the server advertises nor, in words a user can act on, why a stream
cannot be played. So before each (re)connection the RTSP input asks itself:
OPTIONS, DESCRIBE (answering a Basic or Digest challenge), SETUP of the ONVIF
metadata track over TCP to read ``Session: <id>;timeout=<n>``, TEARDOWN.
``lprmeta probe`` uses the same to list a camera's tracks.

Errors are typed and carry no password: :class:`AuthenticationFailed`,
:class:`NoMetadataTrack`, :class:`NotResponding`, :class:`ConnectError`.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import (
    AuthenticationFailed,
    ConnectError,
    NoMetadataTrack,
    NotResponding,
    ProtocolError,
    TransportError,
)
from ..protocol.auth import DigestState, basic_authorization, parse_challenges
from ..protocol.common import NeedData
from ..protocol.rtsp import (
    Interleaved,
    Response,
    RtspParser,
    SessionDescription,
    encode_request,
    parse_sdp,
    parse_session,
    strip_userinfo,
)

__all__ = ["StreamInfo", "describe_stream"]

_USER_AGENT = "lprmeta"


@dataclass(frozen=True, slots=True)
class StreamInfo:
    url: str  # without credentials
    sdp: SessionDescription
    session_timeout: int | None  # what SETUP's Session header advertised
    server: str | None
    auth: str | None  # "basic", "digest" or None

    @property
    def tracks(self) -> list[str]:
        return [m.describe() for m in self.sdp.media]


class _Client:
    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = strip_userinfo(url)
        parts = urlsplit(self.url)
        self.host = parts.hostname or ""
        self.port = parts.port or 554
        self.username = username
        self.password = password
        self.cseq = 0
        self.parser = RtspParser()
        self.digest: DigestState | None = None
        self.basic = False
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        try:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            raise ConnectError(
                f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}"
            ) from exc

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()

    def _auth_header(self, method: str, uri: str) -> list[tuple[str, str]]:
        if self.digest is not None:
            return [
                (
                    "Authorization",
                    self.digest.authorization(self.username, self.password, method, uri),
                )
            ]
        if self.basic:
            return [("Authorization", basic_authorization(self.username, self.password))]
        return []

    async def request(
        self, method: str, uri: str, headers: list[tuple[str, str]] | None = None
    ) -> Response:
        for attempt in range(2):
            self.cseq += 1
            head = [("User-Agent", _USER_AGENT), *(headers or []), *self._auth_header(method, uri)]
            assert self.writer is not None
            self.writer.write(encode_request(method, uri, self.cseq, head))
            await self.writer.drain()
            resp = await self._response()
            if resp.status != 401:
                return resp
            if attempt or not (self.username or self.password):
                raise AuthenticationFailed(
                    f"the RTSP server refused {'the' if attempt else 'to play without'} "
                    f"credentials ({method} {resp.status} {resp.reason})"
                )
            challenges = parse_challenges(resp.headers.get_all("WWW-Authenticate"))
            digest = next((c for c in challenges if c.scheme == "digest"), None)
            self.digest = DigestState(digest) if digest else None
            self.basic = digest is None
        raise AssertionError("unreachable")

    async def _response(self) -> Response:
        assert self.reader is not None
        while True:
            msg = self.parser.next_message()
            if isinstance(msg, NeedData):
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectError("the RTSP server closed the connection")
                self.parser.feed(data)
                continue
            if isinstance(msg, Interleaved):
                continue  # media arriving before a reply (after PLAY): not ours to read
            if isinstance(msg, Response) and msg.headers.cseq in (None, self.cseq):
                return msg


async def describe_stream(
    url: str, username: str, password: str, *, timeout: float, setup: bool = True
) -> StreamInfo:
    """What ``url`` offers: its tracks and the session timeout of its metadata track.

    Raises :class:`NoMetadataTrack` when DESCRIBE offers no ONVIF metadata track.
    """
    client = _Client(url, username, password)
    try:
        async with asyncio.timeout(timeout):
            await client.connect()
            return await _describe(client, setup=setup)
    except TimeoutError as exc:
        raise NotResponding(
            f"the RTSP server at {client.host}:{client.port} did not answer within {timeout:g} s"
        ) from exc
    except ProtocolError as exc:
        raise ConnectError(f"the RTSP server sent something that is not RTSP: {exc}") from exc
    finally:
        client.close()


async def _describe(client: _Client, *, setup: bool) -> StreamInfo:
    await client.request("OPTIONS", client.url)
    resp = await client.request("DESCRIBE", client.url, [("Accept", "application/sdp")])
    if resp.status != 200:
        raise TransportError(f"DESCRIBE failed: {resp.status} {resp.reason}")
    sdp = parse_sdp(resp.body.decode("utf-8", errors="replace"))
    base = resp.headers.get("Content-Base") or resp.headers.get("Content-Location") or client.url
    auth = "digest" if client.digest else "basic" if client.basic else None
    info = StreamInfo(client.url, sdp, None, resp.headers.get("Server"), auth)
    track = sdp.metadata
    if track is None:
        raise NoMetadataTrack(
            "the camera's RTSP stream has no ONVIF metadata track (offers: "
            + (", ".join(info.tracks) or "nothing")
            + "); enable metadata for this stream in the camera's web UI",
            tracks=info.tracks,
        )
    if not setup:
        return info
    control = sdp.control_url(strip_userinfo(base), track)
    resp = await client.request(
        "SETUP", control, [("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")]
    )
    if resp.status != 200:
        raise TransportError(f"SETUP of the metadata track failed: {resp.status} {resp.reason}")
    sid, timeout = parse_session(resp.headers.get("Session"))
    with contextlib.suppress(TransportError, OSError):
        await client.request("TEARDOWN", client.url, [("Session", sid)])
    return StreamInfo(client.url, sdp, timeout, info.server, auth)
