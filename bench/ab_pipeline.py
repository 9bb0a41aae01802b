"""The per-event path of two trees, compared fairly: ``pipeline_bench.py`` (or, with
``--bench http``, ``http_bench.py``) of an older revision and of this tree, run
alternately, medians compared.

On a virtual machine single runs of the same tree differ by up to 40% from one minute
to the next (neighbours, the shared disk: file creation is most of a picture's cost),
so "before" measured at one time and "after" at another says little. Here both trees
run the same bench script (this tree's, copied into a worktree of the older revision),
one single run each in turn, ``--rounds`` times; the medians and their ratio are
printed, every run kept in ``bench/results/ab_pipeline.json``.

    python bench/ab_pipeline.py --before 7a607eb [--rounds 8] [--only tcp,http-new,...]
                                [--events 10000] [--together]
    python bench/ab_pipeline.py --before 7a607eb --bench http [--seconds 10] [--rounds 4]
    python bench/ab_pipeline.py --before 7a607eb --bench rtsp [--seconds 30] [--rounds 4]

The http figures are the closed loop's POSTs/s and the request -> JSON line p99 at
1,000/s (``http_bench.py --no-disk-writer``); the rtsp figures are those of
``rtsp_bench.py``'s first phase (200 streams x 10 plate documents/s): the daemon's CPU,
its event loop thread's, the last fragment -> JSON line p99, plates lost. The rounds go
ABBA, as the pipeline's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import ROOT, discard, machine, pin, save, work_dir


def start_once(tree: Path, only: str, events: int, core: int) -> subprocess.Popen[bytes]:
    """One run of ``pipeline_bench.py`` in ``tree`` (its lprmeta, first on the path), on
    ``core``; :func:`result_of` reads its figures once it has ended."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(tree / "bench" / "pipeline_bench.py"), "--no-profile"]
    cmd += ["--repeat", "1", "--only", only, "--events", str(events), "--core", str(core)]
    return subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL)


def result_of(tree: Path, only: str, proc: subprocess.Popen[bytes]) -> dict[str, int]:
    if proc.wait() != 0:
        raise SystemExit(f"pipeline_bench.py in {tree} failed ({proc.returncode})")
    result = json.loads((tree / "bench" / "results" / "pipeline.json").read_text())
    return {kind: int(result[kind]["events_per_s_cpu"]) for kind in only.split(",")}


def run_once(tree: Path, only: str, events: int) -> dict[str, int]:
    return result_of(tree, only, start_once(tree, only, events, 0))


def run_together(
    trees: dict[str, Path], only: str, events: int, swap: bool
) -> dict[str, dict[str, int]]:
    """Both trees at once, one on each core (swapped every other round): a neighbour
    that slows the machine for a few seconds slows both, not whichever ran then."""
    cores = {"before": 1 if swap else 0, "after": 0 if swap else 1}
    procs = {n: start_once(tree, only, events, cores[n]) for n, tree in trees.items()}
    return {n: result_of(trees[n], only, p) for n, p in procs.items()}


HTTP_FIGURES = ("posts_per_s", "line_p99_ms")
RTSP_FIGURES = ("cpu_percent", "loop_cpu_percent", "line_p99_ms", "lost")


def run_rtsp(tree: Path, seconds: float) -> dict[str, float]:
    """``rtsp_bench.py``'s plates phase with ``tree``'s daemon (and simulator): this
    process runs the harness on core 1, the daemon it starts imports from ``tree``."""
    import rtsp_bench  # noqa: PLC0415  # only this mode needs it

    pin({1})
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(tree)
    try:
        args = argparse.Namespace(cameras=200, rate=10.0, seconds=seconds, skip_ffmpeg=True)
        plates = rtsp_bench.run_daemon(args, 0.0)
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
    return {
        "cpu_percent": plates["cpu_percent"],
        "loop_cpu_percent": plates["loop_thread_cpu_percent"],
        "line_p99_ms": plates["latency_ms"]["p99"],
        "lost": plates["lost"],
    }


def run_http(tree: Path, seconds: float) -> dict[str, float]:
    """One run of ``http_bench.py`` in ``tree``: the daemon is that tree's lprmeta."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(tree / "bench" / "http_bench.py"), "--no-disk-writer"]
    cmd += ["--seconds", str(seconds)]
    subprocess.run(cmd, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    result = json.loads((tree / "bench" / "results" / "http.json").read_text())
    return {
        "posts_per_s": result["throughput_posts_per_s"],
        "line_p99_ms": result["line_latency_ms"]["p99"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="the older revision (anything git names)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--only", default="rtsp,tcp,http-old,http-new")
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--bench", choices=("pipeline", "http", "rtsp"), default="pipeline")
    ap.add_argument("--seconds", type=float, default=10, help="http, rtsp: a phase's length")
    ap.add_argument(
        "--together",
        action="store_true",
        help="pipeline: run both trees at the same time, one per core, instead of in turn",
    )
    args = ap.parse_args()
    kinds = {"http": HTTP_FIGURES, "rtsp": RTSP_FIGURES}.get(
        args.bench, tuple(args.only.split(","))
    )
    rev = subprocess.run(
        ["git", "rev-parse", "--short", args.before],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    work = work_dir("lprmeta-ab-")
    before = work / "before"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "-q", str(before), rev], cwd=ROOT, check=True
    )
    try:
        for script in (ROOT / "bench").glob("*.py"):  # the same bench code for both trees
            shutil.copy2(script, before / "bench" / script.name)
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for n in range(args.rounds):
            if args.together and args.bench == "pipeline":
                both = run_together(
                    {"before": before, "after": ROOT}, args.only, args.events, n % 2 == 1
                )
                runs["before"].append(both["before"])
                runs["after"].append(both["after"])
                print(f"round {n + 1}: before {both['before']}  after {both['after']}", flush=True)
                continue
            # ABBA: the tree that goes first alternates, so what one run leaves behind
            # (the disk still writing its pictures, a warm cache) falls on both alike.
            order = [("before", before), ("after", ROOT)]
            for name, tree in order if n % 2 == 0 else order[::-1]:
                if args.bench == "http":
                    runs[name].append(run_http(tree, args.seconds))
                elif args.bench == "rtsp":
                    runs[name].append(run_rtsp(tree, args.seconds))
                else:
                    runs[name].append(run_once(tree, args.only, args.events))
            print(
                f"round {n + 1}: before {runs['before'][-1]}  after {runs['after'][-1]}",
                flush=True,
            )
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False)
        discard(work)
    summary: dict[str, Any] = {}
    unit = {"http": "POSTs/s and ms", "rtsp": "% of a core, ms, plates"}.get(
        args.bench, "events/s per core of CPU"
    )
    how = "simultaneous (one core each, swapped)" if args.together else "alternating"
    print(f"\n{rev} -> this tree, {args.rounds} {how} runs, {unit}:")
    for kind in kinds:
        b = [r[kind] for r in runs["before"]]
        a = [r[kind] for r in runs["after"]]
        mb, ma = statistics.median(b), statistics.median(a)
        summary[kind] = {"before": b, "after": a, "median_before": mb, "median_after": ma}
        ratio = f"{ma / mb:.2f}x" if mb else "-"
        if all(b):  # each round's after/before: in a simultaneous round, the fair pair
            paired = statistics.median(x / y for x, y in zip(a, b, strict=True))
            summary[kind]["median_round_ratio"] = round(paired, 3)
            ratio += f", median of the rounds' ratios {paired:.2f}x"
        print(
            f"  {kind:11} median {mb:8,.1f} -> {ma:8,.1f}  ({ratio}; "
            f"ranges {min(b):,}-{max(b):,} and {min(a):,}-{max(a):,})"
        )
    name = {"http": "ab_http", "rtsp": "ab_rtsp"}.get(args.bench, "ab_pipeline")
    print(f"saved {save(name, {'machine': machine(), 'before': rev, 'kinds': summary})}")


if __name__ == "__main__":
    main()
