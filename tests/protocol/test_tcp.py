from __future__ import annotations

import contextlib
import json
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lprmeta.envelope import Read
from lprmeta.errors import FramingError, MetadataError, PacketTooLarge, PayloadError
from lprmeta.events import Brand, Color, Direction, Event, Kind, ListType, VehicleType
from lprmeta.protocol import tcp
from lprmeta.protocol.tcp import (
    NEED_DATA,
    Junk,
    Packet,
    PacketDecoder,
    Recognition,
    Reply,
    decode_metadata,
    decode_packet,
    encode_login,
    encode_recognition,
    encode_register,
)

from ..conftest import FIXTURES
from ..golden import assert_golden

TCP = FIXTURES / "tcp"
FIXTURE_FILES = sorted(TCP.glob("*.bin"))
EVENT_FIXTURES = [p for p in FIXTURE_FILES if not p.stem.startswith(("login", "register"))]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def decode_all(decoder: PacketDecoder) -> list[Packet | Junk]:
    return list(decoder)


def packets_of(data: bytes, *, piece: int | None = None) -> tuple[list[Packet], int]:
    """Feed ``data`` whole or in pieces; return the packets and the junk bytes skipped."""
    decoder = PacketDecoder()
    out: list[Packet | Junk] = []
    step = piece or len(data) or 1
    for i in range(0, len(data), step):
        decoder.feed(data[i : i + step])
        out.extend(decoder)
    return [p for p in out if isinstance(p, Packet)], decoder.skipped


def to_read(packet: Packet) -> Read:
    result = decode_packet(packet, camera="gate-1", received=NOW)
    assert isinstance(result, Read)
    return result


def to_event(packet: Packet) -> Event:
    return to_read(packet).event


@pytest.mark.parametrize("fixture", FIXTURE_FILES, ids=lambda p: p.stem)
def test_every_fixture_whole_bytewise_and_in_junk(fixture: Path) -> None:
    data = fixture.read_bytes()
    whole, skipped = packets_of(data)
    assert len(whole) == 1 and skipped == 0
    bytewise, _ = packets_of(data, piece=1)
    assert bytewise == whole
    junk = b"\x00garbage\xcc\x00\xffjunk"
    framed, skipped = packets_of(junk + data + junk + data + b"\xcc", piece=7)
    assert framed == whole * 2
    assert skipped == 2 * len(junk)


@pytest.mark.parametrize("fixture", EVENT_FIXTURES, ids=lambda p: p.stem)
def test_fixture_decodes_to_its_expected_event(fixture: Path) -> None:
    (packet,), _ = packets_of(fixture.read_bytes())
    assert_golden(to_read(packet), fixture)


def test_guide_example_every_field() -> None:
    (packet,), _ = packets_of((TCP / "recog_guide_example.bin").read_bytes())
    assert packet.command == 0x8801 and not packet.alt_size
    ev = to_event(packet)
    assert ev.kind is Kind.PLATE
    assert ev.time == datetime(2018, 5, 9, 12, 11, 30, tzinfo=UTC)  # 1525867890000 ms
    assert ev.plate == "AB1234"
    assert ev.country == "WOB/ZK"
    assert ev.roi == 1
    assert ev.speed_kmh == 100.0
    assert ev.direction is Direction.UNKNOWN
    assert ev.plate_color is Color.BLACK
    assert ev.vehicle.color is Color.BLACK
    assert ev.vehicle.type is VehicleType.CAR
    assert ev.vehicle.brand is Brand.BMW
    assert ev.confidence == 0.875
    assert ev.list is ListType.VISITOR
    assert ev.resolution == (1280, 720)
    assert ev.plate_box == (500, 400, 640, 440)
    assert ev.details["device_id"] == "04f912bbce94654089afe83cd88f70be"
    assert ev.details["distance"] == 30 and ev.details["azimuth"] == 3.5
    assert ev.details["vehicle_count"] == 50 and ev.details["image_count"] == 2
    pictures = to_read(packet).pictures
    assert [p.role for p in pictures] == ["plate", "full"]
    assert pictures[0].data.startswith(b"\xff\xd8")


def test_encoder_matches_the_guide_fixture_byte_for_byte() -> None:
    fixture = (TCP / "recog_guide_example.bin").read_bytes()
    (packet,), _ = packets_of(fixture)
    pictures = [p.data for p in to_read(packet).pictures]
    encoded = encode_recognition(
        Recognition(confidence=0.875, box=(500, 400, 640, 440), images=tuple(pictures))
    )
    assert encoded == fixture


def test_korean_plate() -> None:
    (packet,), _ = packets_of((TCP / "recog_korean_plate.bin").read_bytes())
    ev = to_event(packet)
    assert ev.plate == "부산02가1234"
    assert ev.raw["car_number"] == "부산02가1234"
    assert json.loads(json.dumps(ev.to_json(), ensure_ascii=False))["plate"] == "부산02가1234"


def test_image_roles_follow_the_guide() -> None:
    (no_plate,), _ = packets_of((TCP / "recog_no_plate_evidence.bin").read_bytes())
    assert [p.role for p in to_read(no_plate).pictures] == ["full", "evidence0"]
    (four,), _ = packets_of((TCP / "recog_four_images.bin").read_bytes())
    assert [p.role for p in to_read(four).pictures] == ["plate", "full", "evidence0", "evidence1"]


def test_short_and_long_metadata_keep_what_can_be_read() -> None:
    (short,), _ = packets_of((TCP / "recog_short_metadata.bin").read_bytes())
    ev = to_event(short)
    assert ev.plate == "AB1234" and ev.country == "WOB/ZK"
    assert ev.vehicle.brand is None and ev.resolution is None
    assert ev.raw["metadata_missing"][0] == "vehicle_type"
    assert ev.raw["metadata_missing"][-1] == "brand"
    (long,), _ = packets_of((TCP / "recog_long_metadata.bin").read_bytes())
    ev = to_event(long)
    assert ev.vehicle.brand is Brand.BMW
    assert ev.raw["extra"] == "010203040506" and ev.raw["extra_length"] == 6


def test_alternative_data_size_reading_is_accepted() -> None:
    (packet,), _ = packets_of((TCP / "recog_alt_size.bin").read_bytes())
    assert packet.alt_size
    assert to_event(packet).plate == "AB1234"


def test_replies() -> None:
    for name, result in [
        ("login_reply_200", "200"),
        ("login_reply_401", "401"),
        ("register_reply_guide", "200"),
    ]:
        (packet,), _ = packets_of((TCP / f"{name}.bin").read_bytes())
        reply = decode_packet(packet, camera="c", received=NOW)
        assert isinstance(reply, Reply)
        assert reply.result == result and reply.ok == (result == "200")
    (reg,), _ = packets_of((TCP / "register_reply_guide.bin").read_bytes())
    assert tcp.decode_reply(reg).body == {"result": "200", "registerAll": 1}


def test_request_encoders() -> None:
    login = encode_login("admin", "1234")
    assert login[:2] == b"\xcc\xff" and login[-2:] == b"\xff\xdd"
    assert struct.unpack_from("<HI", login, 2) == (0x0001, len(login) - 8)
    assert json.loads(login[8:-2]) == {"id": "admin", "password": "1234"}
    assert json.loads(encode_register(None)[8:-2]) == {"registerAll": 1}
    assert json.loads(encode_register(["vehiclecount"])[8:-2]) == {
        "registerAll": 0,
        "vehiclecount": 1,
    }


def test_unknown_command_is_kept() -> None:
    (packet,), _ = packets_of((TCP / "unknown_command.bin").read_bytes())
    ev = to_event(packet)
    assert ev.kind is Kind.EVENT
    assert ev.details["command"] == "0x8899"
    assert ev.raw == {"event": "Future Feature", "value": 7}
    binary = decode_packet(Packet(0x9999, b"\x00\x01"), camera="c", received=NOW)
    assert isinstance(binary, Read)
    assert binary.event.raw == {"data_hex": "0001", "data_length": 2}


def test_oversize_is_refused_without_allocating_and_resyncs() -> None:
    decoder = PacketDecoder(max_size=1000)
    good = (TCP / "login_reply_401.bin").read_bytes()
    decoder.feed(b"\xcc\xff" + struct.pack("<HI", 0x8801, 2_000_000_000) + good)
    with pytest.raises(PacketTooLarge) as info:
        decoder.next_event()
    assert info.value.size == 2_000_000_000 and info.value.limit == 1000
    assert decoder.buffered < 100  # nothing like the claimed size was reserved
    items = decode_all(decoder)
    assert isinstance(items[0], Junk)
    assert isinstance(items[-1], Packet) and items[-1].command == 0x8001


def test_missing_end_signature_is_a_framing_error_then_resync() -> None:
    good = (TCP / "login_reply_200.bin").read_bytes()
    bad = b"\xcc\xff" + struct.pack("<HI", 0x8001, 6) + b"abcdXXYY"
    decoder = PacketDecoder()
    decoder.feed(bad + good)
    with pytest.raises(FramingError):
        decoder.next_event()
    assert next(p for p in decode_all(decoder) if isinstance(p, Packet)).data == good[8:-2]


def test_partial_packet_waits() -> None:
    data = (TCP / "recog_guide_example.bin").read_bytes()
    decoder = PacketDecoder()
    decoder.feed(data[:-1])
    assert decoder.next_event() is NEED_DATA
    assert decoder.buffered == len(data) - 1


def test_bad_payloads_are_typed_errors() -> None:
    with pytest.raises(MetadataError):
        decode_packet(Packet(0x8801, b""), camera="c", received=NOW)
    with pytest.raises(MetadataError):
        decode_metadata(b"")
    with pytest.raises(PayloadError):
        decode_packet(Packet(0x8802, b"{not json"), camera="c", received=NOW)
    with pytest.raises(PayloadError):
        decode_packet(Packet(0x8802, b"[1, 2]"), camera="c", received=NOW)
    with pytest.raises(PayloadError):
        decode_packet(Packet(0x8001, b'{"no": "result"}'), camera="c", received=NOW)


def test_truncated_image_chunk_is_kept_and_reported() -> None:
    meta = tcp.encode_chunk(b"\x11\xff\x00\x00", tcp.encode_metadata(Recognition(images=(b"x",))))
    body = meta + b"\x22\xff\x00\x00" + struct.pack("<I", 100) + b"\xff\xd8only-part"
    read = to_read(Packet(0x8801, body))
    assert read.pictures[0].data == b"\xff\xd8only-part"
    assert "declares 100 bytes" in read.event.details["problems"][0]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(min_value=1, max_value=64))
def test_fuzz_decoder_never_fails_untyped(data: bytes, piece: int) -> None:
    decoder = PacketDecoder(max_size=4096)
    for i in range(0, len(data), piece):
        decoder.feed(data[i : i + piece])
        while True:
            try:
                item = decoder.next_event()
            except (FramingError, PacketTooLarge):
                continue
            if item is NEED_DATA:
                break
            if isinstance(item, Packet):
                with contextlib.suppress(PayloadError):
                    decode_packet(item, camera="c", received=NOW)
    assert decoder.buffered <= len(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_recognition_payload(data: bytes) -> None:
    try:
        read = decode_packet(Packet(0x8801, data), camera="c", received=NOW)
    except PayloadError:
        return
    assert isinstance(read, Read)
    json.dumps(read.event.to_json())


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=200))
def test_metadata_read_in_two_calls_equals_field_by_field(data: bytes) -> None:
    """The fast path (two precompiled Structs) reads exactly what the field-by-field
    reading does, for chunks of every length: short, exact, with extra bytes."""
    from lprmeta.protocol.tcp import _metadata_field_by_field, decode_metadata

    assert repr(decode_metadata(data)) == repr(_metadata_field_by_field(data))


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=80, max_size=80),
    st.integers(0, 24),
    st.binary(min_size=0, max_size=80),
)
def test_metadata_fast_path_taken_equals_field_by_field(
    head: bytes, plate_length: int, rest: bytes
) -> None:
    from lprmeta.protocol.tcp import _metadata_field_by_field, decode_metadata

    data = head[:79] + bytes([plate_length]) + rest
    # repr: a NaN confidence is not equal to itself, but prints the same.
    assert repr(decode_metadata(data)) == repr(_metadata_field_by_field(data))
