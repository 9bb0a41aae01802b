"""A headless Chromium (Debian's ``chromium`` driven by its ``chromium-driver``, through
Selenium; nothing downloads a browser), and a daemon run as users run it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ..conftest import lprmeta

_T = TypeVar("_T")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PHONE = (390, 844)
DESKTOP = (1400, 1000)


def _driver() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",  # no request to anywhere but 127.0.0.1
        "--disable-component-update",
        "--disable-sync",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    pytest.importorskip("selenium")
    driver = _driver()
    try:
        yield driver
    finally:
        driver.quit()


@dataclass
class Browser:
    """The driver, called from a worker thread (Selenium blocks; the simulated cameras
    share this event loop), and the console messages seen so far."""

    driver: Any
    base: str
    shots: Path
    console: list[dict[str, Any]] = field(default_factory=list)

    async def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.to_thread(fn, *args)

    async def open(self, path: str) -> None:
        await self.call(self.driver.get, self.base + path)

    async def js(self, script: str, *args: Any) -> Any:
        return await self.call(self.driver.execute_script, script, *args)

    async def wait(self, script: str, *args: Any, timeout: float = 10, what: str = "") -> Any:
        """Until ``script`` returns something true; that value."""
        deadline = time.monotonic() + timeout
        while True:
            value = await self.js(script, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout:g} s: {what or script}")
            await asyncio.sleep(0.1)

    async def collect_console(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = await self.call(self.driver.get_log, "browser")
        self.console += entries
        return entries

    async def screenshot(self, name: str) -> None:
        """The page at desktop and at phone width, as PNG files under ``shots``."""
        self.shots.mkdir(parents=True, exist_ok=True)
        for label, (width, height) in (("desktop", DESKTOP), ("phone", PHONE)):
            await self.call(self.driver.set_window_size, width, height)
            await asyncio.sleep(0.3)
            await self.call(self.driver.save_screenshot, str(self.shots / f"{name}-{label}.png"))
        await self.call(self.driver.set_window_size, *DESKTOP)

    def errors(self, allowed: Callable[[dict[str, Any]], bool] = lambda _: False) -> list[Any]:
        return [e for e in self.console if e.get("level") == "SEVERE" and not allowed(e)]


@contextlib.asynccontextmanager
async def browser_on(chromium: Any, base: str, shots: Path) -> AsyncIterator[Browser]:
    b = Browser(chromium, base, shots)
    await b.call(chromium.get_log, "browser")  # what an earlier test left
    await b.call(chromium.set_window_size, *DESKTOP)
    try:
        yield b
    finally:
        await b.collect_console()
        with contextlib.suppress(Exception):
            await b.call(chromium.get, "about:blank")  # close the page's event stream


@contextlib.asynccontextmanager
async def running(config: Path, cwd: Path, api_port: int) -> AsyncIterator[Any]:
    """``lprmeta run --config`` in ``cwd`` until its API answers; SIGTERM at the end."""
    out = (cwd / "events.jsonl").open("ab")
    err = (cwd / "daemon.log").open("ab")
    proc = await lprmeta(
        "run",
        "--config",
        str(config),
        "--log-format",
        "json",
        cwd=cwd,
        stdout=out.fileno(),
        stderr=err.fileno(),
    )
    try:
        async with asyncio.timeout(30):
            while True:
                if proc.returncode is not None:
                    raise AssertionError((cwd / "daemon.log").read_text()[-3000:])
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", api_port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                break
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)
        out.close()
        err.close()


def lines(cwd: Path) -> list[dict[str, Any]]:
    path = cwd / "events.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
