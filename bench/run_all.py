"""Every benchmark, one table: ``python bench/run_all.py`` (about 10 minutes).

Runs, one after the other (each on an otherwise idle machine):

* ``http_bench.py``: the HTTP receiver, POSTs with two pictures (issue 4);
* ``rtsp_bench.py``: 200 RTSP metadata streams, and ffmpeg per camera (issue 5);
* ``scale_bench.py``: 200 cameras over TCP, HTTP and RTSP in one daemon (issue 6);
* ``mqtt_bench.py``: the MQTT sink against mosquitto, live and after a broker restart (issue 8);
* ``web_bench.py --skip-paint``: 200 cameras' reads to rows in the web page in headless
  Chromium (issue 14; its first-paint figures need a store of 10 million events, built
  once: ``web_bench.py`` alone);
* ``pipeline_bench.py --no-profile``: the per-event path on one core, no sockets;
  ``body_bench.py``: the HTTP receiver's parse of a body, against the whole-body parse; and
  ``scale_bench.py --workers 2``: the scale load with ``lprmeta run --workers 2``
  (issue 17).

Each prints its own table and writes ``bench/results/<name>.json``; this script
then prints the figures side by side with their targets and writes
``bench/results/all.json``. ``--quick`` runs each for a short time (a smoke test,
not figures to quote); ``--soak-minutes 30`` adds the long soak.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from _common import RESULTS, ROOT, machine, save, table


def run(script: str, *args: str) -> dict[str, Any]:
    print(f"\n=== {script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], check=True, cwd=ROOT)
    name = {
        "http_bench.py": "http",
        "rtsp_bench.py": "rtsp",
        "scale_bench.py": "scale",
        "mqtt_bench.py": "mqtt",
        "web_bench.py": "web",
        "pipeline_bench.py": "pipeline",
        "body_bench.py": "body",
    }[script]
    if "--soak-minutes" in args:
        name = "soak"
    return json.loads((RESULTS / f"{name}.json").read_text())  # type: ignore[no-any-return]


def _of_floor(figures: dict[str, Any]) -> str:
    """`` (N% of the floor, F/s)`` for a kind with pictures (pipeline_bench.floor)."""
    f = figures.get("floor")
    if not f:
        return ""
    return f" ({f['share_percent']}% of the floor, {f['events_per_s_cpu']:,}/s)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    ap.add_argument("--soak-minutes", type=float, default=0)
    args = ap.parse_args()
    short = args.quick
    http = run("http_bench.py", "--seconds", "5" if short else "20")
    rtsp = run(
        "rtsp_bench.py",
        *(["--cameras", "40", "--seconds", "10"] if short else ["--seconds", "60"]),
    )
    scale_args = ["--cameras", "30", "--seconds", "15"] if short else ["--seconds", "120"]
    scale_args += ["--store", "off"]  # store on vs off: scale_bench.py alone, or store_bench.py
    scale = run("scale_bench.py", *scale_args)
    mqtt = run("mqtt_bench.py", *(["--events", "3000", "--backlog", "2000"] if short else []))
    web = run(
        "web_bench.py", "--skip-paint", *(["--cameras", "20", "--seconds", "5"] if short else [])
    )
    pipeline = run("pipeline_bench.py", "--no-profile", *(["--events", "2000"] if short else []))
    body = run("body_bench.py", *(["--bodies", "200", "--passes", "4"] if short else []))
    workers = run("scale_bench.py", *scale_args, "--workers", "2")
    soak = (
        run("scale_bench.py", "--soak-minutes", str(args.soak_minutes))
        if args.soak_minutes
        else None
    )

    def ok(flag: bool) -> str:
        return "yes" if flag else "NO"

    p, a, f = rtsp["plates"], rtsp["analytics"], rtsp["ffmpeg"]
    ratio = f["pss_mib"] / p["pss_mib"] if f else float("nan")
    cpu_ratio = p["cpu_percent"] / f["cpu_percent"] if f else float("nan")
    disk = http.get("with_disk_writer") or {}
    rows = [
        (
            "HTTP: POSTs/s with 2 pictures (1 core)",
            f"{http['throughput_posts_per_s']:.0f}"
            + (
                f" (the pictures' floor: {http['floor']['events_per_s_cpu']:,}/s"
                + (
                    f"; aiohttp alone: {http['bare_aiohttp']['posts_per_s_cpu']:,}/s; "
                    f"both: {http['bare_aiohttp']['with_pictures']:,}/s"
                    if "bare_aiohttp" in http
                    else ""
                )
                + ")"
                if "floor" in http
                else ""
            ),
            ">= 1000",
            ok(http["throughput_posts_per_s"] >= 1000),
        ),
        (
            f"HTTP: request -> line p99 at {http['rate']:.0f}/s",
            f"{http['line_latency_ms']['p99']:.1f} ms",
            "< 20 ms",
            ok(http["line_latency_ms"]["p99"] < 20),
        ),
        (
            f"RTSP: {p['streams']} streams, {p['docs_per_s']:.0f} docs/s: CPU",
            f"{p['cpu_percent']:.0f}%",
            "<= 40%",
            ok(p["cpu_percent"] <= 40),
        ),
        ("RTSP: RSS", f"{p['rss_mib_max']:.0f} MiB", "<= 120 MiB", ok(p["rss_mib_max"] <= 120)),
        (
            "RTSP: last fragment -> line p99",
            f"{p['latency_ms']['p99']:.1f} ms",
            "< 20 ms",
            ok(p["latency_ms"]["p99"] < 20),
        ),
        (
            "RTSP, 90% scene descriptions: CPU",
            f"{a['cpu_percent']:.0f}%",
            "<= 40%",
            ok(a["cpu_percent"] <= 40),
        ),
        ("RTSP: memory of ffmpeg per camera / daemon", f"{ratio:.1f}x", ">= 5x", ok(ratio >= 5)),
        (
            f"RTSP: daemon CPU / {f['processes'] if f else 0} ffmpeg CPU (same run)",
            f"{p['cpu_percent']:.0f}% / {f['cpu_percent']:.0f}% = {cpu_ratio:.1f}x" if f else "-",
            "<= 2x",
            ok(cpu_ratio <= 2),
        ),
        (
            f"Scale, {sum(scale['cameras'].values())} cameras x 1 read/s: CPU",
            f"{scale['cpu_percent']:.0f}%",
            "",
            "",
        ),
        ("Scale: RSS", f"{scale['rss_mib_max']:.0f} MiB", "", ""),
        (
            "Scale: send -> line p50 / p99",
            f"{scale['latency_ms']['p50']:.1f} / {scale['latency_ms']['p99']:.1f} ms",
            "",
            "",
        ),
        (
            "Scale: pictures saved / sent",
            f"{scale['pictures_saved']} / {scale['pictures_sent']}",
            "all",
            ok(scale["pictures_saved"] == scale["pictures_sent"]),
        ),
        ("Scale: events lost", str(scale["lost"]), "0", ok(scale["lost"] == 0)),
        ("Scale: cameras one core holds at that load", str(scale["cameras_per_core"]), "", ""),
        (
            "Scale with --workers 2: CPU (all processes), primary's own, RSS",
            f"{workers['cpu_percent']:.0f}%, {workers['primary_cpu_percent']:.0f}%, "
            f"{workers['rss_mib_max']:.0f} MiB",
            "",
            "",
        ),
        (
            "Scale with --workers 2: p50 / p99, lost",
            f"{workers['latency_ms']['p50']:.1f} / {workers['latency_ms']['p99']:.1f} ms, "
            f"{workers['lost']}",
            "lost 0",
            ok(workers["lost"] == 0),
        ),
        (
            f"HTTP: request -> line p99 at {http['rate']:.0f}/s, disk saturated (dd)",
            f"{disk['line_latency_ms']['p99']:.1f} ms" if disk else "-",
            "< 20 ms",
            ok(bool(disk) and disk["line_latency_ms"]["p99"] < 20),
        ),
        *(
            (
                f"Per-event path, one core: {kind}",
                f"{pipeline[kind]['events_per_s_cpu']:,} events/s{_of_floor(pipeline[kind])}",
                target,
                ok(pipeline[kind]["events_per_s_cpu"] >= int(target[3:].replace(",", ""))),
            )
            for kind, target in (
                ("rtsp", ">= 20,000"),
                ("tcp", ">= 5,000"),
                ("http-new", ">= 2,500"),
                ("http-old", ">= 2,500"),
            )
            if kind in pipeline
        ),
        (
            "HTTP body -> read, pictures cut out first / whole body parsed (us, 134 KB)",
            f"{body['median_us']['cut']} / {body['median_us']['whole']}"
            f" = {body['median_ratio']:.2f}",
            "",
            "",
        ),
        *(
            [
                (
                    "Per-event path: Profile M frames/s",
                    f"{pipeline['profile-m']['inputs_per_s_cpu']:,}",
                    "",
                    "",
                )
            ]
            if "profile-m" in pipeline
            else []
        ),
        (
            "MQTT QoS 1: events/s live / catch-up",
            f"{mqtt['live_events_s']} / {mqtt['catch_up_events_s']}",
            "",
            "",
        ),
        (
            "MQTT: after a broker restart, in order, dropped",
            f"{mqtt['received_in_order']}, {mqtt['dropped']}",
            "True, 0",
            ok(mqtt["received_in_order"] and mqtt["dropped"] == 0),
        ),
        (
            f"Web page, {web['latency']['cameras']} cameras x 1 read/s: read -> row p50 / p99",
            f"{web['latency']['read_to_row_ms']['p50']:.0f} / "
            f"{web['latency']['read_to_row_ms']['p99']:.0f} ms",
            "p99 < 1000 ms",
            ok(web["latency"]["read_to_row_ms"]["p99"] < 1000 and web["latency"]["not_seen"] == 0),
        ),
    ]
    if soak and "soak" in soak:
        rows += [
            (
                f"Soak {args.soak_minutes:g} min: RSS growth",
                f"{soak['soak']['rss_growth_percent']:+.1f}%",
                "< 5%",
                ok(soak["soak"]["rss_growth_percent"] < 5),
            ),
            (
                "Soak: descriptor growth",
                f"{soak['soak']['fd_growth_percent']:+.1f}%",
                "< 5%",
                ok(soak["soak"]["fd_growth_percent"] < 5),
            ),
        ]
    save(
        "all",
        {
            "machine": machine(),
            "quick": short,
            "http": http,
            "rtsp": rtsp,
            "scale": scale,
            "mqtt": mqtt,
            "pipeline": pipeline,
            "workers": workers,
            "soak": soak,
        },
    )
    print(f"\n=== All benchmarks on {machine()}{' (quick: not figures to quote)' if short else ''}")
    print(table(rows))


if __name__ == "__main__":
    main()
