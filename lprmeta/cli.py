"""The ``lprmeta`` command: argv -> config -> logging -> the chosen job.

Exit codes: 0 done, 1 failed while running (e.g. stdout closed), 2 bad
configuration or usage. stdout carries events only; everything else is stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config, load_config
from .errors import ConfigError, StoreError
from .log import REDACTOR, configure_logging, get_logger

__all__ = ["main"]


def _add_logging(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-format",
        choices=["auto", "console", "json"],
        default="auto",
        help="stderr log format: human-readable on a terminal (auto), or JSON",
    )
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lprmeta",
        description="Receive licence-plate events from Milesight LPR cameras (TCP, HTTP, RTSP).",
    )
    parser.add_argument("--version", action="version", version=f"lprmeta {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon: events as JSON lines on stdout")
    run.add_argument("--config", "-c", required=True, type=Path, help="TOML configuration file")
    run.add_argument(
        "--workers",
        type=_workers,
        default=0,
        metavar="N",
        help="read the cameras lprmeta connects to (TCP, RTSP, ONVIF events) in N worker "
        "processes, dealt round-robin; this process keeps the HTTP port, the bus, every "
        "output and the store (default 0: all in this process; about one per core "
        "for more than a few hundred cameras)",
    )
    _add_logging(run)

    check = sub.add_parser("check-config", help="validate a configuration file and exit")
    check.add_argument("config", type=Path)
    _add_logging(check)

    probe = sub.add_parser(
        "probe", help="try each transport of the configured cameras and say what works"
    )
    probe.add_argument("--config", "-c", required=True, type=Path, help="TOML configuration file")
    probe.add_argument("cameras", nargs="*", metavar="CAMERA", help="camera names (default: all)")
    probe.add_argument(
        "--wait",
        type=float,
        default=10.0,
        help="seconds to wait for a plate on the RTSP stream, to test its picture (default 10)",
    )
    probe.add_argument("--timeout", type=float, default=10.0, help="seconds per check")
    probe.add_argument("--json", action="store_true", help="one JSON object per camera")
    _add_logging(probe)

    from .demo import add_demo_parser  # noqa: PLC0415
    from .history_cli import add_events_parser  # noqa: PLC0415
    from .simulator.cli import add_simulate_parser  # noqa: PLC0415

    add_events_parser(sub, _add_logging)
    add_demo_parser(sub, _add_logging)
    add_simulate_parser(sub, _add_logging)
    return parser


def _workers(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= n <= 256:
        raise argparse.ArgumentTypeError("from 0 to 256")
    return n


def _print_config_error(exc: ConfigError, path: Path) -> None:
    for problem in exc.problems:
        print(f"{path}: {problem}", file=sys.stderr)  # noqa: T201  # the CLI's own messages


def _load(path: Path) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        _print_config_error(exc, path)
        return None


def cmd_check_config(args: argparse.Namespace) -> int:
    from .daemon import resolve_hooks  # noqa: PLC0415

    config = _load(args.config)
    if config is None:
        return 2
    try:
        resolve_hooks(config)
    except ConfigError as exc:
        _print_config_error(exc, args.config)
        return 2
    cams = ", ".join(
        f"{c.name} ({'+'.join(sorted(c.transports)) or 'no transport'})" for c in config.cameras
    )
    print(f"{args.config}: OK; cameras: {cams or 'none'}", file=sys.stderr)  # noqa: T201
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .daemon import run_daemon  # noqa: PLC0415

    config = _load(args.config)
    if config is None:
        return 2
    REDACTOR.add(config.secrets())
    try:
        return asyncio.run(run_daemon(config, workers=args.workers))
    except ConfigError as exc:
        _print_config_error(exc, args.config)
        return 2
    except StoreError as exc:  # a database with a newer lprmeta's schema
        get_logger("lprmeta.cli").error("cannot start", error=str(exc))
        return 1
    except KeyboardInterrupt:
        return 130


def cmd_probe(args: argparse.Namespace) -> int:
    from .probe import probe_camera, render  # noqa: PLC0415

    config = _load(args.config)
    if config is None:
        return 2
    REDACTOR.add(config.secrets())
    names = args.cameras or [c.name for c in config.cameras]
    unknown = [n for n in names if n not in {c.name for c in config.cameras}]
    if unknown:
        print(f"{args.config}: no camera named {', '.join(unknown)}", file=sys.stderr)  # noqa: T201
        return 2

    async def probe_all() -> bool:
        all_ok = True
        for name in names:
            checks = await probe_camera(
                config.camera(name), config, wait=args.wait, timeout=args.timeout
            )
            print(render(name, checks, as_json=args.json), flush=True)  # noqa: T201  # the report
            all_ok = all_ok and all(c.ok is not False for c in checks)
        return all_ok

    return 0 if asyncio.run(probe_all()) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(fmt=args.log_format, level=args.log_level)
    from .demo import cmd_demo  # noqa: PLC0415
    from .history_cli import cmd_events  # noqa: PLC0415
    from .simulator.cli import cmd_simulate  # noqa: PLC0415

    handlers: dict[str, Any] = {
        "demo": cmd_demo,
        "run": cmd_run,
        "check-config": cmd_check_config,
        "probe": cmd_probe,
        "events": cmd_events,
        "simulate": cmd_simulate,
    }
    try:
        return int(handlers[args.command](args))
    except OSError as exc:
        get_logger("lprmeta.cli").error("cannot start", error=str(exc))
        return 1
