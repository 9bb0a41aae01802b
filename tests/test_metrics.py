"""/metrics (parsed with prometheus_client's own parser) and /healthz, on a real daemon."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from lprmeta.daemon import Daemon
from lprmeta.simulator import ReadFactory, TcpCameraServer

from .conftest import free_port, make_config


async def test_metrics_and_health(tmp_path: Path) -> None:
    sim = TcpCameraServer()
    await sim.start()
    port, http_port = free_port(), free_port()
    config = make_config(
        tmp_path,
        metrics={"listen": f"127.0.0.1:{port}"},
        http={"listen": f"127.0.0.1:{http_port}"},
        cameras=[
            {
                "name": "gate",
                "host": "127.0.0.1",
                "password": "sim-password",
                "tcp": {"port": sim.port},
            },
            {
                "name": "lane",
                "host": "127.0.0.1",
                "http_port": free_port(),
                "rtsp": {"url": f"rtsp://127.0.0.1:{free_port()}/x", "backoff_initial": 5},
            },
            {"name": "pusher", "host": "127.0.0.9", "http": {}},
        ],
    )
    async with Daemon(config, stdout=io.BytesIO()), aiohttp.ClientSession() as s:
        await sim.wait_for_clients()
        await sim.send_read(ReadFactory(seed=1).next(plate="MET1"))
        push = f"http://127.0.0.1:{http_port}/lpr/pusher"
        async with s.post(push, json={"plate": "MET2"}) as resp:
            assert resp.status == 200
        await asyncio.sleep(0.5)
        async with s.get(f"http://127.0.0.1:{port}/metrics") as resp:
            assert resp.status == 200 and resp.content_type == "text/plain"
            text = await resp.text()
        async with s.get(f"http://127.0.0.1:{port}/healthz") as resp:
            health = await resp.json()
            assert resp.status == 200
    await sim.close()

    families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(family: str, **labels: str) -> float:
        for sample in families[family].samples:
            if all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
        raise KeyError((family, labels))

    assert value("lprmeta_up") == 1
    assert value("lprmeta_camera_connected", camera="gate", transport="tcp") == 1
    assert value("lprmeta_camera_connected", camera="lane", transport="rtsp") == 0
    assert value("lprmeta_camera_available", camera="gate") == 1
    assert value("lprmeta_camera_available", camera="lane") == 0
    assert value("lprmeta_events", camera="gate") == 1  # a counter family drops "_total"
    assert value("lprmeta_events", camera="pusher") == 1
    assert value("lprmeta_pictures_saved", camera="gate") == 2
    assert value("lprmeta_camera_last_event_timestamp_seconds", camera="gate") > 1.7e9
    assert value("lprmeta_counter", camera="gate", name="packets") == 1

    assert health["status"] == "degraded" and health["unavailable"] == ["lane"]
    assert health["cameras"]["gate"]["transports"]["tcp"]["state"] == "up"
    assert health["cameras"]["lane"]["transports"]["rtsp"]["state"] in ("connecting", "down")
    assert health["cameras"]["pusher"]["transports"]["http"]["state"] == "up"
    assert health["cameras"]["gate"]["events"] == 1 and health["cameras"]["gate"]["last_event"]
