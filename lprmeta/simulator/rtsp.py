"""The simulated camera's RTSP server: an ONVIF metadata track, like a Milesight camera's.

Speaks RTSP 1.0 over TCP with RTP interleaved on the same connection (the
only transport lprmeta asks for): OPTIONS, DESCRIBE, SETUP, PLAY,
GET_PARAMETER, SET_PARAMETER, TEARDOWN; Basic or Digest authentication.

Like a strict camera it **enforces the session timeout** it advertises
(``Session: <id>;timeout=<n>``): a session with no RTSP request (or RTCP
packet) from its client for that long is torn down and its connection
closed. That is what makes a quiet metadata stream die when the client only
sends keep-alives after packets arrive, as FFmpeg does.

Documents sent with :meth:`RtspCameraServer.send_document` are cut into RTP
packets of at most ``mtu`` bytes that share a timestamp (marker on the
last). An optional H.264 track plays a short clip in a loop, so tools that
want video (ffprobe) get real video.

Fault modes (:class:`RtspFaults`) make it freeze (answer nothing, send
nothing, keep connections open), omit the metadata track from DESCRIBE, or
stop sending in the middle of a document.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ProtocolError
from ..log import get_logger
from ..protocol.auth import check_basic, check_digest, digest_challenge
from ..protocol.rtp import H264_PT, METADATA_PT, RtpStream, h264_fmtp, h264_nal_units
from ..protocol.rtsp import (
    Interleaved,
    Request,
    RtspParser,
    encode_interleaved,
    encode_response,
    parse_session,
    parse_transport,
)

__all__ = ["RtspCameraServer", "RtspFaults"]

H264_CLIP = Path(__file__).resolve().parent / "testsrc-160x120-5fps.h264"
_METHODS = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, GET_PARAMETER, SET_PARAMETER, TEARDOWN"
_MAX_BUFFERED = 4 * 1024 * 1024  # a client this far behind is dropped, as a camera would


@dataclass
class RtspFaults:
    """Misbehaviour, switched on by tests and demos."""

    # Answer nothing and send nothing; connections stay open (a hung camera).
    frozen: bool = False
    # DESCRIBE offers no ONVIF metadata track (a stream profile without one).
    no_metadata_track: bool = False
    # The next document: send only this many of its packets, then carry on as usual.
    cut_next_document_after: int | None = None
    # Refuse new connections (closed at once).
    refuse: bool = False
    # Hang up when asked to PLAY (as cameras do at their session limit).
    close_on_play: bool = False


@dataclass(eq=False)
class _Track:
    name: str  # "metadata" or "video"
    channel: int
    stream: RtpStream


@dataclass(eq=False)
class _Session:
    id: str
    conn: _Conn
    tracks: dict[str, _Track] = field(default_factory=dict)
    playing: bool = False
    last_active: float = field(default_factory=time.monotonic)

    def touch(self) -> None:
        self.last_active = time.monotonic()


@dataclass(eq=False)
class _Conn:
    writer: asyncio.StreamWriter
    sessions: list[_Session] = field(default_factory=list)

    def send(self, data: bytes) -> bool:
        transport = self.writer.transport
        if transport.is_closing():
            return False
        if transport.get_write_buffer_size() > _MAX_BUFFERED:
            transport.abort()
            return False
        self.writer.write(data)
        return True


class RtspCameraServer:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/onvif/metadata",
        username: str = "admin",
        password: str = "sim-password",
        auth: str = "digest",
        session_timeout: int = 60,
        video: bool = False,
        mtu: int = 1200,
    ) -> None:
        if auth not in ("none", "basic", "digest"):
            raise ValueError("auth must be none, basic or digest")
        self.host = host
        self.port = port
        self.path = "/" + path.strip("/")
        self.username = username
        self.password = password
        self.auth = auth
        self.session_timeout = session_timeout
        self.video = video
        self.mtu = mtu
        self.faults = RtspFaults()
        # Called (with the number of sessions playing) right after a PLAY reply is
        # written: a test can send a document at exactly that moment.
        self.on_play: Callable[[int], None] | None = None
        self.realm = "LPR Camera"
        self.sessions: dict[str, _Session] = {}
        self.counters: dict[str, int] = {}
        self._nonces: list[str] = []
        self._conns: set[_Conn] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._thawed = asyncio.Event()
        self._thawed.set()
        self._changed = asyncio.Condition()
        self._clip = self._load_clip() if video else []
        self._sps_pps = (
            next((n for au in self._clip for n in au if n[0] & 0x1F == 7), b""),
            next((n for au in self._clip for n in au if n[0] & 0x1F == 8), b""),
        )
        self._log = get_logger("lprmeta.simulator.rtsp")

    # ------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"rtsp://{self.host}:{self.port}{self.path}"

    def url_with_credentials(self, username: str | None = None, password: str | None = None) -> str:
        user = self.username if username is None else username
        pw = self.password if password is None else password
        return f"rtsp://{user}:{pw}@{self.host}:{self.port}{self.path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._spawn(self._watchdog())
        if self.video:
            self._spawn(self._play_video())

    async def close(self) -> None:
        """Stop like a killed camera: every connection closed at once."""
        if self._server is not None:
            self._server.close()
        self.thaw()  # handlers parked on a freeze must run to their end
        for conn in list(self._conns):
            conn.writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=2)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        self._server = None
        self.sessions.clear()

    def freeze(self) -> None:
        self.faults.frozen = True
        self._thawed.clear()

    def thaw(self) -> None:
        self.faults.frozen = False
        self._thawed.set()

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def playing(self) -> list[_Session]:
        return [s for s in self.sessions.values() if s.playing and "metadata" in s.tracks]

    async def wait_playing(self, n: int = 1, timeout: float = 10.0) -> None:
        """Until at least ``n`` sessions play the metadata track."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.playing) >= n)

    def _notify(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        self._spawn(notify())

    # ------------------------------------------------------------ sending

    async def send_document(self, doc: bytes) -> int:
        """Send one metadata document to every playing session; returns how many got it."""
        sent = self.broadcast(doc)
        if sent:
            await asyncio.sleep(0)  # let the transports write
        return sent

    def broadcast(self, doc: bytes) -> int:
        """:meth:`send_document` without yielding (usable from an ``on_play`` hook)."""
        if self.faults.frozen:
            return 0
        cut = self.faults.cut_next_document_after
        self.faults.cut_next_document_after = None
        timestamp = int(time.monotonic() * 90_000)
        sent = 0
        for session in self.playing:
            track = session.tracks["metadata"]
            packets = track.stream.document(doc, timestamp=timestamp, mtu=self.mtu)
            if cut is not None:
                packets = packets[:cut]
            data = b"".join(encode_interleaved(track.channel, p) for p in packets)
            if session.conn.send(data):
                sent += 1
        self._count("documents")
        return sent

    async def _play_video(self) -> None:
        frame = 0
        while True:
            await asyncio.sleep(0.2)  # the clip is 5 frames/s
            if self.faults.frozen or not self._clip:
                continue
            nals = self._clip[frame % len(self._clip)]
            timestamp = frame * 18_000
            frame += 1
            for session in list(self.sessions.values()):
                track = session.tracks.get("video")
                if not session.playing or track is None:
                    continue
                packets = track.stream.access_unit(nals, timestamp=timestamp, mtu=self.mtu)
                session.conn.send(b"".join(encode_interleaved(track.channel, p) for p in packets))

    @staticmethod
    def _load_clip() -> list[list[bytes]]:
        """The clip as access units: parameter sets and SEI travel with the next picture."""
        units: list[list[bytes]] = []
        pending: list[bytes] = []
        for nal in h264_nal_units(H264_CLIP.read_bytes()):
            pending.append(nal)
            if nal[0] & 0x1F in (1, 5):  # a coded picture ends the access unit
                units.append(pending)
                pending = []
        return units

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            if self.faults.frozen:
                continue
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if now - session.last_active > self.session_timeout:
                    self._count("expired")
                    self._log.info("session timed out; closing", session=session.id)
                    self._end(session)
                    session.conn.writer.transport.abort()

    def _end(self, session: _Session) -> None:
        self.sessions.pop(session.id, None)
        if session in session.conn.sessions:
            session.conn.sessions.remove(session)

    # ------------------------------------------------------------ serving

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer)
        if self.faults.refuse:
            writer.transport.abort()
            return
        me = asyncio.current_task()
        if me is not None:
            self._handlers.add(me)
            me.add_done_callback(self._handlers.discard)
        self._conns.add(conn)
        parser = RtspParser()
        try:
            while data := await reader.read(65536):
                await self._thawed.wait()
                if writer.transport.is_closing():
                    break
                parser.feed(data)
                for msg in parser:
                    await self._thawed.wait()
                    if isinstance(msg, Interleaved):
                        for s in conn.sessions:  # RTCP from the client: it is alive
                            s.touch()
                    elif isinstance(msg, Request):
                        if msg.method == "PLAY" and self.faults.close_on_play:
                            writer.transport.abort()
                            break
                        conn.send(self._respond(msg, conn))
        except (ConnectionError, OSError, ProtocolError):
            pass
        finally:
            self._conns.discard(conn)
            for session in list(conn.sessions):
                self._end(session)
            writer.transport.abort()

    def _authorized(self, req: Request) -> bool:
        if self.auth == "none":
            return True
        header = req.headers.get("Authorization")
        if self.auth == "basic":
            return check_basic(header, self.username, self.password)
        return check_digest(
            header,
            user=self.username,
            password=self.password,
            realm=self.realm,
            method=req.method,
            nonce_ok=self._nonces.__contains__,
        )

    def _challenge(self) -> list[tuple[str, str]]:
        if self.auth == "basic":
            return [("WWW-Authenticate", f'Basic realm="{self.realm}"')]
        nonce = secrets.token_hex(16)
        self._nonces = [*self._nonces[-63:], nonce]
        return [("WWW-Authenticate", digest_challenge(self.realm, nonce))]

    def _respond(self, req: Request, conn: _Conn) -> bytes:
        cseq = req.headers.cseq
        sid, _ = parse_session(req.headers.get("Session"))
        session = self.sessions.get(sid) if sid else None
        if session is not None:
            session.touch()
        if req.method == "OPTIONS":
            return encode_response(200, "OK", cseq, [("Public", _METHODS)])
        if not self._authorized(req):
            self._count("unauthorized")
            return encode_response(401, "Unauthorized", cseq, self._challenge())
        handler = {
            "DESCRIBE": self._describe,
            "SETUP": self._setup,
            "PLAY": self._play,
            "PAUSE": self._pause,
            "TEARDOWN": self._teardown,
            "GET_PARAMETER": self._keepalive,
            "SET_PARAMETER": self._keepalive,
        }.get(req.method)
        if handler is None:
            return encode_response(501, "Not Implemented", cseq)
        self._count(req.method.lower())
        return handler(req, conn, session)

    def _path_of(self, uri: str) -> str:
        rest = uri.split("://", 1)[-1]
        return "/" + rest.split("/", 1)[1] if "/" in rest else "/"

    def _describe(self, req: Request, conn: _Conn, session: _Session | None) -> bytes:
        cseq = req.headers.cseq
        if self._path_of(req.uri).rstrip("/") != self.path:
            return encode_response(404, "Not Found", cseq)
        base = f"rtsp://{self.host}:{self.port}{self.path}/"
        sdp = "\r\n".join(self._sdp_lines()) + "\r\n"
        headers = [("Content-Base", base), ("Content-Type", "application/sdp")]
        return encode_response(200, "OK", cseq, headers, sdp.encode())

    def _sdp_lines(self) -> Iterable[str]:
        yield "v=0"
        yield f"o=- {int(time.time())} 1 IN IP4 {self.host}"
        yield "s=Milesight LPR camera (lprmeta simulator)"
        yield "t=0 0"
        yield "a=control:*"
        yield "a=range:npt=now-"
        if self.video:
            sps, pps = self._sps_pps
            yield f"m=video 0 RTP/AVP {H264_PT}"
            yield f"a=rtpmap:{H264_PT} H264/90000"
            yield f"a=fmtp:{H264_PT} {h264_fmtp(sps, pps)}"
            yield "a=control:track1"
        if not self.faults.no_metadata_track:
            yield f"m=application 0 RTP/AVP {METADATA_PT}"
            yield f"a=rtpmap:{METADATA_PT} vnd.onvif.metadata/90000"
            yield "a=control:track2"

    def _setup(self, req: Request, conn: _Conn, session: _Session | None) -> bytes:
        cseq = req.headers.cseq
        path = self._path_of(req.uri).rstrip("/")
        name = {"track1": "video", "track2": "metadata"}.get(path.rpartition("/")[2])
        if name is None or (name == "video" and not self.video) or not path.startswith(self.path):
            return encode_response(404, "Not Found", cseq)
        if name == "metadata" and self.faults.no_metadata_track:
            return encode_response(404, "Not Found", cseq)
        transport = parse_transport(req.headers.get("Transport"))
        if "TCP" not in transport.get("protocol", "").upper():
            return encode_response(461, "Unsupported Transport", cseq)
        if session is None:
            session = _Session(secrets.token_hex(4).upper(), conn)
            self.sessions[session.id] = session
            conn.sessions.append(session)
        channels = transport.get("interleaved", "")
        first = int(channels.split("-")[0]) if channels.split("-")[0].isdecimal() else None
        if first is None:
            first = 2 * len(session.tracks)
        track = _Track(name, first, RtpStream(METADATA_PT if name == "metadata" else H264_PT))
        session.tracks[name] = track
        reply = [
            ("Session", f"{session.id};timeout={self.session_timeout}"),
            (
                "Transport",
                f"RTP/AVP/TCP;unicast;interleaved={first}-{first + 1};ssrc={track.stream.ssrc:08X}",
            ),
        ]
        return encode_response(200, "OK", cseq, reply)

    def _play(self, req: Request, conn: _Conn, session: _Session | None) -> bytes:
        cseq = req.headers.cseq
        if session is None:
            return encode_response(454, "Session Not Found", cseq)
        session.playing = True
        self._notify()
        if self.on_play is not None:  # after the reply below is written (media follows it)
            asyncio.get_running_loop().call_soon(self.on_play, len(self.playing))
        base = f"rtsp://{self.host}:{self.port}{self.path}/"
        info = ",".join(
            f"url={base}{'track1' if t.name == 'video' else 'track2'};seq={t.stream.sequence};"
            f"rtptime={int(time.monotonic() * 90_000) & 0xFFFFFFFF}"
            for t in session.tracks.values()
        )
        headers = [("Session", session.id), ("Range", "npt=0.000-"), ("RTP-Info", info)]
        return encode_response(200, "OK", cseq, headers)

    def _pause(self, req: Request, conn: _Conn, session: _Session | None) -> bytes:
        if session is None:
            return encode_response(454, "Session Not Found", req.headers.cseq)
        session.playing = False
        return encode_response(200, "OK", req.headers.cseq, [("Session", session.id)])

    def _teardown(self, req: Request, conn: _Conn, session: _Session | None) -> bytes:
        if session is not None:
            self._end(session)
        return encode_response(200, "OK", req.headers.cseq)

    def _keepalive(self, req: Request, conn: _Conn, session: _Session | None) -> bytes:
        headers = [("Session", session.id)] if session is not None else []
        return encode_response(200, "OK", req.headers.cseq, headers)
