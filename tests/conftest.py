"""Shared test helpers: schema validation of every event line, config builders, free ports."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import structlog

from lprmeta.config import Config, parse_config
from lprmeta.events import Event, event_schema
from lprmeta.log import configure_logging

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

_VALIDATOR = jsonschema.Draft202012Validator(event_schema())


def check_line(line: dict[str, Any] | str | bytes) -> dict[str, Any]:
    """Validate one event line (dict or JSON text) against the shipped schema; return it."""
    data = json.loads(line) if isinstance(line, str | bytes) else line
    errors = sorted(_VALIDATOR.iter_errors(data), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    return data


def check_event(event: Event) -> dict[str, Any]:
    return check_line(json.loads(json.dumps(event.to_json(), ensure_ascii=False)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def race(work: Callable[[int], None], threads: int) -> list[BaseException]:
    """``work(k)`` on ``threads`` threads started together (a barrier), the interpreter
    switching between them as often as it can; what they raised (an assertion too)."""
    import threading

    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def run(k: int) -> None:
        start.wait()
        try:
            work(k)
        except BaseException as exc:  # noqa: BLE001  # returned to the test
            errors.append(exc)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        pool = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    finally:
        sys.setswitchinterval(old)
    return errors


def make_config(tmp_path: Path, **sections: Any) -> Config:
    # The store is on by default; tests that are not about it leave it off (its own
    # tests, the CLI's and the demo's turn it on).
    data: dict[str, Any] = {
        "output": {"snapshot_dir": str(tmp_path / "snapshots")},
        "store": {"enabled": False},
    }
    data.update(sections)
    return parse_config(data)


@pytest.fixture(autouse=True)
def _log_to_stderr() -> Iterator[None]:
    # Each test logs as `lprmeta` does (structlog configured, to stderr), so that
    # capture_logs sees every logger; tests that configure logging themselves (the CLI
    # in-process) must not leak their configuration to others.
    configure_logging(fmt="json", stream=_CurrentStderr())
    yield
    structlog.reset_defaults()


class _CurrentStderr:
    """Whatever sys.stderr is when a line is written (capfd and capsys swap it in after
    the autouse fixtures have run)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return False


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under scripts/test (LPRMETA_NO_SKIP=1) a test skipped for a missing tool fails: CI
    installs every tool, so a skip there would hide a broken install step."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and os.environ.get("LPRMETA_NO_SKIP") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped under LPRMETA_NO_SKIP=1: {report.longrepr}"


async def lprmeta(
    *args: str,
    cwd: Path,
    stdout: int = asyncio.subprocess.PIPE,
    stderr: int = asyncio.subprocess.PIPE,
    env: dict[str, str] | None = None,
) -> asyncio.subprocess.Process:
    """``python -m lprmeta ARGS`` as a user runs it, in ``cwd``; output piped by default;
    ``env`` added to this process's environment."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lprmeta",
        *args,
        cwd=cwd,
        stdout=stdout,
        stderr=stderr,
        env={**os.environ, **env} if env else None,
    )
