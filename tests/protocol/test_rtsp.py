"""RTSP messages, SDP, auth and RTP: the sans-IO pieces both RTSP sides share."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lprmeta.errors import PacketTooLarge, PayloadError, ProtocolError
from lprmeta.protocol.auth import (
    Challenge,
    DigestState,
    basic_authorization,
    check_basic,
    check_digest,
    parse_challenges,
)
from lprmeta.protocol.common import NEED_DATA
from lprmeta.protocol.rtp import (
    RtpStream,
    decode_rtp,
    encode_rtp,
    h264_nal_units,
    h264_payloads,
)
from lprmeta.protocol.rtsp import (
    Interleaved,
    Request,
    Response,
    RtspParser,
    encode_interleaved,
    encode_request,
    encode_response,
    parse_sdp,
    parse_session,
    parse_transport,
    strip_userinfo,
)

from ..conftest import FIXTURES

STREAM = (
    encode_response(200, "OK", 3, [("Session", "ABCD;timeout=10"), ("Public", "OPTIONS, PLAY")])
    + encode_interleaved(0, b"\x80\xeb first packet")
    + encode_response(
        200, "OK", 4, [("Content-Type", "application/sdp")], b"v=0\r\nm=application 0 RTP/AVP 107"
    )
    + encode_interleaved(1, b"")
    + encode_request("GET_PARAMETER", "rtsp://h/x", 5, [("Session", "ABCD")])
)


def messages(data: bytes, piece: int) -> list[object]:
    parser = RtspParser()
    out: list[object] = []
    for i in range(0, len(data), piece):
        parser.feed(data[i : i + piece])
        out.extend(parser)
    assert parser.next_message() is NEED_DATA
    return out


def test_stream_whole_and_at_every_split() -> None:
    whole = messages(STREAM, len(STREAM))
    assert [type(m).__name__ for m in whole] == [
        "Response",
        "Interleaved",
        "Response",
        "Interleaved",
        "Request",
    ]
    first = whole[0]
    assert isinstance(first, Response) and first.headers.cseq == 3
    assert parse_session(first.headers.get("session")) == ("ABCD", 10)
    assert whole[1] == Interleaved(0, b"\x80\xeb first packet")
    body = whole[2]
    assert isinstance(body, Response) and body.body.endswith(b"RTP/AVP 107")
    req = whole[4]
    assert isinstance(req, Request) and (req.method, req.uri) == ("GET_PARAMETER", "rtsp://h/x")
    for piece in range(1, 40):
        assert messages(STREAM, piece) == whole
    # Stray line ends between messages (some servers send them) are skipped.
    assert messages(b"\r\n" + STREAM + b"\r\n", 7) == whole


def test_limits_and_garbage() -> None:
    parser = RtspParser(max_head=100)
    parser.feed(b"RTSP/1.0 200 OK\r\n" + b"X: y\r\n" * 40)
    with pytest.raises(PacketTooLarge):
        parser.next_message()
    parser = RtspParser(max_body=10)
    parser.feed(b"RTSP/1.0 200 OK\r\nContent-Length: 11\r\n\r\n")
    with pytest.raises(PacketTooLarge):
        parser.next_message()
    parser = RtspParser()
    parser.feed(b"HELLO THERE\r\n\r\n")
    with pytest.raises(ProtocolError):
        parser.next_message()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=32))
def test_fuzz_parser_gives_messages_or_typed_errors(data: bytes, piece: int) -> None:
    parser = RtspParser(max_head=200, max_body=200)
    try:
        for i in range(0, len(data), piece):
            parser.feed(data[i : i + piece])
            list(parser)
    except ProtocolError:
        pass
    assert parser.buffered <= len(data)


def test_sdp_of_real_servers() -> None:
    gst = parse_sdp((FIXTURES / "rtsp" / "gst_rtsp_server.sdp").read_text())
    track = gst.metadata
    assert track is not None and track.encoding == "vnd.onvif.metadata"
    assert gst.control_url("rtsp://127.0.0.1:8554/onvif/metadata/", track) == (
        "rtsp://127.0.0.1:8554/onvif/metadata/stream=0"
    )
    cam = parse_sdp((FIXTURES / "rtsp" / "camera_absolute_controls.sdp").read_text())
    assert [m.describe() for m in cam.media] == [
        "video h264",
        "audio pcmu",
        "application vnd.onvif.metadata",
    ]
    assert cam.metadata is not None
    assert cam.control_url("rtsp://x/", cam.metadata) == "rtsp://192.0.2.10:554/main/trackID=3"
    assert parse_sdp((FIXTURES / "rtsp" / "video_only.sdp").read_text()).metadata is None


def test_headers() -> None:
    assert parse_session("12345678") == ("12345678", None)
    assert parse_session("12345678 ; timeout = 60") == ("12345678", 60)  # spaces tolerated
    assert parse_session("12345678;timeout=60") == ("12345678", 60)
    assert parse_transport("RTP/AVP/TCP;unicast;interleaved=2-3") == {
        "protocol": "RTP/AVP/TCP",
        "unicast": "",
        "interleaved": "2-3",
    }
    assert strip_userinfo("rtsp://u:p%40x@host:554/a?b") == "rtsp://host:554/a?b"


def test_digest_rfc2617_example() -> None:
    # RFC 2617 section 3.5, with the cnonce it uses.
    challenge = Challenge(
        "digest",
        {
            "realm": "testrealm@host.com",
            "qop": "auth,auth-int",
            "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "opaque": "5ccc069c403ebaf9f0171e9517f40e41",
        },
    )
    state = DigestState(challenge)
    from lprmeta.protocol import auth

    original = auth.secrets.token_hex
    auth.secrets.token_hex = lambda n=8: "0a4f113b"  # type: ignore[assignment]
    try:
        header = state.authorization("Mufasa", "Circle Of Life", "GET", "/dir/index.html")
    finally:
        auth.secrets.token_hex = original  # type: ignore[assignment]
    assert 'response="6629fae49393a05397450978507c4ef1"' in header
    assert check_digest(
        header,
        user="Mufasa",
        password="Circle Of Life",
        realm="testrealm@host.com",
        method="GET",
        nonce_ok=lambda n: n == "dcd98b7102dd2f0e8b11d0f600bfb0c093",
    )
    for wrong in ({"password": "circle of life"}, {"method": "PUT"}):
        kw = {"user": "Mufasa", "password": "Circle Of Life", "method": "GET", **wrong}
        assert not check_digest(header, realm="testrealm@host.com", nonce_ok=lambda n: True, **kw)


def test_challenges_and_basic() -> None:
    (digest, basic) = parse_challenges(
        ['Digest realm="a, b", nonce="n\\"q", algorithm=MD5', 'Basic realm="cam"']
    )
    assert digest.scheme == "digest" and digest.params["realm"] == "a, b"
    assert digest.params["nonce"] == 'n"q'
    assert basic.params == {"realm": "cam"}
    header = basic_authorization("admin", "p:w")
    assert check_basic(header, "admin", "p:w")
    assert not check_basic(header, "admin", "p:x")
    assert not check_basic(header, "root", "p:w")
    assert not check_basic("Basic !!!", "admin", "p:w")
    assert not check_basic(None, "admin", "p:w")


def test_rtp_round_trip_and_document_packetization() -> None:
    stream = RtpStream(107, ssrc=0x11223344, sequence=0xFFFF)
    doc = b"<tt:MetadataStream>" + b"x" * 250 + b"</tt:MetadataStream>"
    packets = [decode_rtp(p) for p in stream.document(doc, timestamp=90_000, mtu=100)]
    assert b"".join(p.payload for p in packets) == doc
    assert [p.marker for p in packets] == [False, False, True]
    assert [p.sequence for p in packets] == [0xFFFF, 0, 1]  # wraps
    assert {p.timestamp for p in packets} == {90_000}
    assert (
        decode_rtp(
            encode_rtp(b"", payload_type=96, sequence=1, timestamp=2, ssrc=3, marker=False)
        ).payload
        == b""
    )
    with pytest.raises(PayloadError):
        decode_rtp(b"\x80\x60")
    with pytest.raises(PayloadError):
        decode_rtp(b"\x40" + b"\x00" * 11)  # version 1


def test_h264_nal_units_and_fu_a() -> None:
    sps, pps, idr = b"\x67\x42\x00\x1e", b"\x68\xce", b"\x65" + bytes(range(256)) * 10
    nals = h264_nal_units(b"\x00\x00\x00\x01" + sps + b"\x00\x00\x01" + pps + b"\x00\x00\x01" + idr)
    assert nals == [sps, pps, idr]
    parts = list(h264_payloads(idr, 1000))
    assert len(parts) == 3 and all(len(p) <= 1000 for p in parts)
    assert parts[0][1] & 0x80 and parts[-1][1] & 0x40  # start and end bits
    assert b"".join(p[2:] for p in parts) == idr[1:]
    assert list(h264_payloads(sps, 1000)) == [sps]
