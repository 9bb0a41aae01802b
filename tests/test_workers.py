"""``lprmeta run --workers N``: cameras read by worker processes, one output, one health.

Real worker processes (``python -m lprmeta.workers``) connect to simulated TCP cameras
on loopback; the primary is a library Daemon here (its events are read directly) and
``lprmeta run --workers 2`` itself in ``test_cli_workers``.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from lprmeta import workers
from lprmeta.config import Config
from lprmeta.daemon import Daemon
from lprmeta.simulator import ReadFactory, TcpCameraServer
from lprmeta.workers import WorkerInput, assign

from .conftest import check_line, make_config
from .faults.conftest import Events

PW = "worker-test-pw"


@asynccontextmanager
async def cameras(n: int) -> AsyncIterator[list[TcpCameraServer]]:
    servers = [TcpCameraServer(password=PW) for _ in range(n)]
    for s in servers:
        await s.start()
    try:
        yield servers
    finally:
        for s in servers:
            await s.close()


def config_for(tmp_path: Path, servers: list[TcpCameraServer], **extra: Any) -> Config:
    return make_config(
        tmp_path,
        cameras=[
            {
                "name": f"cam{i}",
                "host": "127.0.0.1",
                "password": PW,
                "tcp": {"port": s.port, "backoff_initial": 0.05, "backoff_max": 0.2},
            }
            for i, s in enumerate(servers)
        ],
        **extra,
    )


def worker_inputs(d: Daemon) -> list[WorkerInput]:
    return [i for i in d.inputs if isinstance(i, WorkerInput)]


async def all_ready(d: Daemon, servers: list[TcpCameraServer]) -> None:
    for w in worker_inputs(d):
        await asyncio.wait_for(w.ready.wait(), 20)
    for s in servers:
        await s.wait_for_clients(1, timeout=20)


async def send(server: TcpCameraServer, factory: ReadFactory, plate: str) -> None:
    assert await server.send_read(factory.next(plate=plate)) == 1


def test_cameras_are_dealt_round_robin(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        cameras=[
            {"name": "push-only", "host": "127.0.0.1"},
            *({"name": f"c{i}", "host": "127.0.0.1", "tcp": {"port": 5000 + i}} for i in range(5)),
        ],
    )
    dealt = [[c.name for c in share] for share in assign(config.cameras, 2)]
    assert dealt == [["c0", "c2", "c4"], ["c1", "c3"]]  # push-only stays with the primary


async def test_workers_deliver_every_camera_on_one_output(tmp_path: Path) -> None:
    """Four cameras over two workers: every read once on the primary's stdout, pictures
    saved by the workers (hashes match), lists matched by the primary, the workers'
    counters, parts and camera states in the primary's health."""
    out = io.BytesIO()
    factory = ReadFactory(seed=5)
    async with cameras(4) as servers:
        config = config_for(tmp_path, servers, lists=[{"name": "vip", "plates": ["WK0001"]}])
        async with Daemon(config, stdout=out, workers=2) as d:
            events = Events(d)
            await all_ready(d, servers)
            pids = {w.pid for w in worker_inputs(d)}
            assert len(pids) == 2
            assert os.getpid() not in pids
            sent = []
            for round_ in range(3):
                for i, server in enumerate(servers):
                    plate = f"WK{round_}{i:03d}"
                    await send(server, factory, plate)
                    sent.append(plate)
            for plate in sent:
                await events.wait_for(lambda e, p=plate: e.plate == p, timeout=20)
            vip = next(e for e in events.all if e.plate == "WK0001")
            assert [m.list for m in vip.matches] == ["vip"]

            async def counted() -> None:
                while d.stats.total("pictures_saved") < 2 * len(sent):  # noqa: ASYNC110
                    await asyncio.sleep(0.1)

            await asyncio.wait_for(counted(), 10)  # the workers' counters, merged
            for i in range(4):
                assert d.health.transports[f"cam{i}"]["tcp"].state == "up"
            parts = d.health.parts()
            assert parts["input:worker:1"]["state"] == "running"
            assert parts["worker:1/input:tcp:cam0"]["state"] == "running"
            assert parts["worker:2/input:tcp:cam1"]["state"] == "running"
            assert d.health.problems() == []
    lines = [check_line(x) for x in out.getvalue().splitlines()]
    assert sorted(line["plate"] for line in lines) == sorted(sent)  # each once
    for line in lines:
        assert line["images"]
        for img in line["images"]:
            assert hashlib.sha256(Path(img["path"]).read_bytes()).hexdigest() == img["sha256"]


async def test_a_killed_worker_is_restarted_and_the_other_delivers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGKILL one worker: its cameras are marked down (worker-exited) and come back with
    a new worker; the other worker's camera never stops; counters never go back."""
    monkeypatch.setattr("lprmeta.daemon.Supervisor", _quick_supervisor)
    factory = ReadFactory(seed=6)
    async with (
        cameras(2) as servers,
        Daemon(config_for(tmp_path, servers), stdout=io.BytesIO(), workers=2) as d,
    ):
        events = Events(d)
        await all_ready(d, servers)
        w1, _ = worker_inputs(d)
        await send(servers[0], factory, "BEFORE1")
        await events.wait_for(lambda e: e.plate == "BEFORE1", timeout=20)
        await asyncio.sleep(1.2)  # a state message with the picture counted
        saved = d.stats.total("pictures_saved")
        assert saved >= 2
        assert w1.pid is not None
        os.kill(w1.pid, signal.SIGKILL)

        async def down() -> None:
            while d.health.transports["cam0"]["tcp"].state != "down":  # noqa: ASYNC110
                await asyncio.sleep(0.02)

        await asyncio.wait_for(down(), 10)
        assert d.health.transports["cam0"]["tcp"].reason == "worker-exited"
        await send(servers[1], factory, "OTHER1")  # the other worker goes on
        await events.wait_for(lambda e: e.plate == "OTHER1", timeout=20)
        assert d.stats.total("pictures_saved") >= saved  # kept, not reset
        await asyncio.wait_for(w1.ready.wait(), 20)
        assert w1.started == 2
        await servers[0].wait_for_clients(1, timeout=20)
        await send(servers[0], factory, "AFTER1")
        await events.wait_for(lambda e: e.plate == "AFTER1", timeout=20)
        part = d.health.parts()["input:worker:1"]
        assert part["failures"] == 1
        assert "exited with code -9" in part["last_error"]


async def test_a_stuck_worker_is_killed_and_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that says nothing (its loop stuck: SIGSTOP here) is killed after SILENCE
    and replaced; its camera delivers again."""
    monkeypatch.setattr("lprmeta.daemon.Supervisor", _quick_supervisor)
    monkeypatch.setattr(workers, "SILENCE", 2.0)
    factory = ReadFactory(seed=7)
    async with (
        cameras(1) as servers,
        Daemon(config_for(tmp_path, servers), stdout=io.BytesIO(), workers=1) as d,
    ):
        events = Events(d)
        await all_ready(d, servers)
        (w,) = worker_inputs(d)
        assert w.pid is not None
        os.kill(w.pid, signal.SIGSTOP)
        await asyncio.sleep(0.5)
        w.ready.clear()
        await asyncio.wait_for(w.ready.wait(), 20)
        assert w.started == 2
        assert "said nothing for 2 s" in d.health.parts()["input:worker:1"]["last_error"]
        await servers[0].wait_for_clients(1, timeout=20)
        await send(servers[0], factory, "UNSTUCK")
        await events.wait_for(lambda e: e.plate == "UNSTUCK", timeout=20)


async def test_stop_with_workers_loses_no_read(tmp_path: Path) -> None:
    """Reads sent just before the stop still reach stdout: the workers are asked to stop,
    send what they hold, and the primary reads them before its bus closes."""
    out = io.BytesIO()
    factory = ReadFactory(seed=8)
    sent = []
    async with (
        cameras(2) as servers,
        Daemon(config_for(tmp_path, servers), stdout=out, workers=2) as d,
    ):
        await all_ready(d, servers)
        for i in range(20):
            server = servers[i % 2]
            plate = f"LAST{i:03d}"
            await send(server, factory, plate)
            sent.append(plate)
        await asyncio.sleep(0.3)  # on the wire to the workers; then stop at once
    plates = [check_line(x)["plate"] for x in out.getvalue().splitlines()]
    assert sorted(plates) == sorted(sent)


def _quick_supervisor(**kw: Any) -> Any:
    from lprmeta.supervisor import Supervisor

    return Supervisor(**kw, backoff_initial=0.05, backoff_max=0.2)


def test_cli_workers(tmp_path: Path) -> None:
    """``lprmeta run --workers 2`` against two ``lprmeta simulate`` cameras: events of
    both on stdout, JSON logs only on stderr (the workers' too, named), no secret
    logged, exit 0 on SIGTERM."""
    from .conftest import free_port

    ports = [free_port(), free_port()]
    config = tmp_path / "lprmeta.toml"
    config.write_text(
        '[output]\nsnapshot_dir = "snaps"\n'
        + "".join(
            f'[[cameras]]\nname = "gate-{i}"\nhost = "127.0.0.1"\npassword = "{PW}"\n'
            f"  [cameras.tcp]\n  port = {p}\n  backoff_initial = 0.1\n  backoff_max = 0.5\n"
            for i, p in enumerate(ports)
        )
    )

    def start(*args: str) -> subprocess.Popen[bytes]:
        # Unbuffered: lines are read one by one, then communicate() reads the rest from
        # the descriptor; a buffered reader would keep (and lose) what it had read ahead.
        return subprocess.Popen(
            [sys.executable, "-m", "lprmeta", *args, "--log-format", "json"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )

    sims = [
        start("simulate", "--tcp-port", str(p), "--password", PW, "--rate", "20") for p in ports
    ]
    run = start("run", "--config", str(config), "--workers", "2")
    try:
        assert run.stdout is not None
        seen: set[str] = set()
        lines = []
        while len(seen) < 2 or len(lines) < 8:
            line = run.stdout.readline()
            assert line, "daemon ended early"
            lines.append(check_line(line))
            seen.add(lines[-1]["camera"])
        run.send_signal(signal.SIGTERM)
        rest, err = run.communicate(timeout=15)
    finally:
        for proc in (*sims, run):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=10)
    assert run.returncode == 0, err[-3000:]
    for x in rest.splitlines():
        check_line(x)
    assert seen == {"gate-0", "gate-1"}
    assert PW.encode() not in err
    records = [orjson.loads(r) for r in err.splitlines()]  # stderr: JSON logs only
    started = [r for r in records if r["event"] == "worker running"]
    assert sorted(r["worker"] for r in started) == ["worker:1", "worker:2"]


def test_cli_refuses_a_negative_worker_count(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lprmeta", "run", "--config", "x.toml", "--workers", "-1"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 2
    assert b"--workers: from 0 to 256" in proc.stderr


async def test_a_camera_pushing_and_pulled_keeps_both_states(tmp_path: Path) -> None:
    """A camera read over TCP by a worker that also pushes HTTP to the primary: its
    pushes are served by the primary, its HTTP state stays 'up' across the worker's
    state messages (a worker reports only what it reads), and the bus merges the two
    transports' reads of one car as without workers."""
    import aiohttp

    from .conftest import free_port

    port = free_port()
    factory = ReadFactory(seed=9)
    async with cameras(1) as servers:
        config = make_config(
            tmp_path,
            http={"listen": f"127.0.0.1:{port}"},
            cameras=[
                {
                    "name": "both",
                    "host": "127.0.0.1",
                    "password": PW,
                    "tcp": {"port": servers[0].port, "backoff_initial": 0.05},
                    "http": {"path": "/lpr/both"},
                }
            ],
        )
        async with (
            Daemon(config, stdout=io.BytesIO(), workers=1) as d,
            aiohttp.ClientSession() as s,
        ):
            events = Events(d)
            await all_ready(d, servers)
            async with s.post(
                f"http://127.0.0.1:{port}/lpr/both", json={"plate": "MERGE1"}
            ) as resp:
                assert resp.status == 200
            await send(servers[0], factory, "MERGE1")
            merged = await events.wait_for(lambda e: e.plate == "MERGE1", timeout=20)
            await asyncio.sleep(2.5)  # two state messages from the worker
            assert d.health.transports["both"]["http"].state == "up"
            assert d.health.transports["both"]["tcp"].state == "up"
            assert len([e for e in events.all if e.plate == "MERGE1"]) == 1
            assert sorted(merged.details.get("sources", [])) == ["http", "tcp"]


def test_a_workers_failing_part_is_a_problem_of_the_whole() -> None:
    """/healthz's problems and parts include what a worker reports of its own parts."""
    from lprmeta.health import Health

    health = Health([])
    health.absorb_remote(
        "worker:2",
        {
            "input:tcp:gate": {
                "kind": "input",
                "state": "restarting",
                "since": "2026-11-29T00:00:00.000Z",
                "failures": 3,
                "last_error": "OSError: boom",
            },
            "task:report": {"kind": "task", "state": "running", "since": "x"},
        },
    )
    assert health.problems() == ["input worker:2/input:tcp:gate is restarting after OSError: boom"]
    assert health.parts()["worker:2/task:report"]["state"] == "running"
    health.forget_remote("worker:2")
    assert health.problems() == []
    assert health.parts() == {}
