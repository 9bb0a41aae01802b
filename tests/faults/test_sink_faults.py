"""Fault matrix, sink rows: a bad hook, a closed stdout, a full disk."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lprmeta.daemon import Daemon
from lprmeta.simulator import ReadFactory, TcpCameraServer

from ..conftest import lprmeta, make_config
from ..sinks import sample_hooks
from .conftest import Events, witness


async def test_hook_that_raises(tmp_path: Path) -> None:
    out = io.BytesIO()
    async with witness() as w:
        config = make_config(
            tmp_path,
            cameras=[w.config()],
            hooks=[{"target": "tests.sinks.sample_hooks:explode"}],
        )
        async with Daemon(config, stdout=out) as d:
            events = Events(d)
            for _ in range(3):
                await w.served(events)
            await asyncio.sleep(0.2)
    assert len(out.getvalue().splitlines()) == 3  # stdout got every event
    assert d.stats.get("hook_errors:tests.sinks.sample_hooks:explode", "witness") == 3


async def test_hook_that_blocks_for_a_minute(tmp_path: Path) -> None:
    sample_hooks.RELEASE.clear()
    sample_hooks.SEEN_SYNC.clear()
    out = io.BytesIO()
    try:
        async with witness() as w:
            config = make_config(
                tmp_path,
                cameras=[w.config()],
                hooks=[
                    {"target": "tests.sinks.sample_hooks:hang_sync", "timeout": 0.3},
                    {"target": "tests.sinks.sample_hooks:record_sync"},
                ],
            )
            d = Daemon(config, stdout=out)
            async with d:
                events = Events(d)
                for _ in range(3):
                    await w.served(events)
                await asyncio.sleep(0.5)
                stopping = time.monotonic()
            # The hung hook's thread is still blocked: it must not hold up the stop.
            assert time.monotonic() - stopping < 3
        assert len(out.getvalue().splitlines()) == 3
        assert len(sample_hooks.SEEN_SYNC) == 3  # the other hook saw every event
        assert d.stats.get("hook_timeouts:tests.sinks.sample_hooks:hang_sync", "witness") >= 1
    finally:
        sample_hooks.RELEASE.set()


async def test_stdout_closed_by_its_reader(tmp_path: Path) -> None:
    cam = TcpCameraServer()
    await cam.start()
    config = tmp_path / "lprmeta.toml"
    config.write_text(
        f'[bus]\ndedup_window = 0\n[[cameras]]\nname = "c"\nhost = "127.0.0.1"\n'
        f'password = "sim-password"\n  [cameras.tcp]\n  port = {cam.port}\n'
    )
    proc = await lprmeta("run", "--config", str(config), "--log-format", "json", cwd=tmp_path)
    assert proc.stdout is not None and proc.stderr is not None
    factory = ReadFactory(seed=1)
    try:
        await cam.wait_for_clients(timeout=20)
        await cam.send_read(factory.next())
        await asyncio.wait_for(proc.stdout.readline(), 10)
        proc.stdout.feed_eof()
        transport = proc._transport  # type: ignore[attr-defined]
        transport.get_pipe_transport(1).close()  # the reader goes away
        closed_at = time.monotonic()

        async def keep_sending() -> None:
            for i in range(100):
                await cam.send_read(factory.next(plate=f"MORE{i}"))
                await asyncio.sleep(0.05)

        sender = asyncio.create_task(keep_sending())
        code = await asyncio.wait_for(proc.wait(), 10)
        sender.cancel()
        assert code == 1  # reported and exited non-zero, not spinning
        assert time.monotonic() - closed_at < 5
        logs = [json.loads(x) for x in (await proc.stderr.read()).splitlines()]
        assert any(r["event"] == "output failed; stopping" for r in logs)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await cam.close()


@contextlib.contextmanager
def full_disk(path: Path) -> Iterator[str]:
    """A directory on a filesystem with no space left: a 64 KiB tmpfs, filled (root).
    Without the right to mount, the process's file size limit makes writes fail instead."""
    path.mkdir()
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if mounted:
        with contextlib.suppress(OSError), (path / "filler").open("wb") as fh:
            while True:
                fh.write(b"\0" * 4096)
                fh.flush()
        try:
            yield "No space left on device"
        finally:
            subprocess.run(["umount", str(path)], check=False)
        return
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, old[1]))  # SIGXFSZ is ignored by Python
    try:
        yield os.strerror(errno.EFBIG)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)


async def test_full_disk_for_the_snapshot_directory(tmp_path: Path) -> None:
    if sys.platform != "linux":
        pytest.skip("Linux only")
    async with witness() as w:
        config = make_config(
            tmp_path, output={"snapshot_dir": str(tmp_path / "full")}, cameras=[w.config()]
        )
        with full_disk(tmp_path / "full") as reason:
            async with Daemon(config, stdout=io.BytesIO()) as d:
                events = Events(d)
                await w.served(events)  # the event is emitted...
                (event,) = events.all
        # ... with every picture marked missing, and why.
        assert event.images and all(i.path is None for i in event.images)
        assert all(i.missing == f"save failed: {reason}" for i in event.images)
        assert all(i.sha256 and i.bytes for i in event.images)  # what was lost is still known


def test_a_failed_spool_write_takes_itself_back(tmp_path: Path) -> None:
    """The MQTT spool on a disk that fills: the record that did not fit is refused whole
    (OSError, counted by the sink), none before it is damaged, and once there is room
    again the spool goes on as if nothing happened."""
    from lprmeta.sinks.spool import Spool

    def record(n: int) -> bytes:
        return b'{"n":%d,"pad":"%s"}\n' % (n, b"x" * 300)

    path = tmp_path / "mqtt.spool"
    spool = Spool(path, limit=10_000)
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4000, old[1]))  # the disk is "full" at 4000
    n = 0
    try:
        with pytest.raises(OSError, match="too large"):  # noqa: PT012  # until "full"
            while True:
                spool.append(record(n))
                n += 1
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
    assert 0 < n < 4000 // len(record(0)) + 1
    # Nothing half-written left behind:
    assert path.stat().st_size == sum(len(record(i)) for i in range(n))
    assert spool.waiting == n
    assert spool.append(record(n))  # room again
    got = []
    while (r := spool.peek()) is not None:
        got.append(r)
        spool.ack()
    spool.close()
    assert got == [record(i) for i in range(n + 1)]
