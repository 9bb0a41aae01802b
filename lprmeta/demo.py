"""``lprmeta demo``: the whole thing on one machine, with no camera and no configuration.

Four simulated cameras start on 127.0.0.1, one per transport of the guide and one
that is not a Milesight:

* ``gate-tcp``: lprmeta connects to its LPR TCP port, logs in and registers;
* ``gate-http``: it pushes its reads to lprmeta's HTTP receiver;
* ``lane-rtsp``: lprmeta reads its ONVIF metadata track and fetches each picture;
* ``lane-onvif``: any ONVIF Profile M camera: its metadata track describes the scene
  (objects with their plates, frame after frame), and lprmeta makes one read per car.

The daemon runs against them in this process and prints JSON lines on stdout
as cars pass (pictures saved under ``--snapshot-dir``), with a parking and a
counting event now and then, until Ctrl-C or ``--duration``. Every event is
also stored (SQLite in ``--data-dir``): the query API answers on a free port
while the demo runs, and ``lprmeta events --db sqlite:///<data-dir>/events.db``
searches them afterwards. Everything it says about itself goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Config, parse_config
from .daemon import Daemon
from .log import get_logger
from .simulator.camera import SimulatedCamera
from .simulator.script import ReadFactory

__all__ = ["add_demo_parser", "cmd_demo", "demo_config", "run_demo"]

PASSWORD = "demo-password"  # the simulated cameras' account, loopback only  # noqa: S105


def add_demo_parser(sub: Any, add_logging: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser(
        "demo",
        help="run simulated cameras on all three transports and the daemon against them",
    )
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between cars")
    p.add_argument(
        "--snapshot-dir",
        type=Path,
        default=Path("lprmeta-demo-snapshots"),
        help="where pictures are saved (default ./lprmeta-demo-snapshots)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path("lprmeta-demo-data"),
        help="where the event store is kept (default ./lprmeta-demo-data)",
    )
    add_logging(p)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_config(
    *,
    snapshot_dir: Path,
    http_port: int,
    tcp: SimulatedCamera,
    rtsp: SimulatedCamera,
    onvif: SimulatedCamera | None = None,
    data_dir: Path | None = None,
    api_port: int | None = None,
) -> Config:
    assert tcp.tcp is not None
    assert rtsp.rtsp is not None
    assert rtsp.web is not None
    more: list[dict[str, Any]] = []
    if onvif is not None:
        assert onvif.rtsp is not None
        assert onvif.web is not None
        more.append(
            {
                "name": "lane-onvif",
                "host": "127.0.0.1",
                "http_port": onvif.web.port,
                "password": PASSWORD,
                "rtsp": {"url": onvif.rtsp.url, "backoff_initial": 0.2},
            }
        )
    stored: dict[str, Any] = {"store": {"enabled": False}}
    if data_dir is not None:
        stored = {"store": {"data_dir": str(data_dir)}}
        if api_port is not None:
            stored["api"] = {"listen": f"127.0.0.1:{api_port}"}
        # A plate list the web page can edit (its file is made by demo_list_file).
        stored["lists"] = [{"name": "watch", "file": str(data_dir / "watch.csv"), "tolerance": 1}]
    return parse_config(
        {
            **stored,
            "output": {"snapshot_dir": str(snapshot_dir)},
            "http": {"listen": f"127.0.0.1:{http_port}"},
            "cameras": [
                {
                    "name": "gate-tcp",
                    "host": "127.0.0.1",
                    "password": PASSWORD,
                    "tcp": {"port": tcp.tcp.port, "backoff_initial": 0.2},
                },
                {"name": "gate-http", "host": "127.0.0.1", "http": {"path": "/lpr/gate-http"}},
                {
                    "name": "lane-rtsp",
                    "host": "127.0.0.1",
                    "http_port": rtsp.web.port,
                    "password": PASSWORD,
                    "rtsp": {"url": rtsp.rtsp.url, "backoff_initial": 0.2},
                },
                *more,
            ],
        }
    )


def demo_list_file(data_dir: Path) -> None:
    """The demo's plate list, unless a run before left one (edits in the page stay):
    two of the simulated cars are on it, so the page shows matches."""
    path = data_dir / "watch.csv"
    if path.exists():
        return
    factory = ReadFactory(seed=7, picture_bytes=0)
    first, second = factory.next().plate, factory.next().plate
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(f"plate,label,expires\n{first},demo visitor\n{second},supplier\n")


async def run_demo(
    *,
    snapshot_dir: Path,
    data_dir: Path | None = None,
    duration: float = 0,
    interval: float = 1.0,
    stop: asyncio.Event | None = None,
) -> int:
    log = get_logger("lprmeta.demo")
    stop = stop or asyncio.Event()
    http_port = _free_port()
    tcp = SimulatedCamera(tcp_port=0, password=PASSWORD)
    rtsp = SimulatedCamera(rtsp_port=0, password=PASSWORD)
    onvif = SimulatedCamera(rtsp_port=0, password=PASSWORD, onvif_flavour="profile-m-frames")
    http = SimulatedCamera(http_target=f"http://127.0.0.1:{http_port}/lpr/gate-http")
    async with tcp, rtsp, onvif:
        api_port = _free_port() if data_dir is not None else None
        if data_dir is not None:
            await asyncio.to_thread(demo_list_file, data_dir)
        config = demo_config(
            snapshot_dir=snapshot_dir,
            http_port=http_port,
            tcp=tcp,
            rtsp=rtsp,
            onvif=onvif,
            data_dir=data_dir,
            api_port=api_port,
        )
        async with Daemon(config) as daemon, http:
            assert tcp.tcp is not None
            assert rtsp.rtsp is not None
            log.info(
                "demo running: four simulated cameras on 127.0.0.1; events follow on stdout",
                pictures=str(snapshot_dir),
                web_page=f"http://127.0.0.1:{api_port}/" if api_port else None,
                api=f"http://127.0.0.1:{api_port}/api/events" if api_port else None,
                stop="Ctrl-C" if not duration else f"after {duration:g} s",
            )
            await tcp.tcp.wait_for_clients(1, timeout=30)
            await rtsp.rtsp.wait_playing(1, timeout=30)
            assert onvif.rtsp is not None
            await onvif.rtsp.wait_playing(1, timeout=30)
            factory = ReadFactory(seed=7, picture_bytes=30_000)
            loop = asyncio.get_running_loop()
            end = loop.time() + duration if duration else None
            n = 0
            while not stop.is_set() and (end is None or loop.time() < end):
                camera = (tcp, http, rtsp, onvif)[n % 4]
                read = factory.next()
                n += 1
                await camera.send_read(read, era=("old", "new")[n % 2])
                if n % 4 == 0:  # the parking and counting features, over TCP and HTTP
                    await (tcp if n % 8 else http).send_posts(read, cars=n)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await stop.wait()
            await asyncio.sleep(min(1.0, interval))  # the last car's picture fetch
            counts = daemon.stats.snapshot()
    log.info(
        "demo stopped",
        cars=n,
        emitted=sum(c.get("emitted", 0) for c in counts.values()),
        pictures_saved=str(snapshot_dir),
        search=f"lprmeta events --db sqlite:///{data_dir / 'events.db'}" if data_dir else None,
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    snapshot_dir = args.snapshot_dir.resolve()

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        return await run_demo(
            snapshot_dir=snapshot_dir,
            data_dir=args.data_dir.resolve(),
            duration=args.duration,
            interval=args.interval,
            stop=stop,
        )

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        print("", file=sys.stderr)  # noqa: T201  # end the ^C line
        return 130
