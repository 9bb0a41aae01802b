"""Scale run (issue 6): one daemon, 200 simulated cameras, a third each over TCP, HTTP and
RTSP, one read a second each with pictures.

The cameras run in another process on core 1 (``_scale_sim.py``), so their cost
is not counted; the daemon runs as ``lprmeta run`` on core 0. Reported: CPU
(% of one core), RSS, events/s, latency from the camera sending a read to its
JSON line, pictures saved against pictures sent, and events lost (must be 0).

``--soak-minutes N`` (N >= 30 for the real thing) runs the same load for N
minutes and reports RSS and open file descriptors every minute; memory and
descriptors must stay flat (growth under 5% after a warm-up of a sixth of the run).

Saved pictures are counted and deleted as the run goes (only files: the daemon
keeps the directories it made), so a long run does not fill the disk.

    python bench/scale_bench.py [--cameras 200] [--seconds 120] [--soak-minutes 0]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

from _common import (
    LineReader,
    SimProcess,
    cpu_seconds,
    discard,
    family,
    family_cpu_seconds,
    free_port,
    machine,
    open_fds,
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


class Sim(SimProcess):
    def __init__(self, tcp: int, rtsp: int, http: int, target: str, seconds: float) -> None:
        args = ["--tcp", str(tcp), "--rtsp", str(rtsp), "--http", str(http)]
        args += ["--http-target", target, "--seconds", str(seconds)]
        super().__init__("_scale_sim.py", args, start_timeout=120)


class PictureCounter(threading.Thread):
    """Counts the pictures the daemon has saved: once at the end, or (``delete``, the
    soak, whose pictures would fill the disk) every 5 s, deleting what it counted. Only
    the soak deletes while the daemon runs: on this machine's ext4 without a journal,
    every file created in the minutes after a deletion pays for the inodes freed (see
    ``_common.discard``), a cost a daemon keeping its pictures for days does not have."""

    def __init__(self, root: Path, *, delete: bool) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.delete = delete
        self.count = 0
        self.stop = threading.Event()

    def sweep(self) -> None:
        for path in self.root.rglob("*.jpg"):
            if self.delete:
                try:
                    path.unlink()
                except FileNotFoundError:
                    continue
            self.count += 1

    def run(self) -> None:
        while not self.stop.wait(5):
            self.sweep()


def config(
    work: Path, ready: dict[str, Any], http_port: int, n_http: int, *, store: bool = False
) -> Path:
    parts = [
        f'[output]\nsnapshot_dir = "snaps"\n[http]\nlisten = "127.0.0.1:{http_port}"\n'
        "max_body = 4194304\n",
        '[store]\ndata_dir = "data"\n' if store else "[store]\nenabled = false\n",
    ]
    for i, port in enumerate(ready["tcp"]):
        parts.append(
            f'[[cameras]]\nname = "scale-t{i:03d}"\nhost = "127.0.0.1"\n'
            f'password = "sim-password"\n  [cameras.tcp]\n  port = {port}\n'
        )
    for i, (rtsp_port, web_port) in enumerate(ready["rtsp"]):
        parts.append(
            f'[[cameras]]\nname = "scale-r{i:03d}"\nhost = "127.0.0.1"\nhttp_port = {web_port}\n'
            f'password = "sim-password"\n  [cameras.rtsp]\n'
            f'  url = "rtsp://127.0.0.1:{rtsp_port}/onvif/metadata"\n'
        )
    for i in range(n_http):
        parts.append(
            f'[[cameras]]\nname = "scale-h{i:03d}"\nhost = "127.0.0.1"\n'
            f'  [cameras.http]\n  path = "/lpr/scale-h{i:03d}"\n'
        )
    path = work / "scale.toml"
    path.write_text("\n".join(parts))
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--soak-minutes", type=float, default=0)
    ap.add_argument(
        "--store",
        choices=["off", "on", "both"],
        default="both",
        help="the event store (SQLite) off, on, or one run of each (default; same load)",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=0,
        help="lprmeta run --workers N (CPU is then the primary's and the workers' summed, "
        "and the primary's own share is reported: it is what does not spread)",
    )
    args = ap.parse_args()
    pin({1})
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.store]
    results = {f"store_{'on' if m else 'off'}": run_once(args, store=m) for m in modes}
    if len(results) == 2:
        off, on = results["store_off"], results["store_on"]
        print(f"\nSame load, store off -> on ({args.cameras} cameras):")
        print(
            table(
                [
                    (
                        "daemon CPU",
                        f"{off['cpu_percent']:.0f}% -> {on['cpu_percent']:.0f}%",
                        "",
                        "",
                    ),
                    ("RSS max", f"{off['rss_mib_max']:.0f} -> {on['rss_mib_max']:.0f} MiB", "", ""),
                    (
                        "latency p50",
                        f"{off['latency_ms']['p50']:.1f} -> {on['latency_ms']['p50']:.1f} ms",
                        "",
                        "",
                    ),
                    (
                        "latency p99",
                        f"{off['latency_ms']['p99']:.1f} -> {on['latency_ms']['p99']:.1f} ms",
                        "",
                        "",
                    ),
                    (
                        "events lost",
                        f"{off['lost']} / {on['lost']}",
                        "0",
                        _ok(not off["lost"] + on["lost"]),
                    ),
                ]
            )
        )
    name = "soak" if args.soak_minutes else "scale"
    save(name, results if len(results) > 1 else next(iter(results.values())))


def run_once(args: argparse.Namespace, *, store: bool) -> dict[str, Any]:
    seconds = args.soak_minutes * 60 if args.soak_minutes else args.seconds
    n_tcp = n_http = args.cameras // 3
    n_rtsp = args.cameras - n_tcp - n_http
    work = work_dir("lprmeta-bench-scale-")
    http_port = free_port()
    sim = Sim(n_tcp, n_rtsp, n_http, f"http://127.0.0.1:{http_port}/lpr/", seconds)
    daemon = start_daemon(
        config(work, sim.ready, http_port, n_http, store=store), work, core=0, workers=args.workers
    )
    arrivals: dict[str, float] = {}
    missing_pictures = [0]

    def on_line(line: dict[str, Any], t: float) -> None:
        if line["kind"] == "plate" and line["plate"]:
            arrivals[line["plate"]] = t
            missing_pictures[0] += sum(1 for i in line["images"] if i.get("missing"))

    LineReader(daemon.stdout, on_line).start()
    counter = PictureCounter(work / "snaps", delete=bool(args.soak_minutes))
    samples: list[dict[str, float]] = []
    try:
        wait_for_log(daemon, b"lprmeta running")
        sim.wait_status("consumers", n_tcp + n_rtsp)
        time.sleep(2)
        settle_disk()
        if counter.delete:
            counter.start()
        c0, p0, t0 = family_cpu_seconds(daemon.pid), cpu_seconds(daemon.pid), time.monotonic()
        sim.go()
        next_sample = t0 + (60 if args.soak_minutes else 10)
        rss_max = 0.0
        while time.monotonic() - t0 < seconds:
            time.sleep(1)
            rss_max = max(rss_max, sum(rss_mib(p) for p in family(daemon.pid)))
            if time.monotonic() >= next_sample:
                sample = {
                    "minute": round((time.monotonic() - t0) / 60, 1),
                    "rss_mib": round(rss_mib(daemon.pid), 1),
                    "fds": open_fds(daemon.pid),
                    "events": len(arrivals),
                }
                samples.append(sample)
                if args.soak_minutes:
                    print(json.dumps(sample), flush=True)
                next_sample += 60 if args.soak_minutes else 10
        wall = time.monotonic() - t0
        cpu = (family_cpu_seconds(daemon.pid) - c0) / wall * 100
        primary_cpu = (cpu_seconds(daemon.pid) - p0) / wall * 100
        sim.wait_done(60)
        time.sleep(5)  # the last pictures and lines
        counter.stop.set()
        if counter.is_alive():
            counter.join()
        counter.sweep()
    finally:
        daemon.terminate()
        daemon.wait(timeout=15)
        sim.stop()
        discard(work)
    lat = [(arrivals[p] - t) * 1000 for p, (t, _) in sim.sent.items() if p in arrivals]
    sent_pictures = sum(n for _, n in sim.sent.values())
    result: dict[str, Any] = {
        "machine": machine(),
        "store": store,
        "cameras": {"tcp": n_tcp, "rtsp": n_rtsp, "http": n_http},
        "seconds": round(wall, 1),
        "reads_sent": len(sim.sent),
        "events": len(lat),
        "events_per_s": round(len(lat) / wall, 1),
        "lost": len(sim.sent) - len(lat),
        "workers": args.workers,
        "cpu_percent": round(cpu, 1),
        "primary_cpu_percent": round(primary_cpu, 1),
        "cameras_per_core": round(args.cameras / (cpu / 100)) if cpu else None,
        "rss_mib_max": round(rss_max, 1),
        "latency_ms": {k: round(v, 2) for k, v in percentiles(lat).items()},
        "latency_ms_by_transport": {
            transport: {
                k: round(v, 2)
                for k, v in percentiles(
                    [
                        (arrivals[p] - t) * 1000
                        for p, (t, _) in sim.sent.items()
                        if p in arrivals and p[0] == letter
                    ]
                ).items()
            }
            for letter, transport in (("T", "tcp"), ("R", "rtsp"), ("H", "http"))
        },
        "pictures_sent": sent_pictures,
        "pictures_saved": counter.count,
        "pictures_missing": missing_pictures[0],
        "samples": samples,
    }
    if args.soak_minutes and len(samples) >= 3:
        warm = samples[max(1, len(samples) // 6)]
        last = samples[-1]
        result["soak"] = {
            "rss_growth_percent": round((last["rss_mib"] / warm["rss_mib"] - 1) * 100, 2),
            "fd_growth_percent": round((last["fds"] / warm["fds"] - 1) * 100, 2),
            "warm_minute": warm["minute"],
        }
    print(
        f"Scale run on {result['machine']}: {args.cameras} cameras ({n_tcp} TCP, {n_rtsp} "
        f"RTSP, {n_http} HTTP), 1 read/s each with pictures, {wall:.0f} s, "
        f"store {'on (SQLite)' if store else 'off'}"
        + (f", --workers {args.workers}" if args.workers else "")
    )
    rows = [
        ("daemon CPU", f"{cpu:.0f}% of a core", "", ""),
        ("cameras per core (at this load)", f"{result['cameras_per_core']}", "", ""),
        *(
            [("primary's own CPU (does not spread)", f"{primary_cpu:.0f}% of a core", "", "")]
            if args.workers
            else []
        ),
        ("daemon RSS (max)", f"{rss_max:.0f} MiB", "", ""),
        ("events/s", f"{len(lat) / wall:.0f}", "", ""),
        ("camera send -> JSON line, p50", f"{result['latency_ms']['p50']:.1f} ms", "", ""),
        ("camera send -> JSON line, p99", f"{result['latency_ms']['p99']:.1f} ms", "", ""),
        (
            "pictures saved / sent",
            f"{counter.count} / {sent_pictures}",
            "all",
            _ok(counter.count == sent_pictures),
        ),
        ("events lost", f"{result['lost']} of {len(sim.sent)}", "0", _ok(result["lost"] == 0)),
    ]
    if "soak" in result:
        soak = result["soak"]
        rows += [
            (
                f"RSS growth after minute {soak['warm_minute']:g}",
                f"{soak['rss_growth_percent']:+.1f}%",
                "< 5%",
                _ok(soak["rss_growth_percent"] < 5),
            ),
            (
                "open descriptors growth",
                f"{soak['fd_growth_percent']:+.1f}%",
                "< 5%",
                _ok(soak["fd_growth_percent"] < 5),
            ),
        ]
    print(table(rows))
    return result


def _ok(flag: bool) -> str:
    return "yes" if flag else "NO"


if __name__ == "__main__":
    main()
