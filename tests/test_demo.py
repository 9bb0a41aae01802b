"""``lprmeta demo``: the README's first command, run as a user runs it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from .conftest import check_line


def test_demo_prints_events_from_all_three_transports(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lprmeta", "demo", "--duration", "4", "--interval", "0.5"],
        cwd=tmp_path,
        capture_output=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    lines = [check_line(x) for x in result.stdout.splitlines()]
    assert {x["source"] for x in lines if x["kind"] == "plate"} == {"tcp", "http", "rtsp"}
    # The Profile M camera (scene descriptions): one read per car, with its pictures.
    scene = [x for x in lines if x["camera"] == "lane-onvif"]
    assert scene
    assert all(x["details"]["onvif"] == "scene description" for x in scene)
    assert {i["role"] for x in scene for i in x["images"]} == {"plate", "full"}
    assert {"parking", "counting"} <= {x["kind"] for x in lines}
    images = [img for x in lines for img in x["images"]]
    assert images and all(img["missing"] is None if "missing" in img else True for img in images)
    for img in images:
        path = tmp_path / img["path"]
        assert path.is_relative_to(tmp_path / "lprmeta-demo-snapshots")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == img["sha256"]
    for record in result.stderr.splitlines():  # stderr: logs only, JSON when not a terminal
        json.loads(record)
    # The demo leaves a store behind that `lprmeta events` searches: every line printed.
    db = tmp_path / "lprmeta-demo-data" / "events.db"
    found = subprocess.run(
        [sys.executable, "-m", "lprmeta", "events", "--db", f"sqlite:///{db}", "--json"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert found.returncode == 0, found.stderr.decode()
    stored = {json.loads(x)["id"] for x in found.stdout.splitlines()}
    assert stored == {x["id"] for x in lines}
    plate = next(x["plate"] for x in lines if x["kind"] == "plate")
    one = subprocess.run(
        [sys.executable, "-m", "lprmeta", "events", "--db", f"sqlite:///{db}", "--plate", plate],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
        text=True,
    )
    assert plate in one.stdout
