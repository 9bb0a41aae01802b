"""The web page (issue 14), in headless Chromium against ``lprmeta run``:

1. **Read to row**: 200 simulated HTTP cameras push one read a second each (two
   pictures), the live page is open; for every read, the time from the camera
   sending it to its row being in the page (the page stamps ``data-shown`` when it
   adds a row; this process stamps the send; one clock, one machine): p50/p99/max.
   Also the daemon's CPU (it serves the stream beside the intake).
2. **First paint with millions of events**: the live page and three searches
   opened ``--loads`` times each against a store of ``--events`` events (built
   once in ``--db-dir`` with store_bench.py's bulk loader and kept for the next
   run): first contentful paint (the shell) and the time until the rows are drawn
   (a MutationObserver installed before the page's own script), p50 and max.

    python bench/web_bench.py [--cameras 200] [--seconds 60] [--events 10000000]
                              [--db-dir /tmp/lprmeta-web-bench-10m] [--loads 10]
                              [--skip-latency] [--skip-paint]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    cpu_seconds,
    discard,
    free_port,
    machine,
    percentiles,
    save,
    table,
    work_dir,
)

sys.path.insert(0, str(ROOT))

import aiohttp

from lprmeta.simulator.script import ReadFactory

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
# Installed before any page script: when the first row is drawn, and every row's stamps.
OBSERVER = """
window.__rows = [];
window.__firstRow = null;
new MutationObserver((records) => {
  for (const r of records) for (const n of r.addedNodes) {
    if (n.nodeType === 1 && n.matches && n.matches('article.read')) {
      if (window.__firstRow === null) window.__firstRow = performance.now();
      if (n.dataset.shown) window.__rows.push([n.dataset.id, Number(n.dataset.shown)]);
    }
  }
}).observe(document, {subtree: true, childList: true});
"""


def driver() -> Any:
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": OBSERVER})
    return d


def browser_cpu() -> float:
    """CPU seconds of every Chromium process so far (the renderer, the GPU process, the
    browser): what drawing the page costs the machine beside the daemon."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "comm").read_text().strip() in ("chromium", "chrome"):
                total += cpu_seconds(int(proc.name))
        except (OSError, ValueError):
            continue  # gone meanwhile
    return total


def write_config(work: Path, *, cameras: int, http_port: int, api_port: int, data: Path) -> Path:
    parts = [
        f"""
[output]
snapshot_dir = "{work / "snaps"}"
stdout = false
[http]
listen = "127.0.0.1:{http_port}"
[store]
data_dir = "{data}"
[api]
listen = "127.0.0.1:{api_port}"
"""
    ]
    for i in range(cameras):
        parts.append(
            f'[[cameras]]\nname = "cam-{i:03d}"\nhost = "127.0.0.1"\n'
            f'  [cameras.http]\n  path = "/lpr/cam-{i:03d}"\n'
        )
    path = work / "lprmeta.toml"
    path.write_text("".join(parts))
    return path


async def start(config: Path, cwd: Path, api_port: int) -> asyncio.subprocess.Process:
    log = (cwd / "daemon.log").open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lprmeta",
        "run",
        "--config",
        str(config),
        "--log-format",
        "json",
        cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log,
    )
    async with asyncio.timeout(600):  # a big store's first open checks its schema
        while True:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", api_port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            w.close()
            return proc


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 60)


# ----------------------------------------------------------------------------- latency


async def camera(
    session: aiohttp.ClientSession,
    *,
    url: str,
    n: int,
    until: float,
    sent: dict[str, float],
    lost: list[int],
) -> None:
    factory = ReadFactory(seed=n, picture_bytes=24_000)
    await asyncio.sleep(random.Random(n).random())  # the cameras out of step
    while time.time() < until:
        body = factory.next().http_body(era="new")
        t0 = time.time()
        try:
            async with session.post(url, json=body) as resp:
                reply = await resp.json(content_type=None)
        except aiohttp.ClientError:
            lost.append(1)
            continue
        if resp.status == 200:
            sent[str(reply["id"])] = t0
        else:
            lost.append(resp.status)
        await asyncio.sleep(max(0.0, 1.0 - (time.time() - t0)))


async def read_to_row(cameras: int, seconds: float) -> dict[str, Any]:
    work = work_dir("lprmeta-bench-web-")
    http_port, api_port = free_port(), free_port()
    config = write_config(
        work, cameras=cameras, http_port=http_port, api_port=api_port, data=work / "data"
    )
    proc = await start(config, work, api_port)
    d = await asyncio.to_thread(driver)
    sent: dict[str, float] = {}
    streamed: dict[str, float] = {}
    arrived: dict[str, float] = {}  # the daemon's "received": when the POST reached it
    lost: list[int] = []
    try:
        await asyncio.to_thread(d.get, f"http://127.0.0.1:{api_port}/")
        await asyncio.sleep(1)
        cpu0, t0, browser0 = cpu_seconds(proc.pid or 0), time.monotonic(), browser_cpu()
        until = time.time() + seconds
        connector = aiohttp.TCPConnector(limit=cameras + 10)
        async with aiohttp.ClientSession(connector=connector) as session:
            rows: dict[str, float] = {}

            async def harvest() -> None:
                while True:
                    got = await asyncio.to_thread(
                        d.execute_script, "const r = window.__rows; window.__rows = []; return r;"
                    )
                    rows.update({i: shown / 1000 for i, shown in got})
                    await asyncio.sleep(0.5)

            async def listen() -> None:
                # The same stream the page reads, read here: when each event left the
                # daemon, so the rest of read -> row is the browser's.
                async with session.get(f"http://127.0.0.1:{api_port}/api/stream") as resp:
                    async for raw in resp.content:
                        if raw.startswith(b"data: "):
                            ev = json.loads(raw[6:])
                            streamed[ev["id"]] = time.time()
                            arrived[ev["id"]] = datetime.fromisoformat(ev["received"]).timestamp()

            harvester = asyncio.create_task(harvest())
            listener = asyncio.create_task(listen())
            await asyncio.gather(
                *(
                    camera(
                        session,
                        url=f"http://127.0.0.1:{http_port}/lpr/cam-{i:03d}",
                        n=i,
                        until=until,
                        sent=sent,
                        lost=lost,
                    )
                    for i in range(cameras)
                )
            )
            await asyncio.sleep(3)
            harvester.cancel()
            listener.cancel()
        spent = time.monotonic() - t0
        cpu = (cpu_seconds(proc.pid or 0) - cpu0) / spent
        browser = (browser_cpu() - browser0) / spent
    finally:
        await asyncio.to_thread(d.quit)
        await stop(proc)
        discard(work)
    latencies = [(rows[i] - t) * 1000 for i, t in sent.items() if i in rows]
    to_stream = [(streamed[i] - t) * 1000 for i, t in sent.items() if i in streamed]
    to_daemon = [(arrived[i] - t) * 1000 for i, t in sent.items() if i in arrived]
    return {
        "cameras": cameras,
        "seconds": seconds,
        "reads": len(sent),
        "rows_seen": len(latencies),
        "not_seen": len(sent) - len(latencies),
        "push_errors": len(lost),
        "read_to_row_ms": {k: round(v, 1) for k, v in percentiles(latencies).items()},
        "read_to_stream_ms": {k: round(v, 1) for k, v in percentiles(to_stream).items()},
        "read_to_daemon_ms": {k: round(v, 1) for k, v in percentiles(to_daemon).items()},
        "daemon_cpu_percent": round(cpu * 100, 1),
        "browser_cpu_percent": round(browser * 100, 1),
    }


# ----------------------------------------------------------------------------- first paint

PAINT = """
const fcp = performance.getEntriesByName('first-contentful-paint')[0];
return [fcp ? fcp.startTime : null, window.__firstRow];
"""


def build_store(db_dir: Path, events: int) -> None:
    marker = db_dir / f"built-{events}"
    if marker.exists():
        print(f"  reusing the store in {db_dir} ({events:,} events)", flush=True)
        return
    from store_bench import bulk_load  # noqa: PLC0415

    from lprmeta.config import StoreConfig  # noqa: PLC0415
    from lprmeta.store.db import open_engine, upgrade  # noqa: PLC0415

    shutil.rmtree(db_dir, ignore_errors=True)
    engine = open_engine(StoreConfig(data_dir=db_dir, origin="bench"))
    upgrade(engine)
    print(f"  loading {events:,} events into {db_dir} (once; kept for later runs)", flush=True)
    bulk_load({"sqlite": engine}, events, max(1, events // 10))
    engine.dispose()
    marker.touch()


async def first_paint(db_dir: Path, events: int, loads: int) -> dict[str, Any]:
    await asyncio.to_thread(build_store, db_dir, events)
    work = work_dir("lprmeta-bench-web-paint-")
    http_port, api_port = free_port(), free_port()
    config = write_config(work, cameras=50, http_port=http_port, api_port=api_port, data=db_dir)
    proc = await start(config, work, api_port)
    d = await asyncio.to_thread(driver)
    base = f"http://127.0.0.1:{api_port}"
    from store_bench import plate_of  # noqa: PLC0415

    pages = {
        "live": "/",
        "search, no filter": "/search",
        "search, plate with look-alike tolerance": "/search?plate={p}&tolerance=1",
        "search, camera and kind": "/search?camera=cam-07&kind=plate",
    }
    out: dict[str, Any] = {"events": events}
    try:
        for name, path in pages.items():
            fcps: list[float] = []
            rows: list[float] = []
            for i in range(loads):
                target = path.format(p=plate_of(i * 7919 % max(1, events // 10)))
                await asyncio.to_thread(d.get, base + target)
                deadline = time.monotonic() + 30
                while True:
                    fcp, first = await asyncio.to_thread(d.execute_script, PAINT)
                    if first is not None or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.02)
                if fcp is not None:
                    fcps.append(fcp)
                if first is not None:
                    rows.append(first)
            out[name] = {
                "first_contentful_paint_ms": {k: round(v, 1) for k, v in percentiles(fcps).items()},
                "rows_drawn_ms": {k: round(v, 1) for k, v in percentiles(rows).items()},
                "loads": loads,
                "loads_with_rows": len(rows),
            }
            print(
                f"  {name}: rows drawn p50 {out[name]['rows_drawn_ms'].get('p50')} ms", flush=True
            )
    finally:
        await asyncio.to_thread(d.quit)
        await stop(proc)
        discard(work)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--events", type=int, default=10_000_000)
    default_db = Path(tempfile.gettempdir()) / "lprmeta-web-bench-10m"
    ap.add_argument("--db-dir", type=Path, default=default_db)
    ap.add_argument("--loads", type=int, default=10)
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--skip-paint", action="store_true")
    args = ap.parse_args()
    result: dict[str, Any] = {"machine": machine()}
    if not args.skip_latency:
        print(f"read to row: {args.cameras} cameras at 1 read/s, {args.seconds:g} s", flush=True)
        result["latency"] = asyncio.run(read_to_row(args.cameras, args.seconds))
        lat = result["latency"]
        ms = lat["read_to_row_ms"]
        print(
            table(
                [
                    (
                        "reads sent / rows seen",
                        f"{lat['reads']} / {lat['rows_seen']}",
                        "all",
                        "yes" if lat["not_seen"] == 0 else "NO",
                    ),
                    ("read -> row p50", f"{ms['p50']:.0f} ms", "", ""),
                    (
                        "read -> row p99",
                        f"{ms['p99']:.0f} ms",
                        "< 1000 ms",
                        "yes" if ms["p99"] < 1000 else "NO",
                    ),
                    ("read -> row max", f"{ms['max']:.0f} ms", "", ""),
                    (
                        "read -> on the stream (read here), p50 / p99",
                        f"{lat['read_to_stream_ms']['p50']:.0f} / "
                        f"{lat['read_to_stream_ms']['p99']:.0f} ms",
                        "",
                        "",
                    ),
                    (
                        "read -> the daemon's received stamp, p50 / p99",
                        f"{lat['read_to_daemon_ms']['p50']:.0f} / "
                        f"{lat['read_to_daemon_ms']['p99']:.0f} ms",
                        "",
                        "",
                    ),
                    ("daemon CPU", f"{lat['daemon_cpu_percent']} %", "", ""),
                    ("Chromium's CPU (its processes)", f"{lat['browser_cpu_percent']} %", "", ""),
                ]
            )
        )
    if not args.skip_paint:
        print(f"first paint: {args.events:,} events in the store", flush=True)
        paint = asyncio.run(first_paint(args.db_dir, args.events, args.loads))
        result["paint"] = paint
        rows = []
        for name, v in paint.items():
            if not isinstance(v, dict):
                continue
            fcp, drawn = v["first_contentful_paint_ms"], v["rows_drawn_ms"]
            rows.append((f"{name}: first paint p50", f"{fcp['p50']:.0f} ms", "", ""))
            rows.append(
                (f"{name}: rows drawn p50/max", f"{drawn['p50']:.0f}/{drawn['max']:.0f} ms", "", "")
            )
        print(f"{args.events:,} events stored")
        print(table(rows))
    print(f"saved {save('web', result)}")


if __name__ == "__main__":
    main()
