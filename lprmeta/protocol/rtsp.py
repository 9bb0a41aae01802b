"""RTSP 1.0 messages, sans-IO: requests, responses, interleaved frames, SDP, headers.

Source: RFC 2326 (RTSP 1.0) and RFC 4566 (SDP), as far as the guide's
"3. RTSP Type" needs them: a client that DESCRIBEs a camera's stream, SETs UP
its ONVIF metadata track over TCP, and PLAYs it; and the simulated camera's
server side of the same.

:class:`RtspParser` is a state machine in the style of h11: ``feed(bytes)``
then ``next_message()`` until :data:`NEED_DATA`. On one TCP connection it
yields :class:`Request` or :class:`Response` messages and
:class:`Interleaved` binary frames (``$``, channel, 16-bit length, data;
RFC 2326 section 10.12), in order. Header lines are parsed as ``name: value``
by position, never by substring search; sizes are bounded.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urljoin, urlsplit, urlunsplit

from ..errors import PacketTooLarge, ProtocolError
from .common import NEED_DATA, NeedData

__all__ = [
    "Headers",
    "Interleaved",
    "MediaDescription",
    "Request",
    "Response",
    "RtspParser",
    "SessionDescription",
    "encode_interleaved",
    "encode_request",
    "encode_response",
    "parse_sdp",
    "parse_session",
    "parse_transport",
    "strip_userinfo",
]

VERSION: Final = "RTSP/1.0"
_INTERLEAVED: Final = struct.Struct("!cBH")  # '$', channel, length


class Headers:
    """Header fields in order; names compare case-insensitively; repeats are kept."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items = [(k, v) for k, v in items]

    def get(self, name: str, default: str | None = None) -> str | None:
        key = name.lower()
        for k, v in self._items:
            if k.lower() == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for k, v in self._items if k.lower() == key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and other._items == self._items

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    @property
    def cseq(self) -> int | None:
        value = self.get("CSeq")
        return int(value) if value is not None and value.strip().isdecimal() else None


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    uri: str
    headers: Headers
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    reason: str
    headers: Headers
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Interleaved:
    channel: int
    data: bytes


class RtspParser:
    """One side of one RTSP connection. Raises :class:`ProtocolError` for bytes that
    are not RTSP (the connection should then be closed: there is no resynchronising
    inside a text protocol) and :class:`PacketTooLarge` for oversize heads or bodies."""

    def __init__(self, *, max_head: int = 16 * 1024, max_body: int = 1024 * 1024) -> None:
        self.max_head = max_head
        self.max_body = max_body
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def next_message(self) -> Request | Response | Interleaved | NeedData:
        buf = self._buf
        while buf and buf[0] in (0x0D, 0x0A):
            del buf[:1]  # stray line ends between messages
        if not buf:
            return NEED_DATA
        if buf[0] == 0x24:  # '$'
            if len(buf) < 4:
                return NEED_DATA
            _, channel, size = _INTERLEAVED.unpack_from(buf)
            if len(buf) < 4 + size:
                return NEED_DATA
            data = bytes(buf[4 : 4 + size])
            del buf[: 4 + size]
            return Interleaved(channel, data)
        end = buf.find(b"\r\n\r\n")
        sep = 4
        if end < 0:
            end, sep = buf.find(b"\n\n"), 2
        if end < 0:
            if len(buf) > self.max_head:
                raise PacketTooLarge(
                    f"RTSP head longer than {self.max_head} bytes",
                    size=len(buf),
                    limit=self.max_head,
                )
            return NEED_DATA
        head = bytes(buf[:end]).decode("utf-8", errors="replace")
        lines = head.replace("\r\n", "\n").split("\n")
        start, headers = lines[0].strip(), _parse_headers(lines[1:])
        length_text = headers.get("Content-Length", "0") or "0"
        if not length_text.strip().isdecimal():
            raise ProtocolError(f"bad Content-Length {length_text!r}")
        length = int(length_text)
        if length > self.max_body:
            raise PacketTooLarge(
                f"RTSP body of {length} bytes is above the limit {self.max_body}",
                size=length,
                limit=self.max_body,
            )
        total = end + sep + length
        if len(buf) < total:
            return NEED_DATA
        body = bytes(buf[end + sep : total])
        del buf[:total]
        return _start_line(start, headers, body)

    def __iter__(self) -> Iterator[Request | Response | Interleaved]:
        while not isinstance(item := self.next_message(), NeedData):
            yield item


def _parse_headers(lines: list[str]) -> Headers:
    items: list[tuple[str, str]] = []
    for line in lines:
        if not line.strip():
            continue
        if line[:1] in (" ", "\t") and items:  # obsolete line folding
            name, value = items[-1]
            items[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise ProtocolError(f"bad RTSP header line {line[:80]!r}")
        items.append((name.strip(), value.strip()))
    return Headers(items)


def _start_line(start: str, headers: Headers, body: bytes) -> Request | Response:
    parts = start.split(" ", 2)
    if parts[0].startswith("RTSP/"):
        if len(parts) < 2 or not parts[1].isdecimal():
            raise ProtocolError(f"bad RTSP status line {start[:80]!r}")
        return Response(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, body)
    if len(parts) != 3 or not parts[2].startswith("RTSP/"):
        raise ProtocolError(f"bad RTSP request line {start[:80]!r}")
    return Request(parts[0].upper(), parts[1], headers, body)


def _head(first: str, cseq: int | None, headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
    lines = [first]
    if cseq is not None:
        lines.append(f"CSeq: {cseq}")
    lines += [f"{k}: {v}" for k, v in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def encode_request(
    method: str,
    uri: str,
    cseq: int,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> bytes:
    return _head(f"{method} {uri} {VERSION}", cseq, headers, body)


def encode_response(
    status: int,
    reason: str,
    cseq: int | None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> bytes:
    return _head(f"{VERSION} {status} {reason}", cseq, headers, body)


def encode_interleaved(channel: int, data: bytes) -> bytes:
    if len(data) > 0xFFFF:
        raise ValueError("an interleaved frame holds at most 65535 bytes")
    return _INTERLEAVED.pack(b"$", channel, len(data)) + data


# ----------------------------------------------------------------------------- headers


def parse_session(value: str | None) -> tuple[str, int | None]:
    """``Session: 12345678;timeout=60`` -> (id, timeout seconds or None)."""
    if not value:
        return "", None
    sid, *params = (p.strip() for p in value.split(";"))
    timeout: int | None = None
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() == "timeout" and val.strip().isdecimal():
            timeout = int(val.strip())
    return sid, timeout


def parse_transport(value: str | None) -> dict[str, str]:
    """``RTP/AVP/TCP;unicast;interleaved=0-1`` -> {"protocol": "RTP/AVP/TCP", "unicast": "",
    "interleaved": "0-1"} (first transport spec only)."""
    if not value:
        return {}
    spec = value.split(",")[0]
    proto, *params = (p.strip() for p in spec.split(";"))
    out = {"protocol": proto}
    for param in params:
        name, _, val = param.partition("=")
        out[name.strip().lower()] = val.strip()
    return out


def strip_userinfo(url: str) -> str:
    """``rtsp://user:pw@host/x`` -> ``rtsp://host/x`` (what goes on the wire and in logs)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


# ----------------------------------------------------------------------------- SDP


@dataclass(frozen=True, slots=True)
class MediaDescription:
    media: str  # video, audio, application
    port: int
    proto: str
    formats: tuple[str, ...]
    rtpmap: dict[str, str] = field(default_factory=dict)  # payload type -> "H264/90000"
    control: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()

    @property
    def encoding(self) -> str:
        """The first format's encoding name, lower case (``vnd.onvif.metadata``, ``h264``)."""
        for fmt in self.formats:
            if fmt in self.rtpmap:
                return self.rtpmap[fmt].split("/")[0].strip().lower()
        return ""

    @property
    def is_onvif_metadata(self) -> bool:
        return self.media == "application" and self.encoding == "vnd.onvif.metadata"

    def describe(self) -> str:
        return f"{self.media} {self.encoding or '/'.join(self.formats)}"


@dataclass(frozen=True, slots=True)
class SessionDescription:
    media: tuple[MediaDescription, ...]
    control: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()

    @property
    def metadata(self) -> MediaDescription | None:
        return next((m for m in self.media if m.is_onvif_metadata), None)

    def control_url(self, base: str, media: MediaDescription) -> str:
        """The absolute URL to SETUP ``media`` (RFC 2326 C.1.1)."""
        control = media.control or "*"
        if re.match(r"^[a-z][a-z0-9+.-]*://", control, re.I):
            return control
        if control == "*":
            return base
        if not base.endswith("/"):
            base += "/"
        return urljoin(base, control)


def parse_sdp(text: str) -> SessionDescription:
    """Parse the parts of an SDP (RFC 4566) a client needs: media, rtpmap, control."""
    session_attrs: list[tuple[str, str]] = []
    media: list[dict[str, object]] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if len(line) < 2 or line[1] != "=":
            continue
        kind, value = line[0], line[2:]
        if kind == "m":
            fields = value.split()
            if len(fields) < 3:
                raise ProtocolError(f"bad SDP media line {line[:80]!r}")
            port = int(fields[1].split("/")[0]) if fields[1].split("/")[0].isdecimal() else 0
            media.append(
                {"media": fields[0], "port": port, "proto": fields[2], "formats": fields[3:]}
            )
            media[-1]["attrs"] = []
        elif kind == "a":
            name, _, val = value.partition(":")
            target = media[-1]["attrs"] if media else session_attrs
            assert isinstance(target, list)
            target.append((name.strip(), val.strip()))
    descs: list[MediaDescription] = []
    for m in media:
        attrs: list[tuple[str, str]] = m["attrs"]  # type: ignore[assignment]
        rtpmap: dict[str, str] = {}
        for name, val in attrs:
            if name.lower() == "rtpmap":
                pt, _, enc = val.partition(" ")
                rtpmap[pt.strip()] = enc.strip()
        descs.append(
            MediaDescription(
                media=str(m["media"]).lower(),
                port=int(m["port"]),  # type: ignore[call-overload]
                proto=str(m["proto"]),
                formats=tuple(m["formats"]),  # type: ignore[arg-type]
                rtpmap=rtpmap,
                control=next((v for n, v in attrs if n.lower() == "control"), None),
                attributes=tuple(attrs),
            )
        )
    return SessionDescription(
        media=tuple(descs),
        control=next((v for n, v in session_attrs if n.lower() == "control"), None),
        attributes=tuple(session_attrs),
    )
