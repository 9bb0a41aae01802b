"""`lprmeta run` and `lprmeta simulate` as a user runs them: separate processes, loopback."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from .conftest import check_line, free_port, lprmeta


def start(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    # Unbuffered: the tests read lines one by one, then communicate() reads the rest from
    # the descriptor; a buffered reader would keep (and lose) what it had read ahead.
    return subprocess.Popen(
        [sys.executable, "-m", "lprmeta", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )


def read_lines(stream: IO[bytes], n: int, timeout: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        out.append(check_line(line))
    return out


def test_run_against_simulate_over_tcp(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "lprmeta.toml"
    config.write_text(
        f"""
[output]
snapshot_dir = "snaps"
[[cameras]]
name = "gate-1"
host = "127.0.0.1"
password = "pw-e2e-secret"
  [cameras.tcp]
  port = {port}
  backoff_initial = 0.1
  backoff_max = 0.5
"""
    )
    sim = start(
        [
            "simulate",
            "--tcp-port",
            str(port),
            "--password",
            "pw-e2e-secret",
            "--rate",
            "20",
            "--posts-every",
            "2",
            "--log-format",
            "json",
        ],
        tmp_path,
    )
    run = start(["run", "--config", str(config), "--log-format", "json"], tmp_path)
    try:
        assert run.stdout is not None
        lines = read_lines(run.stdout, 8, timeout=30)
        run.send_signal(signal.SIGTERM)
        rest, err = run.communicate(timeout=10)
    finally:
        for proc in (sim, run):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=10)
    assert run.returncode == 0, err
    lines += [check_line(x) for x in rest.splitlines()]
    kinds = {line["kind"] for line in lines}
    assert {"plate", "parking", "counting"} <= kinds
    for line in lines:
        assert line["camera"] == "gate-1" and line["source"] == "tcp"
        for img in line["images"]:
            data = (
                (tmp_path / img["path"]).read_bytes()
                if not Path(img["path"]).is_absolute()
                else Path(img["path"]).read_bytes()
            )
            assert hashlib.sha256(data).hexdigest() == img["sha256"]
    assert b"pw-e2e-secret" not in err
    for rec in err.decode().splitlines():
        json.loads(rec)  # stderr is JSON logs only


def test_run_against_simulate_over_http(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "lprmeta.toml"
    config.write_text(
        f"""
[output]
snapshot_dir = "snaps"
[http]
listen = "127.0.0.1:{port}"
username = "pusher"
password = "push-pw-secret"
[[cameras]]
name = "gate-h"
host = "127.0.0.9"
"""
    )
    run = start(["run", "--config", str(config), "--log-format", "json"], tmp_path)
    assert run.stderr is not None
    while b"HTTP receiver listening" not in (line := run.stderr.readline()):
        assert line, "daemon exited before listening"
    sim = start(
        [
            "simulate",
            "--http-target",
            f"http://127.0.0.1:{port}/lpr/gate-h",
            "--rate",
            "20",
            "--posts-every",
            "3",
            "--http-get-every",
            "4",
            "--http-username",
            "pusher",
            "--http-password",
            "push-pw-secret",
            "--count",
            "12",
            "--log-format",
            "json",
        ],
        tmp_path,
    )
    try:
        _, sim_err = sim.communicate(timeout=30)
        assert sim.returncode == 0, sim_err
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=10)
    finally:
        for proc in (sim, run):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert run.returncode == 0, err
    lines = [check_line(x) for x in out.splitlines()]
    assert len(lines) == 12 + 2 * 4  # every read, and a parking + counting post every 3rd
    assert {x["camera"] for x in lines} == {"gate-h"}
    assert {x["kind"] for x in lines} == {"plate", "parking", "counting"}
    gets = [x for x in lines if x["kind"] == "plate" and not x["images"]]
    assert len(gets) == 3  # every 4th read was a GET, plate only
    assert b"HTTP push failed" not in sim_err
    assert b"push-pw-secret" not in err + sim_err


async def test_run_over_tcp_korean_plate_2mb_picture_401_and_a_cut_packet(
    tmp_path: Path,
) -> None:
    """``lprmeta run`` (a real process) against the simulated camera (driven from here)."""
    import asyncio

    from lprmeta.simulator import ReadFactory, TcpCameraServer, fake_jpeg

    good, locked = TcpCameraServer(password="tcp-e2e-pw"), TcpCameraServer(password="other")
    await good.start()
    await locked.start()
    config = tmp_path / "lprmeta.toml"
    config.write_text(
        f"""
[output]
snapshot_dir = "snaps"
[bus]
dedup_window = 0
[[cameras]]
name = "lane-k"
host = "127.0.0.1"
password = "tcp-e2e-pw"
  [cameras.tcp]
  port = {good.port}
  backoff_initial = 0.1
  backoff_max = 0.5
[[cameras]]
name = "lane-401"
host = "127.0.0.1"
password = "tcp-e2e-pw"
  [cameras.tcp]
  port = {locked.port}
  login_retry = 300
"""
    )
    run = await lprmeta("run", "--config", str(config), "--log-format", "json", cwd=tmp_path)
    assert run.stdout is not None
    factory = ReadFactory(seed=30)
    try:
        await good.wait_for_clients(1, timeout=20)
        korean = factory.next(plate="부산02가1234")
        big = factory.next(plate="BIG2MB")
        big = type(big)(
            **{
                **{f: getattr(big, f) for f in big.__dataclass_fields__},
                "full_jpeg": fake_jpeg(2 * 1024 * 1024, seed=31),
            }
        )
        await good.send_read(korean)
        await good.send_read(big)
        half = ReadFactory(seed=32, picture_bytes=200_000).next(plate="HALFREAD")
        good.faults.cut_next_send_at = 30_000  # the camera drops mid-packet...
        await good.send_read(half)
        await good.wait_for_clients(1, timeout=20)  # ...and lprmeta reconnects
        whole = factory.next(plate="AFTERCUT")
        await good.send_read(whole)
        lines = [check_line(await asyncio.wait_for(run.stdout.readline(), 20)) for _ in range(3)]
    finally:
        run.send_signal(signal.SIGTERM)
        rest, err = await asyncio.wait_for(run.communicate(), 15)
        await good.close()
        await locked.close()
    assert run.returncode == 0, err.decode()[-2000:]
    lines += [check_line(x) for x in rest.splitlines()]
    assert [x["plate"] for x in lines] == ["부산02가1234", "BIG2MB", "AFTERCUT"]  # no half read
    sent = {"부산02가1234": korean, "BIG2MB": big, "AFTERCUT": whole}
    for line in lines:
        files = {(tmp_path / i["path"]).read_bytes() for i in line["images"]}
        assert {hashlib.sha256(f).hexdigest() for f in files} == sent[
            line["plate"]
        ].picture_hashes()
    full = next(i for i in lines[1]["images"] if i["role"] == "full")
    assert full["bytes"] == 2 * 1024 * 1024
    logs = [json.loads(r) for r in err.decode().splitlines()]
    rejected = [r for r in logs if r.get("state", "").startswith("login-rejected")]
    assert (
        len(rejected) == 1 and rejected[0]["camera"] == "lane-401" and locked.rejected_logins == 1
    )
    assert any(r.get("event", "").startswith("connection closed mid-packet") for r in logs)
    assert b"tcp-e2e-pw" not in err
