"""Plate lists through the API as the web page and scripts edit them: the file is
rewritten atomically with its other lines kept, the change is in force at once,
CSRF, camera-limited lists, expiry, and every bad request a 4xx with its reason."""

from __future__ import annotations

import base64
import contextlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from lprmeta.daemon import Daemon
from lprmeta.simulator.http import HttpPusher
from lprmeta.simulator.script import ReadFactory
from lprmeta.web import CSP

from ..conftest import free_port, make_config
from ..store.test_api import check

TOKEN = "list-token-for-tests"
LIST_FILE = """# regulars, kept by hand
plate,label,expires
AB1234,Jan (owner)
XY-98-76,delivery,2020-01-01
"""


@dataclass
class Site:
    daemon: Daemon
    api: str
    pushers: dict[str, HttpPusher]
    session: aiohttp.ClientSession
    out: io.BytesIO
    file: Path
    factory: ReadFactory

    async def call(
        self, method: str, target: str, **kw: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        async with self.session.request(method, self.api + target, **kw) as resp:
            body = await resp.read()
            kind = resp.headers.get("Content-Type", "")
            return resp.status, json.loads(body) if "json" in kind else body, resp

    async def csrf(self) -> dict[str, str]:
        status, body, _ = await self.call("GET", "/api/session")
        assert status == 200
        return {"X-CSRF-Token": body["csrf_token"]}

    async def read(self, camera: str, plate: str) -> dict[str, Any]:
        status, reply = await self.pushers[camera].push_read(self.factory.next(plate=plate))
        assert status == 200, reply
        status, event, _ = await self.call("GET", f"/api/events/{reply['id']}")  # committed
        assert status == 200, event
        return dict(event)


@contextlib.asynccontextmanager
async def site(tmp_path: Path, **api: Any) -> AsyncIterator[Site]:
    http_port, api_port = free_port(), free_port()
    file = tmp_path / "regulars.csv"
    file.write_text(LIST_FILE)
    config = make_config(
        tmp_path,
        http={"listen": f"127.0.0.1:{http_port}"},
        cameras=[
            {"name": "gate", "host": "127.0.0.1", "http": {"path": "/lpr/gate"}},
            {"name": "exit", "host": "127.0.0.1", "http": {"path": "/lpr/exit"}},
        ],
        store={"data_dir": str(tmp_path / "data")},
        api={"listen": f"127.0.0.1:{api_port}", **api},
        bus={"dedup_window": 0},  # the same plate read again at once is a new read here
        lists=[
            {"name": "regulars", "file": str(file), "plates": ["CONF1"]},
            {"name": "gate-only", "plates": ["GG1111"], "cameras": ["gate"]},
        ],
    )
    out = io.BytesIO()
    async with (
        Daemon(config, stdout=out) as daemon,
        HttpPusher(f"http://127.0.0.1:{http_port}/lpr/gate") as gate,
        HttpPusher(f"http://127.0.0.1:{http_port}/lpr/exit") as exit_,
        aiohttp.ClientSession() as session,
    ):
        pushers = {"gate": gate, "exit": exit_}
        api_url = f"http://127.0.0.1:{api_port}"
        yield Site(daemon, api_url, pushers, session, out, file, ReadFactory(seed=5))


def matches(event: dict[str, Any]) -> dict[str, Any]:
    return {m["list"]: m for m in event.get("matches", [])}


async def test_add_and_remove_rewrite_the_file_and_take_effect_at_once(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        status, body, _ = await s.call("GET", "/api/lists")
        assert status == 200
        regulars = {x["name"]: x for x in body["lists"]}["regulars"]
        assert regulars["editable"] is True
        assert regulars["cameras"] == []
        entries = {e["plate"]: e for e in regulars["entries"]}
        assert entries["CONF1"]["source"] == "config"
        assert entries["AB1234"] == {
            "plate": "AB1234",
            "label": "Jan (owner)",
            "expires": None,
            "source": "file",
            "expired": False,
        }
        assert entries["XY-98-76"]["expired"] is True  # 2020-01-01 is past
        # An expired entry does not match.
        assert "regulars" not in matches(await s.read("gate", "XY9876"))

        assert "regulars" not in matches(await s.read("gate", "NEW001"))
        status, body, _ = await s.call(
            "POST",
            "/api/lists/regulars/plates",
            json={"plate": "NEW001", "label": 'visitor, "VIP"', "expires": "2099-12-31"},
            headers=await s.csrf(),
        )
        assert status == 200, body
        # In force when the call returns: the next read of that plate is on the list.
        match = matches(await s.read("gate", "NEW001"))["regulars"]
        assert match["label"] == 'visitor, "VIP"'
        text = s.file.read_text()
        # The comment and every other line as they were; the new line quoted as CSV.
        assert text.startswith(LIST_FILE)
        assert text.endswith('NEW001,"visitor, ""VIP""",2099-12-31\n')
        assert not list(tmp_path.glob(".regulars.csv.*"))  # no temporary file left

        # The same plate again replaces its line (a new label), it is not added twice.
        status, _, _ = await s.call(
            "POST",
            "/api/lists/regulars/plates",
            json={"plate": "new 001", "label": "renamed"},
            headers=await s.csrf(),
        )
        assert status == 200
        assert s.file.read_text().count("001") == 1
        assert matches(await s.read("exit", "NEW001"))["regulars"]["label"] == "renamed"

        status, body, _ = await s.call(
            "DELETE",
            "/api/lists/regulars/plates",
            params={"plate": "AB1234"},
            headers=await s.csrf(),
        )
        assert status == 200, body
        assert "AB1234" not in s.file.read_text()
        assert "# regulars, kept by hand" in s.file.read_text()
        assert "regulars" not in matches(await s.read("gate", "AB1234"))
        # Removing it again: 404 with the reason.
        status, body, _ = await s.call(
            "DELETE",
            "/api/lists/regulars/plates",
            params={"plate": "AB1234"},
            headers=await s.csrf(),
        )
        assert (status, body["error"]) == (404, "no such plate in the list file")


async def test_a_list_limited_to_cameras(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        assert "gate-only" in matches(await s.read("gate", "GG1111"))
        assert "gate-only" not in matches(await s.read("exit", "GG1111"))
        _, body, _ = await s.call("GET", "/api/lists")
        check(body, "/api/lists", 200)
        lists = {x["name"]: x for x in body["lists"]}
        assert lists["gate-only"]["cameras"] == ["gate"]
        assert lists["gate-only"]["editable"] is False
        for target in ("/api/session", "/api/health", "/api/cameras"):
            status, body, _ = await s.call("GET", target)
            check(body, target, 200)
        cameras = {c["name"]: c for c in body["cameras"]}
        assert cameras["gate"]["today"] == {"reads": 1, "pictures_missing": 0}
        assert cameras["exit"]["today"] == {"reads": 1, "pictures_missing": 0}
        # A read whose picture is not a picture: the read is stored, the picture counted
        # missing today (the counts are reused for 5 s: a page polls them).
        body = s.factory.next(plate="PM0001").http_body(era="new")
        body["full_image"] = "@@@ not base64"
        status, reply = await s.pushers["exit"].post(body)
        assert status == 200, reply
        s.daemon._api._today = None  # the 5 s reuse, skipped here
        _, body, _ = await s.call("GET", "/api/cameras")
        cameras = {c["name"]: c for c in body["cameras"]}
        assert cameras["exit"]["today"] == {"reads": 2, "pictures_missing": 1}


async def test_edits_need_the_csrf_token_unless_a_bearer_token_is_given(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        add = {"plate": "CS0001"}
        status, body, resp = await s.call("POST", "/api/lists/regulars/plates", json=add)
        assert status == 403
        assert "CSRF" in body["error"]
        assert resp.headers["Content-Security-Policy"] == CSP
        status, _, _ = await s.call(
            "POST", "/api/lists/regulars/plates", json=add, headers={"X-CSRF-Token": "guess"}
        )
        assert status == 403
        assert "CS0001" not in s.file.read_text()
    async with site(tmp_path, token=TOKEN) as s:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        status, _, _ = await s.call("GET", "/api/session")
        assert status == 401
        status, body, _ = await s.call(
            "POST", "/api/lists/regulars/plates", json=add, headers=bearer
        )
        assert status == 200, body
        assert "CS0001" in s.file.read_text()


async def test_bad_edits_are_4xx_with_a_reason_and_change_nothing(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        before = s.file.read_text()
        h = await s.csrf()
        cases: list[tuple[str, str, dict[str, Any], int, str]] = [
            ("POST", "/api/lists/nope/plates", {"json": {"plate": "A1"}}, 404, "no list named"),
            ("POST", "/api/lists/gate-only/plates", {"json": {"plate": "A1"}}, 409, "no file"),
            ("POST", "/api/lists/regulars/plates", {"json": {"plate": "--"}}, 400, "no letters"),
            ("POST", "/api/lists/regulars/plates", {"json": {"label": "x"}}, 400, "required"),
            ("POST", "/api/lists/regulars/plates", {"json": {"plate": "A" * 40}}, 400, "longer"),
            ("POST", "/api/lists/regulars/plates", {"json": {"plate": "A1\nB2"}}, 400, "control"),
            (
                "POST",
                "/api/lists/regulars/plates",
                {"json": {"plate": "A1", "expires": "next week"}},
                400,
                "YYYY-MM-DD",
            ),
            ("POST", "/api/lists/regulars/plates", {"data": "plate=A1"}, 415, "JSON"),
            (
                "POST",
                "/api/lists/regulars/plates",
                {"data": b"{" + b" " * 5000, "headers": {"Content-Type": "application/json"}},
                413,
                "body over",
            ),
            (
                "POST",
                "/api/lists/regulars/plates",
                {"data": b"[1]", "headers": {"Content-Type": "application/json"}},
                400,
                "object",
            ),
            ("DELETE", "/api/lists/regulars/plates", {}, 400, "plate is required"),
            ("DELETE", "/api/lists/regulars/plates", {"params": {"plate": "CONF1"}}, 409, "config"),
        ]
        for method, target, kw, status, reason in cases:
            headers = {**h, **kw.pop("headers", {})}
            got, body, _ = await s.call(method, target, headers=headers, **kw)
            assert (got, reason in body["error"]) == (status, True), (target, kw, body)
        assert s.file.read_text() == before


async def test_a_list_file_broken_by_hand_keeps_the_list_and_says_so(tmp_path: Path) -> None:
    async with site(tmp_path) as s:
        s.file.write_text("plate,label,expires\nAB1234,x,someday\n")
        assert await s.daemon._lists.reload_changed() == []
        assert "regulars" in matches(await s.read("gate", "AB1234"))  # the last good list


async def test_pages_and_their_files_need_the_credentials_and_carry_the_csp(
    tmp_path: Path,
) -> None:
    async with site(tmp_path, username="gate", password="pw-for-tests") as s:
        for target in ("/", "/search", "/events/x1", "/cameras", "/lists", "/static/app.js"):
            status, _, resp = await s.call("GET", target)
            assert status == 401, target
            assert resp.headers["WWW-Authenticate"].startswith("Basic")
        basic = {"Authorization": "Basic " + base64.b64encode(b"gate:pw-for-tests").decode()}
        status, html, resp = await s.call("GET", "/cameras", headers=basic)
        assert status == 200
        assert resp.headers["Content-Security-Policy"] == CSP
        assert "script-src 'self'" in CSP
        assert "unsafe-inline" not in CSP
        assert b'<body data-page="cameras">' in html
        assert b"<script>" not in html  # no inline script: only the file
        assert b'<script src="/static/app.js" defer></script>' in html
        status, js, resp = await s.call("GET", "/static/app.js", headers=basic)
        assert status == 200
        assert resp.headers["Content-Type"].startswith("text/javascript")
        assert b"innerHTML" not in js.replace(b"never innerHTML", b"")
        etag = resp.headers["ETag"]
        status, _, _ = await s.call(
            "GET", "/static/app.js", headers={**basic, "If-None-Match": etag}
        )
        assert status == 304
        status, _, resp = await s.call("GET", "/static/..%2Fapi.py", headers=basic)
        assert status == 404
        assert resp.headers["Content-Security-Policy"] == CSP  # errors carry it too
