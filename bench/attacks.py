"""Hostile and odd cameras against one daemon, each with a well-behaved witness camera.

Every attack of the reliability issue runs against a fresh ``lprmeta run`` (a
subprocess, as a user runs it) on loopback: the attacker speaks from 127.0.0.2
(the whole 127/8 is loopback), the witness from 127.0.0.1. The witness TCP
camera sends a read every 100 ms from before the attack until after it; a
witness HTTP camera posts every 200 ms. Printed per attack:

* the witness's worst delay (read sent -> its line on stdout) and how many of
  its reads never arrived,
* the HTTP witness's worst request time,
* the daemon's peak RSS (VmHWM) and whether it was still alive and delivering,
* what the attack itself got back (status codes), where that says something.

``--tree DIR`` runs the daemon from another checkout (the "before" figures:
``git worktree add /tmp/before <rev>`` then ``--tree /tmp/before``); the
attackers and the witness always come from this checkout. Loopback only.

    .venv/bin/python bench/attacks.py [--only NAME ...] [--tree DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from lprmeta.protocol.tcp import (  # noqa: E402
    COMM_PARKING_POST,
    COMM_RECOG_POST,
    Recognition,
    encode_chunk,
    encode_metadata,
    encode_packet,
)
from lprmeta.simulator import ReadFactory, TcpCameraServer  # noqa: E402
from lprmeta.simulator.rtsp import RtspCameraServer  # noqa: E402
from lprmeta.simulator.script import onvif_notification  # noqa: E402

ATTACKER = "127.0.0.2"
_JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 60 + b"\xff\xd9"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    """``lprmeta run`` in a subprocess; stdout lines timed as they arrive (a reader that can
    be paused, to play a stalled consumer)."""

    def __init__(self, tree: Path, config: dict[str, Any], tmp: Path) -> None:
        self.tmp = tmp
        path = tmp / "config.toml"
        path.write_text(_toml(config))
        env = {**os.environ, "PYTHONPATH": str(tree)}

        def limits() -> None:  # the common default descriptor limit, as under systemd
            resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lprmeta", "run", "--config", str(path), "--log-format", "json"],
            cwd=tmp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=limits,  # noqa: PLW1509  # no threads in this process yet that matter
        )
        self.arrived: dict[str, float] = {}
        self.lines = 0
        self.bad_lines = 0
        self.stderr_bytes = 0
        self.stalls: list[dict[str, Any]] = []  # the watchdog's reports
        self.running = threading.Event()
        self.running.set()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._errs, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.running.wait()
            now = time.monotonic()
            self.lines += 1
            try:
                plate = json.loads(line).get("plate")
            except ValueError:
                self.bad_lines += 1
                continue
            if isinstance(plate, str):
                self.arrived.setdefault(plate, now)

    def _errs(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_bytes += len(line)
            if b"event loop" in line:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("event", "").startswith(("event loop ran again", "event loop st")):
                    self.stalls.append(record)

    def peak_rss_mib(self) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def _toml(data: dict[str, Any]) -> str:
    out: list[str] = []

    def value(v: Any) -> str:
        return json.dumps(v) if not isinstance(v, bool) else ("true" if v else "false")

    def table(prefix: str, d: dict[str, Any]) -> None:
        simple = {k: v for k, v in d.items() if not isinstance(v, dict | list)}
        if prefix:
            out.append(f"[{prefix}]")
        out.extend(f"{k} = {value(v)}" for k, v in simple.items())
        for k, v in d.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}" if prefix else k, v)
            elif isinstance(v, list):
                for item in v:
                    out.append(f"[[{prefix + '.' if prefix else ''}{k}]]")
                    out.extend(
                        f"{ik} = {value(iv)}" for ik, iv in item.items() if not isinstance(iv, dict)
                    )
                    for ik, iv in item.items():
                        if isinstance(iv, dict):
                            table(f"{prefix + '.' if prefix else ''}{k}.{ik}", iv)

    table("", data)
    return "\n".join(out) + "\n"


class Scene:
    """A daemon with a witness TCP camera, a witness HTTP camera, and what an attack needs."""

    def __init__(self, tree: Path, tmp: Path) -> None:
        self.tree = tree
        self.tmp = tmp
        self.witness = TcpCameraServer(password="witness-pw")
        self.hostile = TcpCameraServer(password="hostile-pw")
        self.rtsp_hostile = RtspCameraServer(auth="none")
        self.rtsp_witness = RtspCameraServer(auth="none")
        self.http_port = free_port()
        self.factory = ReadFactory(seed=7)
        self.sent: dict[str, float] = {}
        self.http_times: list[float] = []
        self.http_errors = 0
        self.daemon: Daemon | None = None
        self.extra_cameras: list[dict[str, Any]] = []

    async def start(self, *, rtsp: bool = False) -> Daemon:
        await self.witness.start()
        await self.hostile.start()
        cameras: list[dict[str, Any]] = [
            {
                "name": "witness",
                "host": "127.0.0.1",
                "password": "witness-pw",
                "tcp": {"port": self.witness.port, "backoff_initial": 0.05, "backoff_max": 0.5},
            },
            {
                "name": "hostile",
                "host": "127.0.0.1",
                "password": "hostile-pw",
                "tcp": {"port": self.hostile.port, "backoff_initial": 0.05, "backoff_max": 0.5},
                "http": {"path": "/lpr/hostile"},
            },
            {"name": "httpwit", "host": "127.0.0.9", "http": {"path": "/lpr/httpwit"}},
            *self.extra_cameras,
        ]
        if rtsp:
            await self.rtsp_hostile.start()
            await self.rtsp_witness.start()
            for name, server in (("rtsphost", self.rtsp_hostile), ("rtspwit", self.rtsp_witness)):
                cameras.append(
                    {
                        "name": name,
                        "host": "127.0.0.1",
                        "http_port": free_port(),
                        "rtsp": {"url": server.url, "pictures": False},
                    }
                )
        config = {
            "output": {"snapshot_dir": str(self.tmp / "snapshots")},
            "http": {"listen": f"127.0.0.1:{self.http_port}"},
            "cameras": cameras,
        }
        self.daemon = Daemon(self.tree, config, self.tmp)
        await self.witness.wait_for_clients(1, timeout=30)
        if rtsp:
            await self.rtsp_witness.wait_playing(1, timeout=30)
            await self.rtsp_hostile.wait_playing(1, timeout=30)
        return self.daemon

    async def tcp_witness(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            plate = f"WIT{n:05d}"
            n += 1
            self.sent[plate] = time.monotonic()
            await self.witness.send_read(self.factory.next(plate=plate))
            await asyncio.sleep(0.1)

    async def http_witness(self, stop: asyncio.Event) -> None:
        url = f"http://127.0.0.1:{self.http_port}/lpr/httpwit"
        n = 0
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                plate = f"HWIT{n:05d}"
                n += 1
                t0 = time.monotonic()
                try:
                    async with session.post(url, json={"Plate": plate}) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                self.http_times.append(time.monotonic() - t0)
                if not ok:
                    self.http_errors += 1
                await asyncio.sleep(0.2)

    async def close(self) -> None:
        for server in (self.witness, self.hostile, self.rtsp_hostile, self.rtsp_witness):
            await server.close()


def attacker_session(limit: int = 100) -> aiohttp.ClientSession:
    conn = aiohttp.TCPConnector(local_addr=(ATTACKER, 0), limit=limit, force_close=True)
    return aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=120))


async def post(scene: Scene, body: bytes, headers: dict[str, str] | None = None) -> str:
    async with (
        attacker_session() as s,
        s.post(
            f"http://127.0.0.1:{scene.http_port}/lpr/hostile",
            data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        ) as r,
    ):
        return str(r.status)


# ----------------------------------------------------------------------------- attacks

Attack = Callable[[Scene], Awaitable[str]]


async def tcp_json_time(scene: Scene) -> str:
    body = {"Plate": "HOSTTIME", "time": "0001-01-01T00:00:00+14:00", "Region": 1}
    await scene.hostile.wait_for_clients(1)
    await scene.hostile.send_post(COMM_PARKING_POST, body)
    return "sent"


async def tcp_json_bignum(scene: Scene) -> str:
    body = {"Plate": "HOSTNUM", "Plate Color": "9" * 5000, "Length of Parking": "9" * 5000}
    await scene.hostile.wait_for_clients(1)
    await scene.hostile.send_post(COMM_PARKING_POST, body)
    return "sent"


def _onvif_server(status: int, body: str, ctype: str) -> web.Application:
    async def answer(_r: web.Request) -> web.Response:
        return web.Response(status=status, text=body, content_type=ctype)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def onvif_answer(status: int, body: str, ctype: str) -> Attack:
    async def attack(scene: Scene) -> str:
        await asyncio.sleep(5)  # the lookup happens at start; keep watching the witness
        return "camera answered ONVIF with " + f"{status} {ctype}"

    attack.onvif = (status, body, ctype)  # type: ignore[attr-defined]
    return attack


async def rtsp_bad_time(scene: Scene) -> str:
    when = scene.factory.next().time
    doc = onvif_notification(plate="RTSPBAD", when=when)
    start = doc.index(b'UtcTime="') + 9
    end = doc.index(b'"', start)
    bad = doc[:start] + b"0001-01-01T00:00:00+14:00" + doc[end:]
    await scene.rtsp_hostile.send_document(bad)
    await asyncio.sleep(1)
    arrived = 0
    for i in range(5):
        plate = f"RTSPOK{i}"
        scene.sent[plate] = time.monotonic()
        await scene.rtsp_witness.send_document(onvif_notification(plate=plate, when=when))
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)
    assert scene.daemon is not None
    arrived = sum(1 for i in range(5) if f"RTSPOK{i}" in scene.daemon.arrived)
    return f"RTSP witness reads after it: {arrived}/5"


async def http_million_keys(scene: Scene) -> str:
    body = b'{"Plate":"HOSTKEYS",' + b",".join(b'"k%d":0' % i for i in range(1_000_000)) + b"}"
    return f"status {await post(scene, body)} ({len(body) / 2**20:.1f} MiB)"


def _image_keys(n: int) -> list[str]:
    base = "plateimage"
    keys: list[str] = []
    seps = "_- ./+*!~#"
    for mask in range(1024):
        cased = "".join(c.upper() if mask >> i & 1 else c for i, c in enumerate(base))
        for pos in range(11):
            for sep in seps:
                keys.append(cased[:pos] + sep + cased[pos:])
                if len(keys) == n:
                    return keys
    return keys


async def http_image_keys(scene: Scene) -> str:
    keys = _image_keys(100_000)
    body = json.dumps({"Plate": "HOSTIMG", **dict.fromkeys(keys, "/9j/4AAQ")}).encode()
    status = await post(scene, body)
    files = sum(1 for _ in (scene.tmp / "snapshots").rglob("*") if _.is_file())
    return f"status {status}, {files} picture files"


async def tcp_many_chunks(scene: Scene) -> str:
    r = Recognition(plate="HOSTCHUNK", images=())
    data = encode_chunk(b"\x11\xff\x00\x00", encode_metadata(r)) + b"".join(
        encode_chunk(b"\x22\xff\x00\x00", _JPEG[:4]) for _ in range(100_000)
    )
    await scene.hostile.wait_for_clients(1)
    await scene.hostile.send_packet(encode_packet(COMM_RECOG_POST, data))
    await asyncio.sleep(5)
    files = sum(1 for _ in (scene.tmp / "snapshots").rglob("*") if _.is_file())
    return f"{files} picture files"


async def _trickle(port: int, seconds: float) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(ATTACKER, 0))
    writer.write(
        b"POST /lpr/hostile HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n{"
    )
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            await asyncio.sleep(0.5)
            writer.write(b" ")
            await writer.drain()
    except OSError:
        pass
    writer.close()


async def slow_bodies(scene: Scene) -> str:
    await asyncio.gather(*(_trickle(scene.http_port, 10) for _ in range(70)))
    return "70 trickling bodies for 10 s"


async def idle_connections(scene: Scene) -> str:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    socks: list[socket.socket] = []
    refused = 0
    for _ in range(1100):
        s = socket.socket()
        s.setblocking(False)
        s.bind((ATTACKER, 0))
        try:
            s.connect(("127.0.0.1", scene.http_port))
        except BlockingIOError:
            pass
        except OSError:
            refused += 1
        socks.append(s)
    await asyncio.sleep(10)
    for s in socks:
        s.close()
    assert scene.daemon is not None
    stderr = scene.daemon.stderr_bytes / 2**20
    return f"1100 idle connections for 10 s; daemon stderr {stderr:.1f} MiB"


async def gzip_bodies(scene: Scene) -> str:
    inner = b'{"Plate":"HOSTGZ","pad":"' + b"A" * (64 * 2**20) + b'"}'
    packed = gzip.compress(inner, 1)
    headers = {"Content-Encoding": "gzip"}
    results = await asyncio.gather(*(post(scene, packed, headers) for _ in range(32)))
    return f"32 x {len(packed) / 2**10:.0f} KiB -> 64 MiB each: statuses {sorted(set(results))}"


async def stalled_stdout(scene: Scene) -> str:
    assert scene.daemon is not None
    scene.daemon.running.clear()  # the consumer of stdout stops reading
    body = json.dumps({"Plate": "HOSTBIG", "note": "x" * (8 * 2**20)}).encode()
    statuses = []
    for _ in range(60):
        statuses.append(await post(scene, body))
    rss = scene.daemon.peak_rss_mib()
    scene.daemon.running.set()
    return f"60 x 8 MiB pushes while stdout stalled: {sorted(set(statuses))}; RSS then {rss:.0f}"


async def rtsp_big_docs(scene: Scene) -> str:
    when = scene.factory.next().time
    for i in range(320):
        doc = onvif_notification(plate=f"BIG{i}", when=when, speed="x" * (1000 * 1000))
        await scene.rtsp_hostile.send_document(doc)
        await asyncio.sleep(1 / 32)
    return "320 x 1 MB documents at 32/s"


async def http_hostile_values(scene: Scene) -> str:
    out = []
    for name, body in (
        ("bad time", {"Plate": "HV1", "Time": "0001-01-01T00:00:00+14:00"}),
        ("5000 digits", {"Plate": "HV2", "Plate Color": "9" * 5000}),
        ("negative width", {"Plate": "HV3", "Resolution Width": -5, "Resolution Height": 10}),
        ("bad base64", {"Plate": "HV4", "plate_image": "!!!not base64!!!"}),
        ("two plate roles", {"Plate": "HV5", "plate_image": "/9j/4AAQ", "Plate Image": "/9j/4AAR"}),
    ):
        out.append(f"{name}: {await post(scene, json.dumps(body).encode())}")
    await asyncio.sleep(1)
    assert scene.daemon is not None
    got = sum(1 for p in ("HV1", "HV2", "HV3", "HV4", "HV5") if p in scene.daemon.arrived)
    return "; ".join(out) + f"; reads out {got}/5"


ATTACKS: dict[str, tuple[Attack, bool]] = {
    "tcp-json-time": (tcp_json_time, False),
    "tcp-json-5000-digits": (tcp_json_bignum, False),
    "onvif-200-html": (onvif_answer(200, "<html><body>login</body></html>", "text/html"), False),
    "onvif-404-empty": (onvif_answer(404, "", "text/plain"), False),
    "rtsp-bad-time": (rtsp_bad_time, True),
    "http-1e6-keys": (http_million_keys, False),
    "http-1e5-image-keys": (http_image_keys, False),
    "tcp-1e5-chunks": (tcp_many_chunks, False),
    "slow-bodies": (slow_bodies, False),
    "idle-connections": (idle_connections, False),
    "gzip-bodies": (gzip_bodies, False),
    "stalled-stdout": (stalled_stdout, False),
    "rtsp-1mb-docs": (rtsp_big_docs, True),
    "http-hostile-values": (http_hostile_values, False),
}


async def run_attack(name: str, tree: Path) -> dict[str, Any]:
    attack, rtsp = ATTACKS[name]
    with tempfile.TemporaryDirectory(prefix=f"lprmeta-attack-{name}-") as tmpdir:
        tmp = Path(tmpdir)
        scene = Scene(tree, tmp)
        runner: web.AppRunner | None = None
        onvif = getattr(attack, "onvif", None)
        if onvif is not None:
            runner = web.AppRunner(_onvif_server(*onvif))
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            scene.extra_cameras.append(
                {"name": "onvifcam", "host": "127.0.0.1", "http_port": port, "rtsp": {}}
            )
        daemon = await scene.start(rtsp=rtsp)
        stop = asyncio.Event()
        witnesses = [
            asyncio.create_task(scene.tcp_witness(stop)),
            asyncio.create_task(scene.http_witness(stop)),
        ]
        await asyncio.sleep(1.0)
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(180):
                said = await attack(scene)
        except Exception as exc:  # noqa: BLE001  # the attack's own failure is a result too
            said = f"attack raised {type(exc).__name__}: {exc}"[:200]
        attack_s = time.monotonic() - t0
        await asyncio.sleep(3.0)
        stop.set()
        await asyncio.gather(*witnesses)
        await asyncio.sleep(3.0)
        witness = {p: t for p, t in scene.sent.items() if p.startswith("WIT")}
        delays = [daemon.arrived[p] - t for p, t in witness.items() if p in daemon.arrived]
        late_half = [p for p, t in witness.items() if t > t0 + attack_s]
        result = {
            "attack": name,
            "said": said,
            "witness_reads": len(witness),
            "witness_lost": len(witness) - len(delays),
            "witness_after_lost": sum(1 for p in late_half if p not in daemon.arrived),
            "witness_worst_ms": round(max(delays) * 1000, 1) if delays else None,
            "http_worst_ms": round(max(scene.http_times) * 1000, 1) if scene.http_times else None,
            "http_errors": scene.http_errors,
            "peak_rss_mib": round(daemon.peak_rss_mib(), 1),
            "alive": daemon.proc.poll() is None,
            "stderr_mib": round(daemon.stderr_bytes / 2**20, 2),
            "loop_stalls": [
                {k: s.get(k) for k in ("event", "stalled_ms", "running")} for s in daemon.stalls
            ][:6],
        }
        result["exit_code"] = daemon.stop()
        await scene.close()
        if runner is not None:
            await runner.cleanup()
        return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", choices=list(ATTACKS), help="attacks to run")
    ap.add_argument("--tree", type=Path, default=ROOT, help="the lprmeta checkout to run")
    ap.add_argument("--json", type=Path, help="write the results here too")
    args = ap.parse_args()
    results = []
    for name in args.only or list(ATTACKS):
        try:
            result = asyncio.run(run_attack(name, args.tree.resolve()))
        except Exception as exc:  # noqa: BLE001  # one attack's setup failing is a result too
            result = {"attack": name, "said": f"could not run: {type(exc).__name__}: {exc}"}
            result.update(dict.fromkeys(("witness_worst_ms", "http_worst_ms", "peak_rss_mib")))
            result.update(witness_lost=None, witness_after_lost=None, alive=None)
        results.append(result)
        print(json.dumps(result), flush=True)
    print()
    print(
        f"{'attack':22} {'witness worst':>14} {'lost':>5} {'lost after':>10} "
        f"{'http worst':>11} {'peak RSS':>9}  alive"
    )
    for r in results:
        print(
            f"{r['attack']:22} {str(r['witness_worst_ms']) + ' ms':>14} {r['witness_lost']:>5} "
            f"{r['witness_after_lost']:>10} {str(r['http_worst_ms']) + ' ms':>11} "
            f"{r['peak_rss_mib']:>6} MiB  {r['alive']}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
