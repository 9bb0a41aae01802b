"""The query API on a running daemon: every answer checked against the shipped OpenAPI
document, credentials, bad parameters, pictures with caching, CSV, the live stream."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema

from lprmeta.api import openapi_document
from lprmeta.daemon import Daemon
from lprmeta.simulator.http import HttpPusher
from lprmeta.simulator.script import ReadFactory
from lprmeta.store import queries

from ..conftest import free_port, make_config

TOKEN = "api-token-for-tests"
DOC = openapi_document()


def check(instance: Any, path: str, status: int, media: str = "application/json") -> None:
    """``instance`` is what the document says ``GET path`` answers with ``status``."""
    response = DOC["paths"][path]["get"]["responses"][str(status)]
    if "$ref" in response:
        response = DOC["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response["content"][media]["schema"]
    validator = jsonschema.Draft202012Validator({**schema, "components": DOC["components"]})
    validator.validate(instance)


@dataclass
class Site:
    daemon: Daemon
    api: str
    push: HttpPusher
    session: aiohttp.ClientSession
    auth: dict[str, str]

    async def get(self, target: str, **kw: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = {**self.auth, **kw.pop("headers", {})}
        async with self.session.get(self.api + target, headers=headers, **kw) as resp:
            body = await resp.read()
            kind = resp.headers.get("Content-Type", "")
            return resp.status, json.loads(body) if "json" in kind else body, resp


@contextlib.asynccontextmanager
async def site(tmp_path: Path, **api: Any) -> AsyncIterator[Site]:
    http_port, api_port = free_port(), free_port()
    config = make_config(
        tmp_path,
        http={"listen": f"127.0.0.1:{http_port}"},
        cameras=[{"name": "gate", "host": "127.0.0.1", "http": {"path": "/lpr/gate"}}],
        store={"data_dir": str(tmp_path / "data")},
        api={"listen": f"127.0.0.1:{api_port}", **api},
    )
    async with (
        Daemon(config, stdout=io.BytesIO()) as daemon,
        HttpPusher(f"http://127.0.0.1:{http_port}/lpr/gate") as push,
        aiohttp.ClientSession() as session,
    ):
        auth = {"Authorization": f"Bearer {TOKEN}"} if api.get("token") else {}
        yield Site(daemon, f"http://127.0.0.1:{api_port}", push, session, auth)


async def pushed(s: Site, plates: list[str]) -> list[str]:
    factory = ReadFactory(seed=3, picture_bytes=4000)
    ids = []
    for plate in plates:
        status, reply = await s.push.push_read(factory.next(plate=plate))
        assert status == 200, reply
        ids.append(reply["id"])
    return ids


async def test_search_event_picture_csv_cameras_match_the_document(tmp_path: Path) -> None:
    async with site(tmp_path, token=TOKEN) as s:
        ids = await pushed(s, ["AB1234", "XY9876", "AB1284"])
        # Each push was answered once its event was committed: it is searchable now.
        status, page, _ = await s.get("/api/events", params={"plate": "A8I234", "tolerance": "1"})
        assert status == 200
        check(page, "/api/events", 200)
        assert [e["id"] for e in page["events"]] == [ids[2], ids[0]]  # newest first

        status, page, _ = await s.get("/api/events", params={"limit": "2"})
        assert len(page["events"]) == 2
        assert page["next_cursor"]
        status, rest, _ = await s.get("/api/events", params={"cursor": page["next_cursor"]})
        assert [e["id"] for e in page["events"] + rest["events"]] == ids[::-1]
        assert rest["next_cursor"] is None

        status, event, _ = await s.get(f"/api/events/{ids[1]}")
        assert status == 200
        check(event, "/api/events/{id}", 200)
        assert event["plate"] == "XY9876"

        role = event["images"][0]["role"]
        status, body, resp = await s.get(f"/api/events/{ids[1]}/pictures/{role}")
        assert status == 200
        assert body[:3] == b"\xff\xd8\xff"
        assert resp.headers["Content-Type"] == "image/jpeg"
        assert "immutable" in resp.headers["Cache-Control"]
        etag = resp.headers["ETag"]
        assert etag.strip('"') == event["images"][0]["sha256"]
        status, _, _ = await s.get(
            f"/api/events/{ids[1]}/pictures/{role}", headers={"If-None-Match": etag}
        )
        assert status == 304

        status, body, resp = await s.get("/api/events.csv", params={"plate": "AB*"})
        assert status == 200
        assert resp.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(body.decode())))
        assert [r["plate"] for r in rows] == ["AB1284", "AB1234"]

        status, cams, _ = await s.get("/api/cameras")
        check(cams, "/api/cameras", 200)
        assert cams["cameras"][0]["name"] == "gate"
        assert cams["cameras"][0]["last_stored"]["id"] == ids[2]

        # Retention removed the picture: the event says so, the picture answers 410.
        engine = s.daemon.history.engine
        with engine.begin() as conn:
            queries.mark_pictures_removed(conn, [(ids[1], 0)], "removed by retention: test")
        status, body, _ = await s.get(f"/api/events/{ids[1]}/pictures/{role}")
        assert status == 410
        check(body, "/api/events/{id}/pictures/{role}", 410)
        assert "removed by retention" in body["error"]
        status, event, _ = await s.get(f"/api/events/{ids[1]}")
        assert event["images"][0]["missing"] == "removed by retention: test"
        check(event, "/api/events/{id}", 200)

        status, doc, _ = await s.get("/api/openapi.json")
        assert status == 200
        assert doc == DOC


async def test_credentials_and_bad_requests_get_clear_answers(tmp_path: Path) -> None:
    async with site(tmp_path, token=TOKEN, username="ops", password="pw-for-tests") as s:
        await pushed(s, ["AB1234"])
        for target in ("/api/events", "/api/stream", "/api/cameras", "/api/openapi.json"):
            status, body, resp = await s.get(target, headers={"Authorization": ""})
            assert status == 401, target
            assert "Basic" in resp.headers["WWW-Authenticate"]
            check(body, "/api/events", 401)
        status, _, _ = await s.get("/api/events", headers={"Authorization": "Bearer wrong"})
        assert status == 401
        basic = aiohttp.encode_basic_auth("ops", "pw-for-tests")
        status, _, _ = await s.get("/api/events", headers={"Authorization": basic})
        assert status == 200

        for params, parameter in (
            ({"limit": "0"}, "limit"),
            ({"since": "last tuesday"}, "since"),
            ({"tolerance": "5"}, "tolerance"),
            ({"cursor": "x"}, "cursor"),
            ({"plate": "' OR 1=1 --", "kind": "plate'--"}, "kind"),
            ({"sort": "plate"}, "sort"),
            ({"limit": "²"}, "limit"),
            ({"since": "999999w"}, "since"),
        ):
            status, body, _ = await s.get("/api/events", params=params)
            assert status == 400, params
            check(body, "/api/events", 400)
            assert body["parameter"] == parameter
        status, body, _ = await s.get("/api/events", params={"plate": "' OR '1'='1"})
        assert status == 200
        assert body["events"] == []
        status, body, _ = await s.get("/api/events/nope")
        assert status == 404
        check(body, "/api/events/{id}", 404)
        status, body, _ = await s.get("/api/events/" + "x" * 100)
        assert status == 400


async def test_the_stream_sends_each_event_as_it_is_stored(tmp_path: Path) -> None:
    async with site(tmp_path) as s, s.session.get(s.api + "/api/stream") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        await resp.content.readuntil(b"\n\n")  # the opening comment
        ids = await pushed(s, ["ST4EAM1", "ST4EAM2"])
        got = []
        async with asyncio.timeout(10):
            while len(got) < 2:
                block = (await resp.content.readuntil(b"\n\n")).decode()
                fields = dict(
                    line.split(": ", 1) for line in block.strip().splitlines() if ": " in line
                )
                if fields.get("event") == "event":
                    data = json.loads(fields["data"])
                    assert data["id"] == fields["id"]
                    got.append(data["id"])
        assert got == ids


async def test_an_open_api_needs_no_credentials(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        status, body, _ = await s.get("/api/events")
        assert status == 200
        assert body == {"events": [], "next_cursor": None}


def test_csv_cells_a_spreadsheet_would_run_are_text() -> None:
    from lprmeta.api import _csv_rows

    event = {"id": "e1", "plate": '=HYPERLINK("http://x")', "camera": "+cmd", "images": []}
    rows = list(csv.reader(io.StringIO(_csv_rows([event], header=True).decode())))
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["plate"] == '\'=HYPERLINK("http://x")'
    assert row["camera"] == "'+cmd"
    assert row["id"] == "e1"
