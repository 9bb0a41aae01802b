#!/usr/bin/python3
"""An RTSP server from Debian's gst-rtsp-server that serves an ONVIF metadata track.

A second, independent RTSP implementation to test lprmeta's RTSP input against
(the first is lprmeta's own simulator). Runs under Debian's /usr/bin/python3,
which has PyGObject (python3-gi); it imports nothing from lprmeta.

Debian 12 has no ONVIF metadata payloader, so each session's pipeline is an
``appsrc`` named ``pay0`` with RTP caps, and this script writes the RTP
packets itself: a document is cut into payloads of at most ``mtu`` bytes that
share one RTP timestamp, the last with the marker bit (ONVIF Streaming Spec,
"Metadata streaming").

Control: one JSON object per line on stdin, replies as JSON lines on stdout::

    {"op": "doc", "xml": "<tt:MetadataStream ...>", "mtu": 1200}
        -> {"sent": <sessions that got it>}
    {"op": "playing"} -> {"playing": <clients playing>}

It prints ``{"ready": <port>}`` once listening, ``{"playing": <n>}`` whenever
the number of playing clients changes, and ``{"expired": 1}`` when it tears a
client down for silence.

gst-rtsp-server itself never expires a session while its TCP connection is
open (it calls ``gst_rtsp_session_prevent_expire`` for interleaved
transports). A real camera does, and that is the behaviour under test, so this
script enforces the timeout it advertises: a playing client that sends no RTSP
request for ``--timeout`` seconds is closed.

    gst_onvif_server.py --port 8554 [--timeout 10] [--auth digest --user u --password p]
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

CAPS = (
    "application/x-rtp,media=application,clock-rate=90000,"
    "encoding-name=VND.ONVIF.METADATA,payload=107"
)


def say(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Track:
    """One session's appsrc and its RTP numbering."""

    def __init__(self, appsrc: Gst.Element) -> None:
        self.appsrc = appsrc
        self.seq = random.randrange(0, 65536)
        self.ssrc = random.getrandbits(32)

    def push(self, xml: bytes, mtu: int) -> None:
        ts = int(time.monotonic() * 90000) & 0xFFFFFFFF
        parts = [xml[i : i + mtu] for i in range(0, len(xml), mtu)] or [b""]
        for i, part in enumerate(parts):
            marker = 0x80 if i == len(parts) - 1 else 0
            header = struct.pack("!BBHII", 0x80, marker | 107, self.seq, ts, self.ssrc)
            self.seq = (self.seq + 1) & 0xFFFF
            self.appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(header + part))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/onvif/metadata")
    ap.add_argument("--timeout", type=int, default=60, help="session timeout (s)")
    ap.add_argument("--auth", choices=["none", "basic", "digest"], default="none")
    ap.add_argument("--user", default="admin")
    ap.add_argument("--password", default="")
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f'( appsrc name=pay0 is-live=true format=time caps="{CAPS}" )')
    factory.set_shared(False)
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    tracks: list[Track] = []
    lock = threading.Lock()

    def on_configure(_factory: object, media: GstRtspServer.RTSPMedia) -> None:
        track = Track(media.get_element().get_child_by_name("pay0"))
        # A live appsrc negotiates only once data flows, and DESCRIBE waits for that:
        # prime it with an empty packet (a client that is not yet playing never sees it).
        track.push(b"", 1200)
        with lock:
            tracks.append(track)

        def gone(_media: object) -> None:
            with lock:
                if track in tracks:
                    tracks.remove(track)

        media.connect("unprepared", gone)

    factory.connect("media-configure", on_configure)

    if args.auth != "none":
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        if args.auth == "basic":
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        else:
            auth.add_digest(args.user, args.password, token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        server.set_auth(auth)
        factory.add_role_from_structure(
            Gst.Structure.new_from_string(
                "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
            )
        )

    server.get_mount_points().add_factory(args.path, factory)

    last_request: dict[GstRtspServer.RTSPClient, float] = {}
    playing: set[GstRtspServer.RTSPClient] = set()

    def report() -> None:
        say({"playing": len(playing)})

    def on_client(_server: object, client: GstRtspServer.RTSPClient) -> None:
        client.connect("new-session", lambda _c, s: s.set_timeout(args.timeout))
        last_request[client] = time.monotonic()

        def touch(*_a: object) -> None:
            last_request[client] = time.monotonic()

        for signal in (
            "options-request",
            "describe-request",
            "setup-request",
            "get-parameter-request",
            "set-parameter-request",
            "pause-request",
        ):
            client.connect(signal, touch)

        def on_play(*_a: object) -> None:
            touch()
            playing.add(client)
            report()

        def on_gone(*_a: object) -> None:
            last_request.pop(client, None)
            if client in playing:
                playing.discard(client)
                report()

        client.connect("play-request", on_play)
        client.connect("teardown-request", on_gone)
        client.connect("closed", on_gone)

    def expire() -> bool:
        now = time.monotonic()
        for client in list(playing):
            if now - last_request.get(client, now) > args.timeout:
                say({"expired": 1})
                playing.discard(client)
                last_request.pop(client, None)
                client.close()
                report()
        return True

    server.connect("client-connected", on_client)
    GLib.timeout_add(100, expire)
    server.attach(None)

    loop = GLib.MainLoop()

    def handle(line: str) -> bool:
        if not line:
            loop.quit()
            return False
        cmd = json.loads(line)
        if cmd["op"] == "doc":
            xml = cmd["xml"].encode("utf-8")
            with lock:
                live = list(tracks)
            for track in live:
                track.push(xml, int(cmd.get("mtu", 1200)))
            say({"sent": len(live)})
        elif cmd["op"] == "playing":
            say({"playing": len(playing)})
        return True

    def on_stdin(_source: object, _cond: object) -> bool:
        return handle(sys.stdin.readline())

    GLib.io_add_watch(sys.stdin, GLib.PRIORITY_DEFAULT, GLib.IO_IN | GLib.IO_HUP, on_stdin)
    say({"ready": args.port})
    loop.run()


if __name__ == "__main__":
    main()
