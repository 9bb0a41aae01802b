"""Fault matrix, shutdown row: SIGTERM while events and picture fetches are in flight.

Every event already accepted is written before exit, within 5 s: HTTP pushes
that were answered 200, and RTSP notifications whose pictures were still being
fetched (those go out with the picture marked missing, and why)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import aiohttp

from lprmeta.simulator.rtsp import RtspCameraServer
from lprmeta.simulator.script import ReadFactory
from lprmeta.simulator.web import CameraWebServer

from ..conftest import check_line, free_port, lprmeta


async def test_sigterm_with_events_and_picture_fetches_in_flight(tmp_path: Path) -> None:
    rtsp, web = RtspCameraServer(), CameraWebServer()
    await rtsp.start()
    await web.start()
    http_port = free_port()
    config = tmp_path / "lprmeta.toml"
    config.write_text(
        f"""
[bus]
dedup_window = 0
[http]
listen = "127.0.0.1:{http_port}"
[[cameras]]
name = "lane"
host = "127.0.0.1"
http_port = {web.port}
password = "sim-password"
  [cameras.rtsp]
  url = "{rtsp.url}"
  picture_deadline = 60
[[cameras]]
name = "pusher"
host = "127.0.0.9"
"""
    )
    proc = await lprmeta("run", "--config", str(config), "--log-format", "json", cwd=tmp_path)
    try:
        await rtsp.wait_playing(timeout=20)
        web.stall()  # every picture fetch hangs from now on
        factory = ReadFactory(seed=3)
        held = [factory.next(plate=f"HELD{i}") for i in range(3)]
        for read in held:
            await rtsp.send_document(read.onvif_document(web.publish(read.plate_jpeg)))
        await asyncio.sleep(0.5)  # parsed; the events now wait for their pictures

        async def post(session: aiohttp.ClientSession, i: int) -> str | None:
            url = f"http://127.0.0.1:{http_port}/lpr/pusher"
            async with session.post(url, json={"plate": f"PUSH{i:02d}"}) as resp:
                return f"PUSH{i:02d}" if resp.status == 200 else None

        async with aiohttp.ClientSession() as session:
            accepted = [
                p for p in await asyncio.gather(*(post(session, i) for i in range(20))) if p
            ]
        proc.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        out, err = await asyncio.wait_for(proc.communicate(), 10)
        took = time.monotonic() - stopping
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        web.release()
        await rtsp.close()
        await web.close()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert took < 5, f"took {took:.1f} s to stop"
    lines = [check_line(x) for x in out.splitlines()]
    plates = {x["plate"] for x in lines}
    assert set(accepted) <= plates and len(accepted) == 20  # every answered push written
    for read in held:
        (line,) = [x for x in lines if x["plate"] == read.plate]
        (image,) = line["images"]
        assert image["path"] is None and image["missing"] == "daemon stopped before it was fetched"
    stderr = [json.loads(x) for x in err.splitlines()]
    assert any(r["event"] == "lprmeta stopped" for r in stderr)
