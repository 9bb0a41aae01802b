"""RTP packets, sans-IO (RFC 3550), and the two payload formats a camera sends here.

* ONVIF metadata (ONVIF Streaming Specification, "Metadata streaming"): a
  document is cut into payloads that share one RTP timestamp; the last one
  carries the marker bit.
* H.264 video (RFC 6184): a NAL unit per packet when it fits, else
  fragmentation units (FU-A); the marker bit ends an access unit.

lprmeta's own input never parses RTP (FFmpeg does); this module is what the
simulated camera sends and what tests decode.
"""

from __future__ import annotations

import base64
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from ..errors import PayloadError

__all__ = [
    "RtpPacket",
    "RtpStream",
    "decode_rtp",
    "encode_rtp",
    "h264_fmtp",
    "h264_nal_units",
    "h264_payloads",
]

_HEADER: Final = struct.Struct("!BBHII")
METADATA_PT: Final = 107
H264_PT: Final = 96


@dataclass(frozen=True, slots=True)
class RtpPacket:
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes


def encode_rtp(
    payload: bytes, *, payload_type: int, sequence: int, timestamp: int, ssrc: int, marker: bool
) -> bytes:
    return (
        _HEADER.pack(
            0x80,
            (0x80 if marker else 0) | (payload_type & 0x7F),
            sequence & 0xFFFF,
            timestamp & 0xFFFFFFFF,
            ssrc & 0xFFFFFFFF,
        )
        + payload
    )


def decode_rtp(data: bytes) -> RtpPacket:
    if len(data) < _HEADER.size:
        raise PayloadError(f"RTP packet of {len(data)} bytes is shorter than its header")
    b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data)
    if b0 >> 6 != 2:
        raise PayloadError(f"RTP version {b0 >> 6}, expected 2")
    pos = _HEADER.size + 4 * (b0 & 0x0F)  # CSRCs
    if b0 & 0x10:  # header extension
        if len(data) < pos + 4:
            raise PayloadError("RTP extension header cut short")
        pos += 4 + 4 * struct.unpack_from("!H", data, pos + 2)[0]
    end = len(data)
    if b0 & 0x20 and end > pos:  # padding
        end -= data[-1]
    if pos > end:
        raise PayloadError("RTP header longer than the packet")
    return RtpPacket(b1 & 0x7F, seq, ts, ssrc, bool(b1 & 0x80), data[pos:end])


@dataclass
class RtpStream:
    """One outgoing RTP stream: its SSRC, sequence numbers and payload type."""

    payload_type: int
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    sequence: int = field(default_factory=lambda: random.randrange(0, 0x10000))  # noqa: S311

    def packet(self, payload: bytes, *, timestamp: int, marker: bool) -> bytes:
        out = encode_rtp(
            payload,
            payload_type=self.payload_type,
            sequence=self.sequence,
            timestamp=timestamp,
            ssrc=self.ssrc,
            marker=marker,
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        return out

    def document(self, doc: bytes, *, timestamp: int, mtu: int) -> list[bytes]:
        """An ONVIF metadata document as RTP packets (marker on the last)."""
        parts = [doc[i : i + mtu] for i in range(0, len(doc), mtu)] or [b""]
        return [
            self.packet(part, timestamp=timestamp, marker=i == len(parts) - 1)
            for i, part in enumerate(parts)
        ]

    def access_unit(self, nals: list[bytes], *, timestamp: int, mtu: int) -> list[bytes]:
        """An H.264 access unit (its NAL units) as RTP packets (marker on the last)."""
        payloads = [p for nal in nals for p in h264_payloads(nal, mtu)]
        return [
            self.packet(p, timestamp=timestamp, marker=i == len(payloads) - 1)
            for i, p in enumerate(payloads)
        ]


def h264_nal_units(annexb: bytes) -> list[bytes]:
    """Split an Annex B byte stream (``00 00 01`` / ``00 00 00 01`` start codes) into NALs."""
    out: list[bytes] = []
    i, n = 0, len(annexb)
    start = -1
    while i + 3 <= n:
        if annexb[i] == 0 and annexb[i + 1] == 0 and annexb[i + 2] == 1:
            if start >= 0:
                out.append(annexb[start:i].rstrip(b"\x00"))
            i += 3
            start = i
        else:
            i += 1
    if start >= 0 and start < n:
        out.append(annexb[start:])
    return [nal for nal in out if nal]


def h264_payloads(nal: bytes, mtu: int) -> Iterator[bytes]:
    """RFC 6184: a single NAL unit packet when it fits, else FU-A fragments."""
    if len(nal) <= mtu:
        yield nal
        return
    header, body = nal[0], nal[1:]
    indicator = (header & 0xE0) | 28  # FU-A
    nal_type = header & 0x1F
    step = mtu - 2
    for pos in range(0, len(body), step):
        start = 0x80 if pos == 0 else 0
        end = 0x40 if pos + step >= len(body) else 0
        yield bytes((indicator, start | end | nal_type)) + body[pos : pos + step]


def h264_fmtp(sps: bytes, pps: bytes) -> str:
    """The SDP ``a=fmtp`` parameters for an H.264 stream with these parameter sets."""
    sprop = ",".join(base64.b64encode(x).decode() for x in (sps, pps))
    return f"packetization-mode=1;profile-level-id={sps[1:4].hex()};sprop-parameter-sets={sprop}"
