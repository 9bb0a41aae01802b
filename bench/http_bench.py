"""HTTP receiver benchmark (issue 4): sustained POSTs/s with two pictures (~100 KB
together) and the latency from sending the request to its JSON line on stdout.

The daemon runs as ``lprmeta run`` pinned to core 0; this load generator runs on
core 1 and speaks plain HTTP/1.1 with keep-alive over asyncio streams (a full
HTTP client would cost more than the server it measures). Every request has a
unique plate, patched into a pre-built body, so each JSON line is matched to
the request that caused it.

1. Throughput: a closed loop of ``--concurrency`` connections for ``--seconds``. Beside
   it, two floors on the daemon's core: the pictures alone (decoded, hashed, written as
   new files) and a bare aiohttp server that only reads the same bodies and answers
   (``_bare_http.py``, the same closed loop): what no code of lprmeta's can take away.
2. Latency: an open loop at ``--rate`` POSTs/s: request -> reply, request -> line.
3. The same open loop while a background writer saturates the disk the pictures go
   to (``dd ... oflag=direct`` rewriting one 2 GB file, again and again, for exactly
   the run; then removed): a disk stall must not reach the event loop (issue 17).
   ``--no-disk-writer`` skips it.

    python bench/http_bench.py [--seconds 20] [--rate 1000] [--concurrency 16]
                               [--no-disk-writer]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    LineReader,
    cpu_seconds,
    discard,
    free_port,
    machine,
    percentiles,
    pin,
    rss_mib,
    save,
    settle_disk,
    start_daemon,
    table,
    wait_for_log,
    work_dir,
)
from pipeline_bench import floor

from lprmeta.simulator.script import ReadFactory, fake_jpeg

PLATE_SLOT = b"PLATE#########"  # 14 bytes, replaced by a unique plate of the same width


def templates(n: int) -> list[tuple[bytes, int]]:
    """``n`` bodies in both naming eras, each with two pictures (20 KB + 80 KB)."""
    factory = ReadFactory(seed=42)
    out = []
    for i in range(n):
        body = factory.next(plate=PLATE_SLOT.decode()).http_body(era="new" if i % 2 else "old")
        body["plate_image"] = base64.b64encode(fake_jpeg(20_000, seed=i)).decode()
        body["full_image"] = base64.b64encode(fake_jpeg(80_000, seed=i + 10**6)).decode()
        data = json.dumps(body).encode()
        out.append((data, data.index(PLATE_SLOT)))
    return out


class Client:
    """One keep-alive HTTP/1.1 connection posting JSON bodies."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host, self.port, self.path = host, port, path
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, body: bytes) -> int:
        assert self.reader is not None
        assert self.writer is not None
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readuntil(b"\r\n")
        length = 0
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Load:
    def __init__(self, port: int, bodies: list[tuple[bytes, int]]) -> None:
        self.port = port
        self.bodies = bodies
        self.n = 0
        self.sent_at: dict[str, float] = {}
        self.replies: list[float] = []
        self.ok = 0

    def next_body(self) -> tuple[str, bytes]:
        self.n += 1
        template, at = self.bodies[self.n % len(self.bodies)]
        plate = f"B{self.n:013d}"
        return plate, template[:at] + plate.encode() + template[at + len(PLATE_SLOT) :]

    async def one(self, client: Client, *, record: bool) -> None:
        plate, body = self.next_body()
        t0 = time.monotonic()
        if record:
            self.sent_at[plate] = t0
        status = await client.post(body)
        if record:
            self.replies.append(time.monotonic() - t0)
        self.ok += status == 200

    async def closed_loop(self, seconds: float, concurrency: int) -> int:
        clients = [Client("127.0.0.1", self.port, "/lpr/bench") for _ in range(concurrency)]
        for c in clients:
            await c.connect()
        stop = time.monotonic() + seconds
        before = self.ok

        async def worker(c: Client) -> None:
            while time.monotonic() < stop:
                await self.one(c, record=False)

        await asyncio.gather(*(worker(c) for c in clients))
        for c in clients:
            c.close()
        return self.ok - before

    async def open_loop(self, rate: float, seconds: float) -> None:
        idle: asyncio.Queue[Client] = asyncio.Queue()
        clients = [Client("127.0.0.1", self.port, "/lpr/bench") for _ in range(64)]
        for c in clients:
            await c.connect()
            idle.put_nowait(c)

        async def send(c: Client) -> None:
            try:
                await self.one(c, record=True)
            finally:
                idle.put_nowait(c)

        start = time.monotonic()
        tasks = []
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(await idle.get())))
        await asyncio.gather(*tasks)
        for c in clients:
            c.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--no-disk-writer", action="store_true")
    args = ap.parse_args()
    pin({1})
    work = work_dir("lprmeta-bench-http-")
    port = free_port()
    config = work / "bench.toml"
    config.write_text(
        # The store is off: this measures the receiver and the path to the JSON line, as
        # the README's figures always have (the store's own figures: store_bench.py,
        # scale_bench.py --store both).
        f'[output]\nsnapshot_dir = "snaps"\n[store]\nenabled = false\n[bus]\ndedup_window = 0\n'
        f'[http]\nlisten = "127.0.0.1:{port}"\n'
        f'[[cameras]]\nname = "bench"\nhost = "127.0.0.9"\n'
    )
    daemon = start_daemon(config, work)
    arrivals: dict[str, float] = {}
    reader = LineReader(daemon.stdout, lambda line, t: arrivals.__setitem__(line["plate"], t))
    reader.start()
    load = Load(port, templates(64))
    try:
        wait_for_log(daemon, b"HTTP receiver listening")
        asyncio.run(load.closed_loop(2, args.concurrency))  # warm-up
        settle_disk()
        c0, t0 = cpu_seconds(daemon.pid), time.monotonic()
        done = asyncio.run(load.closed_loop(args.seconds, args.concurrency))
        wall = time.monotonic() - t0
        cpu_tp = (cpu_seconds(daemon.pid) - c0) / wall * 100
        posts_s = done / wall
        time.sleep(2)  # let the snapshot writes and lines of phase 1 settle
        floor_figures = machine_floor(work)
        bare = bare_aiohttp(
            load.bodies,
            min(args.seconds, 10),
            args.concurrency,
            pictures=floor_figures["events_per_s_cpu"],
        )
        settle_disk()
        c0, t0 = cpu_seconds(daemon.pid), time.monotonic()
        asyncio.run(load.open_loop(args.rate, args.seconds))
        wall = time.monotonic() - t0
        cpu_rate = (cpu_seconds(daemon.pid) - c0) / wall * 100
        time.sleep(1)
        lat = [(arrivals[p] - t) * 1000 for p, t in load.sent_at.items() if p in arrivals]
        lost = len(load.sent_at) - len(lat)
        rate_sent = len(load.sent_at)
        disk: dict[str, Any] | None = None
        if not args.no_disk_writer:
            disk = disk_writer_run(load, arrivals, args, work)
        rss = rss_mib(daemon.pid)
        saved = sum(1 for _ in (work / "snaps").rglob("*.jpg"))
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
        discard(work)
    line_p = percentiles(lat)
    reply_p = percentiles([r * 1000 for r in load.replies])
    result: dict[str, Any] = {
        "machine": machine(),
        "body_bytes": len(load.bodies[0][0]),
        "throughput_posts_per_s": round(posts_s, 1),
        "throughput_cpu_percent": round(cpu_tp, 1),
        "floor": floor_figures,
        "bare_aiohttp": bare,
        "rate": args.rate,
        "rate_sent": rate_sent,
        "rate_cpu_percent": round(cpu_rate, 1),
        "line_latency_ms": {k: round(v, 2) for k, v in line_p.items()},
        "reply_latency_ms": {k: round(v, 2) for k, v in reply_p.items()},
        "lines_missing": lost,
        "pictures_saved": saved,
        "pictures_sent": 2 * load.ok,
        "rss_mib": round(rss, 1),
        "with_disk_writer": disk,
    }
    save("http", result)
    print(
        f"HTTP receiver benchmark on {result['machine']}; body {result['body_bytes']} bytes "
        "(two pictures, 100 KB before base64)"
    )
    print(
        table(
            [
                (
                    "POSTs/s, closed loop (daemon on 1 core)",
                    f"{posts_s:.0f}",
                    ">= 1000",
                    _ok(posts_s >= 1000),
                ),
                ("daemon CPU at that load", f"{cpu_tp:.0f}%", "", ""),
                (
                    "the machine's floor: the pictures alone, per POST/s of a core",
                    f"{floor_figures['events_per_s_cpu']:,} (over pages in memory: "
                    f"{floor_figures['reused_pages_events_per_s_cpu']:,})",
                    "",
                    "",
                ),
                (
                    "a bare aiohttp server reading the same bodies, per POST/s of a core",
                    f"{bare['posts_per_s_cpu']:,}",
                    "",
                    "",
                ),
                (
                    "  the two floors together (1 / (1/pictures + 1/aiohttp))",
                    f"{bare['with_pictures']:,} (closed loop: "
                    f"{posts_s / bare['with_pictures'] * 100:.0f}% of it)",
                    "",
                    "",
                ),
                (
                    "  closed loop / floor; the rate below / floor",
                    f"{posts_s / floor_figures['events_per_s_cpu'] * 100:.0f}%; "
                    f"{args.rate / floor_figures['events_per_s_cpu'] * 100:.0f}%",
                    "",
                    "",
                ),
                (
                    f"request -> JSON line p50 at {args.rate:.0f}/s",
                    f"{line_p['p50']:.1f} ms",
                    "",
                    "",
                ),
                (
                    f"request -> JSON line p99 at {args.rate:.0f}/s",
                    f"{line_p['p99']:.1f} ms",
                    "< 20 ms",
                    _ok(line_p["p99"] < 20),
                ),
                ("request -> reply p99", f"{reply_p['p99']:.1f} ms", "", ""),
                ("daemon CPU at that rate", f"{cpu_rate:.0f}%", "", ""),
                ("lines missing", str(lost), "0", _ok(lost == 0)),
                (
                    "pictures saved / sent",
                    f"{saved} / {2 * load.ok}",
                    "all",
                    _ok(saved == 2 * load.ok),
                ),
                ("daemon RSS", f"{rss:.0f} MiB", "", ""),
                *(
                    [
                        (
                            f"with the disk saturated: line p50 / p99 at {args.rate:.0f}/s",
                            f"{disk['line_latency_ms']['p50']:.1f} / "
                            f"{disk['line_latency_ms']['p99']:.1f} ms "
                            f"(without: {line_p['p50']:.1f} / {line_p['p99']:.1f})",
                            "p99 < 20 ms",
                            _ok(disk["line_latency_ms"]["p99"] < 20),
                        ),
                        (
                            "  disk writer: MB written in whole passes, lines missing",
                            f"{disk['writer_mb']:.0f}, {disk['lines_missing']}",
                            "-, 0",
                            _ok(disk["lines_missing"] == 0),
                        ),
                    ]
                    if disk
                    else []
                ),
            ]
        )
    )


def machine_floor(work: Path, n: int = 2000) -> dict[str, Any]:
    """``pipeline_bench.floor`` for pictures of these bodies' sizes (20 KB and 80 KB,
    base64), on the daemon's core while it is idle between two phases: per POST, what
    no receiver can skip (decode, hash, write as new files). On this virtual machine the
    floor moves severalfold within minutes (a new page of memory is a fault the host
    serves: bench/README.md), so it is measured here, beside the figures it explains."""
    pin({0})
    try:
        return floor("http-new", n, work)
    finally:
        pin({1})


def bare_aiohttp(
    bodies: list[tuple[bytes, int]], seconds: float, concurrency: int, *, pictures: int
) -> dict[str, Any]:
    """The same closed loop against ``_bare_http.py`` on the daemon's core (the daemon
    idle meanwhile): aiohttp's own cost of these POSTs, as POSTs/s of a core, and that
    combined with ``pictures``, the pictures' floor measured just before (POSTs/s of a
    core): what a receiver served by aiohttp that did nothing but save the pictures
    would reach on this core this minute."""
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).with_name("_bare_http.py")), str(port)]
    if (os.cpu_count() or 1) >= 2:
        cmd = ["taskset", "-c", "0", *cmd]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != b"listening":
            raise RuntimeError("the bare aiohttp server did not start")
        load = Load(port, bodies)
        asyncio.run(load.closed_loop(2, concurrency))  # warm-up
        c0, t0 = cpu_seconds(server.pid), time.monotonic()
        done = asyncio.run(load.closed_loop(seconds, concurrency))
        wall = time.monotonic() - t0
        cpu = cpu_seconds(server.pid) - c0
    finally:
        server.terminate()
        server.wait(timeout=10)
    if load.ok != load.n:
        raise SystemExit(f"the bare aiohttp server answered {load.ok} of {load.n} with 200")
    per_core = done / max(cpu, 1e-9)
    return {
        "posts_per_s": round(done / wall),
        "cpu_percent": round(cpu / wall * 100, 1),
        "posts_per_s_cpu": round(per_core),
        "with_pictures": round(1 / (1 / pictures + 1 / per_core)),
    }


def disk_writer_run(
    load: Load, arrivals: dict[str, float], args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    """Phase 2 again with ``dd oflag=direct`` rewriting a 2 GB file on the pictures'
    disk throughout (bounded: one file, this phase only)."""
    load.sent_at.clear()
    ballast = work / "ballast.bin"
    stop = __import__("threading").Event()
    written = [0]

    def writer() -> None:
        while not stop.is_set():
            proc = subprocess.Popen(
                [
                    "dd",
                    "if=/dev/zero",
                    f"of={ballast}",
                    "bs=1M",
                    "count=2048",
                    "oflag=direct",
                    "conv=notrunc",
                    "status=none",
                ],
            )
            while proc.poll() is None:
                if stop.is_set():
                    proc.terminate()
                    break
                time.sleep(0.05)
            if proc.wait() == 0:
                written[0] += 2048 * 2**20  # one whole pass

    thread = __import__("threading").Thread(target=writer, daemon=True)
    thread.start()
    time.sleep(1)  # the writer going
    try:
        asyncio.run(load.open_loop(args.rate, args.seconds))
        time.sleep(1)
    finally:
        stop.set()
        thread.join(30)
        ballast.unlink(missing_ok=True)
    lat = [(arrivals[p] - t) * 1000 for p, t in load.sent_at.items() if p in arrivals]
    return {
        "line_latency_ms": {k: round(v, 2) for k, v in percentiles(lat).items()},
        "lines_missing": len(load.sent_at) - len(lat),
        "writer_mb": round(written[0] / 2**20),
    }


def _ok(flag: bool) -> str:
    return "yes" if flag else "NO"


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
