"""HTTP receiver benchmark (issue 4): sustained POSTs/s with two pictures (~100 KB
together) and the latency from sending the request to its JSON line on stdout.

The daemon runs as `lprmeta run` pinned to core 0; this load generator runs on
core 1. Phase 1 (throughput): a closed loop of concurrent POSTs for --seconds.
Phase 2 (latency): an open loop at --rate POSTs/s; each plate's send time is
matched with its line's arrival on the daemon's stdout.

    python bench/http_bench.py [--seconds 10] [--rate 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from _common import (
    LineReader,
    cpu_seconds,
    machine,
    percentiles,
    pin,
    rss_mib,
    save,
    start_daemon,
    table,
    wait_for_log,
)

from lprmeta.simulator.script import ReadFactory, fake_jpeg


def bodies(n: int) -> list[bytes]:
    factory = ReadFactory(seed=42)
    out = []
    for i in range(n):
        read = factory.next(plate=f"B{i:06d}")
        read = type(read)(**{**{f: getattr(read, f) for f in read.__dataclass_fields__},
                             "plate_jpeg": fake_jpeg(20_000, seed=i),
                             "full_jpeg": fake_jpeg(80_000, seed=i + 10**6)})
        out.append(json.dumps(read.http_body(era="new" if i % 2 else "old")).encode())
    return out


async def throughput(url: str, payloads: list[bytes], seconds: float, concurrency: int) -> int:
    done = 0
    stop = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        async def worker(k: int) -> None:
            nonlocal done
            i = k
            while time.monotonic() < stop:
                async with s.post(url, data=payloads[i % len(payloads)],
                                  headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    if r.status == 200:
                        done += 1
                i += concurrency
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return done


async def open_loop(url: str, payloads: list[bytes], rate: float, seconds: float,
                    sent_at: dict[str, float]) -> tuple[int, list[float]]:
    n = int(rate * seconds)
    replies: list[float] = []
    ok = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as s:
        async def one(i: int) -> None:
            nonlocal ok
            body = payloads[i % len(payloads)]
            plate = json.loads(body)["plate"]
            t0 = time.monotonic()
            sent_at[plate] = t0
            async with s.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                await r.read()
                ok += r.status == 200
            replies.append(time.monotonic() - t0)
        start = time.monotonic()
        tasks = []
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return ok, replies


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    pin({1})
    work = Path(tempfile.mkdtemp(prefix="lprmeta-bench-http-"))
    port = 18000 + (int(time.time()) % 1000)
    config = work / "bench.toml"
    config.write_text(f'[output]\nsnapshot_dir = "snaps"\n[bus]\ndedup_window = 0\n'
                      f'[http]\nlisten = "127.0.0.1:{port}"\n'
                      f'[[cameras]]\nname = "bench"\nhost = "127.0.0.9"\n')
    daemon = start_daemon(config, work)
    wait_for_log(daemon, b"HTTP receiver listening")
    url = f"http://127.0.0.1:{port}/lpr/bench"
    n_bodies = int(args.rate * args.seconds)
    payloads = bodies(n_bodies)
    arrivals: dict[str, float] = {}
    reader = LineReader(daemon.stdout, lambda line, t: arrivals.__setitem__(line["plate"], t))
    reader.start()
    try:
        # Phase 1: throughput (plates repeat across phases; dedup is off).
        asyncio.run(throughput(url, payloads[:200], 2, args.concurrency))  # warm-up
        c0, t0 = cpu_seconds(daemon.pid), time.monotonic()
        done = asyncio.run(throughput(url, payloads, args.seconds, args.concurrency))
        wall = time.monotonic() - t0
        cpu_tp = (cpu_seconds(daemon.pid) - c0) / wall * 100
        posts_s = done / wall
        # Phase 2: latency at a fixed rate.
        time.sleep(1)
        arrivals.clear()
        sent_at: dict[str, float] = {}
        c0, t0 = cpu_seconds(daemon.pid), time.monotonic()
        ok, replies = asyncio.run(open_loop(url, payloads, args.rate, args.seconds, sent_at))
        wall = time.monotonic() - t0
        cpu_rate = (cpu_seconds(daemon.pid) - c0) / wall * 100
        time.sleep(1)
        lat = [(arrivals[p] - t) * 1000 for p, t in sent_at.items() if p in arrivals]
        lost = len(sent_at) - len(lat)
        rss = rss_mib(daemon.pid)
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
    line_p = percentiles(lat)
    reply_p = percentiles([r * 1000 for r in replies])
    result: dict[str, Any] = {
        "machine": machine(),
        "body_bytes": len(payloads[0]),
        "throughput_posts_per_s": round(posts_s, 1),
        "throughput_cpu_percent": round(cpu_tp, 1),
        "rate": args.rate,
        "rate_ok": ok,
        "rate_cpu_percent": round(cpu_rate, 1),
        "line_latency_ms": {k: round(v, 2) for k, v in line_p.items()},
        "reply_latency_ms": {k: round(v, 2) for k, v in reply_p.items()},
        "lines_missing": lost,
        "rss_mib": round(rss, 1),
    }
    save("http", result)
    print(f"HTTP receiver benchmark on {result['machine']}; body {result['body_bytes']} bytes "
          "(two pictures, 100 KB before base64)")
    print(table([
        ("POSTs/s, closed loop (daemon on 1 core)", f"{posts_s:.0f}", ">= 1000",
         _ok(posts_s >= 1000)),
        ("daemon CPU at that load", f"{cpu_tp:.0f}%", "", ""),
        (f"request -> JSON line p50 at {args.rate:.0f}/s", f"{line_p['p50']:.1f} ms", "", ""),
        (f"request -> JSON line p99 at {args.rate:.0f}/s", f"{line_p['p99']:.1f} ms", "< 20 ms",
         _ok(line_p["p99"] < 20)),
        ("daemon CPU at that rate", f"{cpu_rate:.0f}%", "", ""),
        ("lines missing", str(lost), "0", _ok(lost == 0)),
        ("daemon RSS", f"{rss:.0f} MiB", "", ""),
    ]))


def _ok(flag: bool) -> str:
    return "yes" if flag else "NO"


if __name__ == "__main__":
    main()
