"""The simulated camera's RTSP server, checked with Debian's ffprobe/ffmpeg and a raw client."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator

import pytest

from lprmeta.protocol.rtsp import Response, RtspParser, encode_request, parse_session
from lprmeta.simulator.rtsp import RtspCameraServer

pytestmark = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs Debian's ffmpeg")

PASSWORD = "ff-probe-pw"


@pytest.fixture
async def server() -> AsyncIterator[RtspCameraServer]:
    srv = RtspCameraServer(password=PASSWORD, video=True, session_timeout=2)
    await srv.start()
    yield srv
    await srv.close()


async def run(*cmd: str, timeout: float = 20) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out, err


async def test_ffprobe_sees_video_and_metadata(server: RtspCameraServer) -> None:
    code, out, err = await run(
        "ffprobe",
        "-v",
        "error",
        # 1 s to look (default 5 s): the video's size is in its first frames, and the
        # metadata track is in the SDP; it carries nothing until a plate passes.
        "-analyzeduration",
        "1000000",
        "-rtsp_transport",
        "tcp",
        "-show_streams",
        "-of",
        "json",
        server.url_with_credentials(),
    )
    assert code == 0, err.decode()
    streams = json.loads(out)["streams"]
    assert [(s["codec_type"], s.get("codec_name")) for s in streams] == [
        ("video", "h264"),
        ("data", None),
    ]
    assert (streams[0]["width"], streams[0]["height"]) == (160, 120)
    assert server.counters["unauthorized"] >= 1  # it had to answer a Digest challenge


async def test_ffmpeg_copies_the_metadata_track(server: RtspCameraServer) -> None:
    doc = b'<tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema"/>'
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg",
        "-v",
        "error",
        "-rtsp_transport",
        "tcp",
        "-allowed_media_types",
        "data",
        "-i",
        server.url_with_credentials(),
        "-map",
        "0:d",
        "-c",
        "copy",
        "-f",
        "data",
        "-",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await server.wait_playing()
    for _ in range(3):
        await server.send_document(doc)
    assert proc.stdout is not None
    got = await asyncio.wait_for(proc.stdout.readexactly(3 * len(doc)), 10)
    assert got == doc * 3
    proc.terminate()
    await proc.wait()


async def test_wrong_password_is_refused(server: RtspCameraServer) -> None:
    code, _, err = await run(
        "ffprobe",
        "-v",
        "error",
        # 1 s to look (default 5 s): the video's size is in its first frames, and the
        # metadata track is in the SDP; it carries nothing until a plate passes.
        "-analyzeduration",
        "1000000",
        "-rtsp_transport",
        "tcp",
        server.url_with_credentials(password="nope"),
    )
    assert code != 0 and b"401" in err


async def test_session_timeout_is_enforced() -> None:
    srv = RtspCameraServer(auth="none", session_timeout=1)
    await srv.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        parser = RtspParser()

        async def ask(method: str, uri: str, cseq: int, *headers: tuple[str, str]) -> Response:
            writer.write(encode_request(method, uri, cseq, list(headers)))
            while True:
                msg = parser.next_message()
                if isinstance(msg, Response):
                    return msg
                parser.feed(await reader.read(4096))

        await ask("DESCRIBE", srv.url, 1)
        setup = await ask(
            "SETUP", srv.url + "/track2", 2, ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")
        )
        sid, timeout = parse_session(setup.headers.get("Session"))
        assert timeout == 1
        await ask("PLAY", srv.url, 3, ("Session", sid))
        # Keep-alives keep it alive...
        for cseq in range(4, 8):
            await asyncio.sleep(0.5)
            assert (await ask("GET_PARAMETER", srv.url, cseq, ("Session", sid))).status == 200
        # ...silence ends it: the camera closes the connection.
        assert await asyncio.wait_for(reader.read(), 3) == b""
        assert srv.counters["expired"] == 1
        writer.close()
    finally:
        await srv.close()
