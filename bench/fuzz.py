"""Long fuzzing of the parsers (issue 7): atheris, coverage-guided, minutes per parser.

    python bench/fuzz.py [--minutes 10] [--targets tcp onvif http]

Each parser runs in a process of its own (libFuzzer owns it): the TCP decoder,
the ONVIF reassembler and parser, the HTTP normalizer (``tests/fuzz_targets.py``),
seeded with the parser's fixtures and the saved corpus ``fixtures/fuzz/<parser>/``.
A crash is any exception other than a typed :class:`ProtocolError`, an input that
takes more than 10 s, or a process above 1 GiB (``-rss_limit_mb``): unbounded
memory. What it finds is written to ``fixtures/fuzz/<parser>/crash-*``.

Needs ``pip install atheris`` (a wheel for CPython 3.11 on x86_64 Linux).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def child(target: str, seconds: int, corpus: Path) -> None:
    import atheris  # noqa: PLC0415  # only the child needs it

    with atheris.instrument_imports(include=["lprmeta", "tests"]):
        from tests.fuzz_targets import TARGETS  # noqa: PLC0415

    run = TARGETS[target]

    def one_input(data: bytes) -> None:
        run(data)

    artifacts = ROOT / "fixtures" / "fuzz" / target / "crash-"
    atheris.Setup(
        [
            sys.argv[0],
            str(corpus),
            f"-max_total_time={seconds}",
            "-rss_limit_mb=1024",
            "-timeout=10",
            "-max_len=65536",
            f"-artifact_prefix={artifacts}",
            "-print_final_stats=1",
        ],
        one_input,
    )
    atheris.Fuzz()


def fuzz(target: str, seconds: int) -> dict[str, Any]:
    from tests.fuzz_targets import seeds  # noqa: PLC0415

    corpus = Path(tempfile.mkdtemp(prefix=f"lprmeta-fuzz-{target}-"))
    for i, seed in enumerate(seeds(target)):
        shutil.copy(seed, corpus / f"seed-{i:03d}")
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", target, "--seconds", str(seconds), str(corpus)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    stats = dict(re.findall(r"stat::(\w+):\s+(\d+)", proc.stderr))
    crashes = sorted(p.name for p in (ROOT / "fixtures" / "fuzz" / target).glob("crash-*"))
    result = {
        "target": target,
        "seconds": round(time.monotonic() - started),
        "executions": int(stats.get("number_of_executed_units", 0)),
        "corpus": sum(1 for _ in corpus.iterdir()),
        "peak_rss_mb": int(stats.get("peak_rss_mb", 0)),
        "exit_code": proc.returncode,
        "crashes": crashes,
    }
    if proc.returncode != 0:
        result["output"] = proc.stderr[-4000:]
    shutil.rmtree(corpus, ignore_errors=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--targets", nargs="+", default=["tcp", "onvif", "http"])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=int, help=argparse.SUPPRESS)
    ap.add_argument("corpus", nargs="?", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.seconds, args.corpus)
        return
    from _common import machine, save, table  # noqa: PLC0415

    results = []
    for target in args.targets:
        print(f"fuzzing {target} for {args.minutes:g} min ...", flush=True)
        results.append(fuzz(target, int(args.minutes * 60)))
        if results[-1]["exit_code"]:
            print(results[-1]["output"], file=sys.stderr)
    save("fuzz", {"machine": machine(), "minutes": args.minutes, "results": results})
    print(f"Fuzzing on {machine()}")
    print(
        table(
            [
                (
                    f"{r['target']}: {r['seconds']} s, {r['executions']} inputs, "
                    f"corpus {r['corpus']}, peak {r['peak_rss_mb']} MB",
                    f"{len(r['crashes'])} crashes",
                    "0",
                    "yes" if r["exit_code"] == 0 and not r["crashes"] else "NO",
                )
                for r in results
            ]
        )
    )
    sys.exit(0 if all(r["exit_code"] == 0 and not r["crashes"] for r in results) else 1)


if __name__ == "__main__":
    main()
