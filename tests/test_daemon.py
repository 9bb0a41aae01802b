from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lprmeta.daemon import Daemon
from lprmeta.envelope import Picture, Read
from lprmeta.errors import ConfigError, SinkError, UsageError
from lprmeta.events import Event, Kind, Source

from .conftest import ROOT, check_line, make_config

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100 + b"\xff\xd9"


def ev(p: str, **kw: object) -> Event:
    return Event(kind=Kind.PLATE, camera="c", source=Source.HTTP, plate=p, **kw)  # type: ignore[arg-type]


async def test_library_api_events_and_pictures_saved(tmp_path: Path) -> None:
    out = io.BytesIO()
    async with Daemon(make_config(tmp_path), stdout=out) as d:
        sub = d.events()
        d.deliver(Read(ev("AB1234"), pictures=(Picture("plate", JPEG),)))
        got = await asyncio.wait_for(sub.get(), 2)
    assert got is not None and got.plate == "AB1234"
    (img,) = got.images
    assert img.role == "plate" and img.bytes == len(JPEG)
    assert img.path is not None and Path(img.path).read_bytes() == JPEG
    assert Path(img.path).is_relative_to((tmp_path / "snapshots").resolve())
    lines = out.getvalue().decode().splitlines()
    assert len(lines) == 1
    line = check_line(lines[0])
    assert line["images"][0]["sha256"] == img.sha256


async def test_shutdown_writes_every_accepted_event(tmp_path: Path) -> None:
    class SlowStream(io.BytesIO):
        def write(self, b: bytes) -> int:  # type: ignore[override]
            time.sleep(0.002)
            return super().write(b)

    out = SlowStream()
    async with Daemon(make_config(tmp_path, bus={"dedup_window": 0}), stdout=out) as d:
        for i in range(500):
            d.deliver(ev(f"P{i}"))
    lines = out.getvalue().decode().splitlines()
    assert [json.loads(x)["plate"] for x in lines] == [f"P{i}" for i in range(500)]
    assert d.stats.total("emitted") == 500


async def test_closed_stdout_stops_the_daemon_with_failure(tmp_path: Path) -> None:
    out = io.BytesIO()
    out.close()
    d = Daemon(make_config(tmp_path), stdout=out)

    async def feed() -> None:
        while True:
            await asyncio.sleep(0.01)
            if d._bus is not None:
                d.deliver(ev("X"))

    feeder = asyncio.create_task(feed())
    code = await asyncio.wait_for(d.run(), 5)
    feeder.cancel()
    assert code == 1


async def test_pipe_reader_going_away_stops_the_daemon_with_failure(tmp_path: Path) -> None:
    # stdout as in `lprmeta run | head -3`: a real pipe, written without blocking the loop.
    read_fd, write_fd = os.pipe()
    out = os.fdopen(write_fd, "wb")
    d = Daemon(make_config(tmp_path), stdout=out)
    try:
        async with asyncio.timeout(5):
            async with d:
                d.deliver(ev("FIRST"))
                reader = os.fdopen(read_fd, "rb")
                line = await asyncio.to_thread(reader.readline)
                assert json.loads(line)["plate"] == "FIRST"
                reader.close()  # the consumer exits
                n = 0
                while not d._stop.is_set():
                    n += 1
                    d.deliver(ev(f"MORE{n}"))  # distinct plates: none is deduplicated
                    await asyncio.sleep(0.01)
    except* SinkError:
        pass
    else:
        pytest.fail("the daemon did not report the closed pipe")
    finally:
        out.close()


async def test_pipe_sink_writes_every_line_before_exit(tmp_path: Path) -> None:
    read_fd, write_fd = os.pipe()
    out = os.fdopen(write_fd, "wb")
    reader = os.fdopen(read_fd, "rb")
    got: list[bytes] = []
    drain = asyncio.create_task(asyncio.to_thread(lambda: got.extend(reader)))
    async with Daemon(make_config(tmp_path), stdout=out) as d:
        for i in range(2000):  # more than a pipe buffer holds
            d.deliver(ev(f"P{i}"))
    # Non-blocking mode is shared by every descriptor of the pipe: it is restored.
    assert os.get_blocking(write_fd)
    out.close()
    await drain
    reader.close()
    assert [json.loads(x)["plate"] for x in got] == [f"P{i}" for i in range(2000)]


def test_lines_are_valid_json_whatever_a_camera_sent() -> None:
    from lprmeta.sinks.jsonl import encode_line

    event = Event(
        kind=Kind.EVENT,
        camera="c",
        source=Source.HTTP,
        raw={"big": 2**70, "nan": float("nan"), "inf": float("-inf"), "nested": [{"x": 2**80}]},
    )
    line = json.loads(encode_line(event))  # found by fuzzing: orjson refuses 2**70
    assert line["raw"] == {
        "big": str(2**70),
        "nan": None,
        "inf": None,
        "nested": [{"x": str(2**80)}],
    }


async def test_an_event_that_cannot_be_written_is_counted_not_fatal(tmp_path: Path) -> None:
    out = io.BytesIO()
    loop: dict[str, object] = {}
    loop["self"] = loop  # no encoder can write this
    async with Daemon(make_config(tmp_path, bus={"dedup_window": 0}), stdout=out) as d:
        d.deliver(Event(kind=Kind.EVENT, camera="c", source=Source.TCP, raw=loop))
        d.deliver(ev("AFTER"))
    assert [json.loads(x)["plate"] for x in out.getvalue().splitlines()] == ["AFTER"]
    assert d.stats.get("unencodable:stdout", "c") == 1


async def test_counters_per_camera_in_the_api_and_logged_periodically(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        async with Daemon(
            make_config(tmp_path, bus={"dedup_window": 5}), stdout=io.BytesIO(), stats_interval=0.2
        ) as d:
            d.deliver(ev("SAME"))
            d.deliver(ev("SAME"))  # a duplicate: not emitted, counted
            await asyncio.sleep(0.5)
            snapshot = d.stats.snapshot()
    assert snapshot["c"]["received"] == 2 and snapshot["c"]["duplicates"] == 1
    periodic = [r for r in logs if r["event"] == "counters"]
    assert periodic and periodic[0]["log_level"] == "info"
    assert periodic[0]["counters"]["c"]["duplicates"] == 1
    assert len(periodic) == 1  # logged when they change, not every interval


async def test_bad_hook_fails_start_with_config_error(tmp_path: Path) -> None:
    config = make_config(tmp_path, hooks=[{"target": "tests.sinks.sample_hooks:missing"}])
    with pytest.raises(ConfigError, match=r"hooks\[0\].target"):
        async with Daemon(config):
            pass


async def test_bus_before_start_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        Daemon(make_config(tmp_path)).events()


def test_cli_run_logs_to_stderr_only_and_stops_on_sigterm(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lprmeta",
            "run",
            "--config",
            str(ROOT / "config.example.toml"),
            "--log-format",
            "json",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        seen = b""
        while b"lprmeta running" not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()
        assert b"lprmeta running" in seen, seen
        start = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert time.monotonic() - start < 5
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert out == b""
    records = [json.loads(x) for x in (seen + err).decode().splitlines() if x.strip()]
    assert any(r["event"] == "lprmeta stopped" for r in records)
    assert not any("sim-password" in json.dumps(r) for r in records)


def test_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lprmeta", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env={**os.environ},
    )
    assert proc.stdout.startswith("lprmeta ")


async def test_start_up_problems_keep_their_exit_codes(tmp_path: Path) -> None:
    """A bad configuration found at start-up is exit 2 (systemd does not restart it); a port
    that is taken is exit 1 with the reason: neither is swallowed by the 'cannot go on'
    path, which is for failures after the daemon has started."""
    import socket

    from .conftest import lprmeta

    bad = tmp_path / "bad.toml"
    bad.write_text(f'[output]\nsnapshot_dir = "{tmp_path}"\n[[hooks]]\ntarget = "no_such_x:f"\n')
    proc = await lprmeta("run", "--config", str(bad), cwd=tmp_path)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2 and b"hooks[0].target" in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = tmp_path / "busy.toml"
        busy.write_text(
            f'[output]\nsnapshot_dir = "{tmp_path}"\n[http]\nlisten = "127.0.0.1:{port}"\n'
        )
        proc = await lprmeta("run", "--config", str(busy), cwd=tmp_path)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1 and b"cannot listen" in err and b"Traceback" not in err
