"""The per-event path of two trees, compared fairly: ``pipeline_bench.py`` of an older
revision and of this tree, run alternately, medians compared.

On a virtual machine single runs of the same tree differ by up to 40% from one minute
to the next (neighbours, the shared disk: file creation is most of a picture's cost),
so "before" measured at one time and "after" at another says little. Here both trees
run the same bench script (this tree's, copied into a worktree of the older revision),
one single run each in turn, ``--rounds`` times; the medians and their ratio are
printed, every run kept in ``bench/results/ab_pipeline.json``.

    python bench/ab_pipeline.py --before 7a607eb [--rounds 8] [--only tcp,http-new,...]
                                [--events 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import ROOT, discard, machine, save


def run_once(tree: Path, only: str, events: int) -> dict[str, int]:
    """One run of ``pipeline_bench.py`` in ``tree`` (its lprmeta, first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run(
        [
            sys.executable,
            str(tree / "bench" / "pipeline_bench.py"),
            "--no-profile",
            "--repeat",
            "1",
            "--only",
            only,
            "--events",
            str(events),
        ],
        cwd=tree,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    result = json.loads((tree / "bench" / "results" / "pipeline.json").read_text())
    return {kind: int(result[kind]["events_per_s_cpu"]) for kind in only.split(",")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True, help="the older revision (anything git names)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--only", default="rtsp,tcp,http-old,http-new")
    ap.add_argument("--events", type=int, default=10_000)
    args = ap.parse_args()
    rev = subprocess.run(
        ["git", "rev-parse", "--short", args.before],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="lprmeta-ab-"))
    before = work / "before"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "-q", str(before), rev], cwd=ROOT, check=True
    )
    try:
        for script in (ROOT / "bench").glob("*.py"):  # the same bench code for both trees
            shutil.copy2(script, before / "bench" / script.name)
        runs: dict[str, list[dict[str, int]]] = {"before": [], "after": []}
        for n in range(args.rounds):
            for name, tree in (("before", before), ("after", ROOT)):
                runs[name].append(run_once(tree, args.only, args.events))
            print(
                f"round {n + 1}: before {runs['before'][-1]}  after {runs['after'][-1]}",
                flush=True,
            )
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=ROOT, check=False)
        discard(work)
    summary: dict[str, Any] = {}
    print(f"\n{rev} -> this tree, {args.rounds} alternating runs, events/s per core of CPU:")
    for kind in args.only.split(","):
        b = [r[kind] for r in runs["before"]]
        a = [r[kind] for r in runs["after"]]
        mb, ma = statistics.median(b), statistics.median(a)
        summary[kind] = {"before": b, "after": a, "median_before": mb, "median_after": ma}
        print(
            f"  {kind:9} median {mb:8,.0f} -> {ma:8,.0f}  ({ma / mb:.2f}x; "
            f"ranges {min(b):,}-{max(b):,} and {min(a):,}-{max(a):,})"
        )
    print(f"saved {save('ab_pipeline', {'machine': machine(), 'before': rev, 'kinds': summary})}")


if __name__ == "__main__":
    main()
