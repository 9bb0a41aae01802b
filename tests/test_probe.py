"""``lprmeta probe`` as a user runs it: against ``lprmeta simulate``, in separate processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import free_port

PASSWORD = "probe-Secret-9"


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[dict[str, int]]:
    ports = {"tcp": free_port(), "rtsp": free_port(), "web": free_port()}
    sim = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lprmeta",
            "simulate",
            "--tcp-port",
            str(ports["tcp"]),
            "--rtsp-port",
            str(ports["rtsp"]),
            "--web-port",
            str(ports["web"]),
            "--password",
            PASSWORD,
            "--rate",
            "4",
            "--log-format",
            "json",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert sim.stderr is not None
    deadline = time.monotonic() + 20
    while b'"transport": "web"' not in sim.stderr.readline():
        assert time.monotonic() < deadline, "simulator did not start"
    yield ports
    sim.terminate()
    sim.communicate(timeout=10)  # reads and closes the stderr pipe


def write_config(
    tmp_path: Path, ports: dict[str, int], password: str, *, rtsp_url: bool = False
) -> Path:
    url = f'url = "rtsp://127.0.0.1:{ports["rtsp"]}/onvif/metadata"' if rtsp_url else ""
    config = tmp_path / "probe.toml"
    config.write_text(
        f"""
[http]
listen = "127.0.0.1:{free_port()}"
[[cameras]]
name = "gate-1"
host = "127.0.0.1"
http_port = {ports["web"]}
password = "{password}"
  [cameras.tcp]
  port = {ports["tcp"]}
  [cameras.rtsp]
  {url}
  [cameras.onvif_events]
  pull_timeout = 2
"""
    )
    return config


def probe(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lprmeta", "probe", "--config", str(config), "--wait", "8", *extra],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_probe_reports_every_transport_working(tmp_path: Path, camera: dict[str, int]) -> None:
    result = probe(write_config(tmp_path, camera, PASSWORD), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["transport"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["tcp"]["ok"] and "login OK" in checks["tcp"]["summary"]
    assert checks["onvif"]["ok"] and checks["onvif"]["details"]["device"]["model"]
    assert checks["rtsp"]["ok"] and "vnd.onvif.metadata" in checks["rtsp"]["summary"]
    assert checks["pictures"]["ok"] and "picture fetched" in checks["pictures"]["summary"]
    assert checks["onvif_events"]["ok"] and "subscribed" in checks["onvif_events"]["summary"]
    assert checks["http"]["details"]["url"].endswith("/lpr/gate-1")
    assert PASSWORD not in result.stdout + result.stderr


def test_probe_says_why_with_a_wrong_password(tmp_path: Path, camera: dict[str, int]) -> None:
    wrong = "not-the-Password-7"
    for with_url in (False, True):
        result = probe(write_config(tmp_path, camera, wrong, rtsp_url=with_url))
        assert result.returncode == 1
        lines = {line.split()[1]: line for line in result.stdout.splitlines()[1:]}
        assert lines["tcp"].split()[0] == "FAIL" and "login rejected (401)" in lines["tcp"]
        assert lines["onvif"].split()[0] == "FAIL" and "refused the credentials" in lines["onvif"]
        assert lines["rtsp"].split()[0] == "FAIL" and "refused the credentials" in lines["rtsp"]
        assert lines["onvif_events"].split()[0] == "FAIL"
        assert "not authorized" in lines["onvif_events"].lower()
        assert wrong not in result.stdout + result.stderr


def test_probe_unknown_camera_is_a_usage_error(tmp_path: Path) -> None:
    result = probe(write_config(tmp_path, {"tcp": 1, "rtsp": 2, "web": 3}, "x"), "nope")
    assert result.returncode == 2 and "no camera named nope" in result.stderr
