"""Imports point one way (STYLE.md): events, errors <- protocol <- bus <- inputs, snapshots,
sinks <- daemon <- cli. The parsers under protocol/ stay sans-IO: no asyncio, aiohttp,
av, sockets, threads or logging. Checked on the source, function-level imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lprmeta"
IO = {"asyncio", "aiohttp", "av", "socket", "threading", "selectors", "structlog", "logging"}

# module prefix -> what it must not import (top-level names or lprmeta submodules)
RULES: dict[str, set[str]] = {
    "lprmeta.events": {
        "lprmeta.protocol",
        "lprmeta.bus",
        "lprmeta.inputs",
        "lprmeta.sinks",
        "lprmeta.daemon",
        "lprmeta.cli",
        "lprmeta.config",
        *IO,
    },
    "lprmeta.errors": {
        "lprmeta.events",
        "lprmeta.protocol",
        "lprmeta.bus",
        "lprmeta.inputs",
        "lprmeta.daemon",
        "lprmeta.cli",
        *IO,
    },
    "lprmeta.protocol": {
        "lprmeta.bus",
        "lprmeta.inputs",
        "lprmeta.sinks",
        "lprmeta.daemon",
        "lprmeta.cli",
        "lprmeta.snapshots",
        "lprmeta.log",
        "lprmeta.simulator",
        *IO,
    },
    "lprmeta.firmware": {"lprmeta.inputs", "lprmeta.daemon", *IO},
    "lprmeta.bus": {
        "lprmeta.inputs",
        "lprmeta.sinks",
        "lprmeta.snapshots",
        "lprmeta.daemon",
        "lprmeta.cli",
    },
    "lprmeta.inputs": {"lprmeta.sinks", "lprmeta.daemon", "lprmeta.cli", "lprmeta.simulator"},
    "lprmeta.sinks": {"lprmeta.inputs", "lprmeta.daemon", "lprmeta.cli", "lprmeta.simulator"},
    "lprmeta.snapshots": {"lprmeta.inputs", "lprmeta.sinks", "lprmeta.daemon", "lprmeta.cli"},
    "lprmeta.daemon": {"lprmeta.cli", "lprmeta.simulator"},
    # The vocabulary is tables and one fold: it imports nothing of lprmeta but the errors.
    "lprmeta.vocabulary": {
        "lprmeta.events",
        "lprmeta.protocol",
        "lprmeta.bus",
        "lprmeta.inputs",
        "lprmeta.config",
        "lprmeta.daemon",
        *IO,
    },
    # The envelope sits beside the events: pure data, for the parsers and the intake.
    "lprmeta.envelope": {
        "lprmeta.protocol",
        "lprmeta.bus",
        "lprmeta.inputs",
        "lprmeta.sinks",
        "lprmeta.intake",
        "lprmeta.daemon",
        "lprmeta.config",
        *IO,
    },
    # The intake is between the inputs and the bus: it knows no input, sink or daemon.
    "lprmeta.intake": {"lprmeta.inputs", "lprmeta.sinks", "lprmeta.daemon", "lprmeta.cli"},
    # Inputs hand reads to the intake through a callable; they never import it.
    "lprmeta.inputs.": {"lprmeta.intake"},
    "lprmeta.supervisor": {"lprmeta.inputs.tcp", "lprmeta.sinks", "lprmeta.daemon", "lprmeta.cli"},
    "lprmeta.watchdog": {"lprmeta.inputs", "lprmeta.sinks", "lprmeta.daemon", "lprmeta.cli"},
    "lprmeta.offload": {"lprmeta.inputs", "lprmeta.sinks", "lprmeta.daemon", "lprmeta.cli"},
    # The store is a sink and a set of queries: it knows no input, the API or the daemon;
    # its queries are functions of a connection (no asyncio, no threads, no logging).
    "lprmeta.store": {
        "lprmeta.inputs",
        "lprmeta.intake",
        "lprmeta.api",
        "lprmeta.daemon",
        "lprmeta.cli",
        "lprmeta.simulator",
    },
    "lprmeta.store.queries": {"lprmeta.bus", "lprmeta.sinks", "lprmeta.log", *IO},
    "lprmeta.store.schema": {"lprmeta.bus", "lprmeta.sinks", "lprmeta.log", *IO},
    "lprmeta.api": {"lprmeta.inputs", "lprmeta.intake", "lprmeta.daemon", "lprmeta.cli"},
}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Absolute names of everything a module imports, anywhere in it."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            out.add(target)
            out.update(f"{target}.{alias.name}" for alias in node.names)
    return out


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_imports_point_one_way(path: Path) -> None:
    name = module_name(path)
    forbidden = set().union(*(f for prefix, f in RULES.items() if name.startswith(prefix)))
    bad = sorted(
        imp for imp in imports(path) for f in forbidden if imp == f or imp.startswith(f + ".")
    )
    assert not bad, f"{name} imports {bad}"


def test_the_rules_see_imports() -> None:
    # The walk must find relative, function-level imports: daemon imports inputs in a method.
    assert "lprmeta.inputs.rtsp.RtspInput" in imports(PACKAGE / "daemon.py")
    assert "lprmeta.errors" in imports(PACKAGE / "protocol" / "tcp.py")
