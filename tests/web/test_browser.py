"""The web page in a real browser (headless Chromium), against ``lprmeta run`` with
simulated cameras: live reads with their pictures, search by a look-alike, the CSV,
a read's page, the cameras page while a camera goes down and comes back, the page
across a daemon restart, plate-list edits, and a plate that is an HTML attack.

Every test fails on any error in the browser's console. Screenshots of every page at
desktop and phone width go to ``$LPRMETA_SCREENSHOTS`` (default: the test's temporary
directory), to be looked at.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from lprmeta.simulator.camera import SimulatedCamera
from lprmeta.simulator.http import HttpPusher
from lprmeta.simulator.script import ReadFactory

from ..conftest import free_port
from .conftest import browser_on, lines, running

pytestmark = pytest.mark.slow
PASSWORD = "browser-test-password"  # the simulated camera's, loopback only
ATTACK = "<img src=x onerror=\"document.title='pwned'\">"


class Gate:
    """A config on disk, its ports, and what the tests push."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.http_port, self.api_port, self.tcp_port = free_port(), free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.api_port}"
        (root / "regulars.csv").write_text("plate,label,expires\nRG1234,caretaker\n")
        self.config = root / "lprmeta.toml"
        self.config.write_text(
            f"""
[output]
snapshot_dir = "snaps"
[http]
listen = "127.0.0.1:{self.http_port}"
[store]
data_dir = "data"
[api]
listen = "127.0.0.1:{self.api_port}"
[[lists]]
name = "regulars"
file = "regulars.csv"
tolerance = 1
[[cameras]]
name = "gate"
host = "127.0.0.1"
  [cameras.http]
  path = "/lpr/gate"
[[cameras]]
name = "barrier"
host = "127.0.0.1"
password = "{PASSWORD}"
  [cameras.tcp]
  port = {self.tcp_port}
  backoff_initial = 0.2
  backoff_max = 0.5
"""
        )
        self.factory = ReadFactory(seed=11, picture_bytes=24_000)

    def pusher(self) -> HttpPusher:
        return HttpPusher(f"http://127.0.0.1:{self.http_port}/lpr/gate")

    async def push(self, push: HttpPusher, plate: str, **extra: Any) -> str:
        body = self.factory.next(plate=plate).http_body(era="new")
        body.update(extra)
        status, reply = await push.post(body)
        assert status == 200, reply
        return str(reply["id"])

    def running(self) -> Any:
        return running(self.config, self.root, self.api_port)


def shots_dir(tmp_path: Path) -> Path:
    return Path(os.environ.get("LPRMETA_SCREENSHOTS") or tmp_path / "screenshots")


ROW = "return document.querySelector(`article.read[data-id='${arguments[0]}']`)"
PICTURES_SHOWN = """
const imgs = [...document.querySelectorAll(arguments[0])];
return imgs.length >= arguments[1] && imgs.every(i => i.complete && i.naturalWidth > 0);
"""


async def test_live_search_csv_and_a_read(tmp_path: Path, chromium: Any) -> None:
    gate = Gate(tmp_path)
    async with gate.running(), gate.pusher() as push:
        async with browser_on(chromium, gate.base, shots_dir(tmp_path)) as b:
            await b.open("/")
            await b.wait("return document.getElementById('status').dataset.state === 'up'")
            # A read appears live, with its two pictures shown (decoded: width > 0).
            sent = time.time()
            event_id = await gate.push(push, "BO1234")
            await b.wait(ROW, event_id, what="the read on the live page")
            shown = await b.js(ROW + ".dataset.shown", event_id)
            assert float(shown) / 1000 - sent < 5  # generous here; bench/web_bench.py times it
            row = f"article.read[data-id='{event_id}']"
            await b.wait(PICTURES_SHOWN, f"{row} img", 2, what="both pictures loaded")
            text = await b.js(ROW + ".innerText", event_id)
            assert "BO1234" in text
            assert "gate" in text
            # A plate on a list (one look-alike and one edit away) gets its badge.
            listed = await gate.push(push, "RG1Z35")
            await b.wait(ROW, listed)
            assert "regulars: caretaker" in await b.js(ROW + ".innerText", listed)
            await b.screenshot("live")

            # Search by a look-alike (O read as 0), typed into the form as a user does.
            await b.open("/search")
            await b.wait("return document.querySelector('form.search input[name=plate]')")
            await b.js(
                "const f = document.querySelector('form.search');"
                "f.plate.value = arguments[0]; f.requestSubmit();",
                "B01234",
            )
            await b.wait(ROW, event_id, what="the read found by its look-alike")
            url = await b.js("return location.href")
            assert "plate=B01234" in url  # the address reproduces the search
            assert not await b.js(ROW, listed)
            await b.screenshot("search")

            # The CSV of the same search has the row (fetched as the link would).
            href = await b.js("return document.getElementById('csv').href")
            async with aiohttp.ClientSession() as session, session.get(href) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/csv")
                csv_text = await resp.text()
            assert event_id in csv_text
            assert listed not in csv_text

            # The read's own page: every field, its pictures full size, the raw fields.
            await b.js(f'document.querySelector("{row} a.plate-link").click()')
            await b.wait("return location.pathname.startsWith('/events/')")
            await b.wait(PICTURES_SHOWN, "img.full", 2, what="the read's pictures full size")
            page = await b.wait("return document.querySelector('main').innerText")
            assert "BO1234" in page
            assert "Raw fields" in page
            await b.wait("return document.querySelector('#same-plate p, #same-plate article')")
            await b.screenshot("read")
        assert b.errors() == []
    assert {e["id"] for e in lines(tmp_path)} >= {event_id, listed}


UNFETCHED_BELOW = """
const rows = [...document.querySelectorAll('article.read')];
const below = rows.filter(r => r.getBoundingClientRect().top >= window.innerHeight);
const unfetched = below.filter(r => [...r.querySelectorAll('img')].every(i => !i.src));
return [rows.length, below.length, unfetched.length];
"""


async def test_live_rows_get_their_pictures_once_in_sight_not_while_passing_by(
    tmp_path: Path, chromium: Any
) -> None:
    """At a busy site a live row is in sight for a moment: its pictures are fetched only
    once it has been in sight for a while (the page's LOOK_MS), so a burst of reads does
    not make the browser fetch and decode every picture (bench/web_bench.py: 111% of a
    core). A row scrolled to later gets them then."""
    gate = Gate(tmp_path)
    async with gate.running(), gate.pusher() as push:
        async with browser_on(chromium, gate.base, shots_dir(tmp_path)) as b:
            await b.open("/")
            await b.wait("return document.getElementById('status').dataset.state === 'up'")
            ids = await asyncio.gather(*(gate.push(push, f"BU{i:04d}") for i in range(40)))
            for event_id in ids:
                await b.wait(ROW, event_id, what="every read of the burst on the page")
            await asyncio.sleep(1.0)  # well past LOOK_MS: whatever would load has
            rows, below, unfetched = await b.js(UNFETCHED_BELOW)
            assert rows == 40
            # The rows the burst pushed out of sight were never fetched (before, every row's
            # pictures were requested the moment it was drawn). Some of the first drawn may
            # have stayed in sight long enough, so not all of them: most.
            assert below >= 20
            assert unfetched >= below - 8, (rows, below, unfetched)
            await b.screenshot("live-burst")
            # The newest row, in sight all along, shows both pictures.
            top = await b.js("return document.querySelector('article.read').dataset.id")
            await b.wait(PICTURES_SHOWN, f"article.read[data-id='{top}'] img", 2)
            # A row never fetched, brought into sight, gets its pictures.
            bottom = await b.js(
                "const r = [...document.querySelectorAll('article.read')].pop();"
                "r.scrollIntoView(); return r.dataset.id;"
            )
            await b.wait(
                PICTURES_SHOWN,
                f"article.read[data-id='{bottom}'] img",
                2,
                what="the pictures of a row scrolled into sight",
            )
        assert b.errors() == []


async def test_plate_and_raw_fields_are_text_never_markup(tmp_path: Path, chromium: Any) -> None:
    gate = Gate(tmp_path)
    async with gate.running(), gate.pusher() as push:
        async with browser_on(chromium, gate.base, shots_dir(tmp_path)) as b:
            await b.open("/")
            await b.wait("return document.getElementById('status').dataset.state === 'up'")
            event_id = await gate.push(push, ATTACK, **{"Note <b>": ATTACK})
            await b.wait(ROW, event_id)
            for path in ("/", f"/events/{event_id}", "/search?plate=" + quote(ATTACK)):
                await b.open(path)
                await b.wait(
                    "return document.querySelector('main').innerText.includes(arguments[0])",
                    "img src=x",
                    what=path,
                )
                # The attack is shown as text; no element came of it and nothing ran.
                assert await b.js("return document.querySelectorAll('img[src=\"x\"]').length") == 0
                assert await b.js("return document.title") != "pwned"
        assert b.errors() == []


async def test_cameras_page_shows_a_camera_going_down_and_back(
    tmp_path: Path, chromium: Any
) -> None:
    gate = Gate(tmp_path)
    camera = SimulatedCamera(tcp_port=gate.tcp_port, password=PASSWORD)
    await camera.start()
    try:
        async with gate.running(), browser_on(chromium, gate.base, shots_dir(tmp_path)) as b:
            await b.open("/cameras")
            state = (
                "const t = document.querySelector(\"[data-camera='barrier'] .transport\");"
                "return t && t.innerText"
            )
            await b.wait(state + " && " + state.split("return ")[1] + ".includes('tcp: up')")
            await b.screenshot("cameras")
            await camera.close()  # the camera goes away
            await b.wait(
                "const c = document.querySelector(\"[data-camera='barrier']\");"
                "return c && c.classList.contains('down') && c.innerText.includes('tcp: down')",
                what="the camera shown down",
            )
            text = await b.js(
                "return document.querySelector(\"[data-camera='barrier']\").innerText"
            )
            assert "not available" in text
            await b.screenshot("cameras-down")
            camera = SimulatedCamera(tcp_port=gate.tcp_port, password=PASSWORD)
            await camera.start()  # and comes back
            await b.wait(
                "const c = document.querySelector(\"[data-camera='barrier']\");"
                "return c && c.classList.contains('ok') && c.innerText.includes('tcp: up')",
                timeout=15,
                what="the camera shown up again",
            )
            assert "ok" in await b.js("return document.getElementById('daemon').innerText")
        assert b.errors() == []
    finally:
        await camera.close()


async def test_live_page_survives_a_daemon_restart(tmp_path: Path, chromium: Any) -> None:
    gate = Gate(tmp_path)
    async with browser_on(chromium, gate.base, shots_dir(tmp_path)) as b:
        async with gate.running(), gate.pusher() as push:
            await b.open("/")
            await b.wait("return document.getElementById('status').dataset.state === 'up'")
            before = await gate.push(push, "RS0001")
            await b.wait(ROW, before)
            row = f"article.read[data-id='{before}'] img"
            await b.wait(PICTURES_SHOWN, row, 2, what="its pictures, before the daemon stops")
        # The daemon is gone: the page says so and keeps trying.
        await b.wait("return document.getElementById('status').dataset.state === 'down'")
        await asyncio.sleep(1)
        async with gate.running(), gate.pusher() as push:
            after = await gate.push(push, "RS0002")
            await b.wait(ROW, after, timeout=15, what="a read after the restart")
            assert await b.js(ROW, before)  # the rows from before are still there
            assert await b.js("return document.getElementById('status').dataset.state") == "up"
    # While the daemon was down the browser could not connect to it; nothing else.
    down = ("ERR_CONNECTION_REFUSED", "ERR_SOCKET_NOT_CONNECTED", "ERR_CONNECTION_RESET")
    refused = lambda e: any(x in e.get("message", "") for x in down)  # noqa: E731
    assert b.errors(refused) == []


async def test_plate_list_edited_in_the_page(tmp_path: Path, chromium: Any) -> None:
    gate = Gate(tmp_path)
    async with gate.running(), gate.pusher() as push:
        async with browser_on(chromium, gate.base, shots_dir(tmp_path)) as b:
            await b.open("/lists")
            section = "section[data-list='regulars']"
            await b.wait(f'return document.querySelector("{section} form.add-plate")')
            await b.js(
                f'const f = document.querySelector("{section} form.add-plate");'
                "f.plate.value = 'ED1234'; f.label.value = arguments[0];"
                "f.expires.value = '2099-01-31'; f.requestSubmit();",
                ATTACK,
            )
            await b.wait(
                f"return document.querySelector(\"{section}\").innerText.includes('ED1234')",
                what="the added plate listed",
            )
            assert await b.js("return document.querySelectorAll('img[src=\"x\"]').length") == 0
            text = (tmp_path / "regulars.csv").read_text()
            assert "ED1234" in text
            assert "2099-01-31" in text
            # In force at once: the next read of that plate is on the list.
            event_id = await gate.push(push, "ED1234")
            await b.open(f"/events/{event_id}")
            await b.wait("return document.querySelector('main').innerText.includes('regulars')")
            await b.open("/lists")
            await b.wait(f'return document.querySelector("{section} form.add-plate")')
            await b.screenshot("lists")
            await b.js(
                f"document.querySelector(\"{section} button[aria-label^='Remove ED1234']\").click()"
            )
            await b.wait(
                f"return !document.querySelector(\"{section}\").innerText.includes('ED1234')",
                what="the plate removed",
            )
            assert "ED1234" not in (tmp_path / "regulars.csv").read_text()
            assert "RG1234" in (tmp_path / "regulars.csv").read_text()
        assert b.errors() == []
