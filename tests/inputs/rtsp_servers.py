"""The two RTSP servers the RTSP input is tested against, behind one interface.

* ``sim``: lprmeta's own simulated camera (in this process).
* ``gst``: Debian's gst-rtsp-server, driven by ``tests/tools/gst_onvif_server.py``
  under Debian's python3 (which has PyGObject), in a process of its own, so
  it can be killed (SIGKILL) and frozen (SIGSTOP) for real.

Pictures always come from the simulator's web server (gst-rtsp-server has none).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any, Protocol

from lprmeta.simulator.rtsp import RtspCameraServer

from ..conftest import free_port

GST_HELPER = Path(__file__).resolve().parent.parent / "tools" / "gst_onvif_server.py"
SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin") or "/usr/bin/python3"
PASSWORD = "s3cret-pw:/@x"  # characters that must be percent-encoded in a URL


def gst_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = (
        "import gi; gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import GstRtspServer"
    )
    return os.system(f'{SYSTEM_PYTHON} -c "{probe}" >/dev/null 2>&1') == 0  # noqa: S605


class RtspServer(Protocol):
    name: str
    url: str
    expired: int

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def send(self, doc: bytes, *, mtu: int = 1200) -> int: ...
    async def wait_playing(self, n: int = 1, timeout: float = 10.0) -> None: ...
    async def kill(self) -> None: ...
    async def restart(self) -> None: ...
    def freeze(self) -> None: ...
    def thaw(self) -> None: ...


class SimServer:
    name = "sim"

    def __init__(self, *, session_timeout: int = 60, auth: str = "digest") -> None:
        self.port = free_port()
        self._kw: dict[str, Any] = {"session_timeout": session_timeout, "auth": auth}
        self.server = self._new()

    def _new(self) -> RtspCameraServer:
        return RtspCameraServer(port=self.port, password=PASSWORD, **self._kw)

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/onvif/metadata"

    @property
    def expired(self) -> int:
        return self.server.counters.get("expired", 0)

    async def start(self) -> None:
        await self.server.start()

    async def close(self) -> None:
        await self.server.close()

    async def send(self, doc: bytes, *, mtu: int = 1200) -> int:
        self.server.mtu = mtu
        return await self.server.send_document(doc)

    async def wait_playing(self, n: int = 1, timeout: float = 10.0) -> None:
        await self.server.wait_playing(n, timeout)

    async def kill(self) -> None:
        await self.server.close()

    async def restart(self) -> None:
        self.server = self._new()
        await self.server.start()

    def freeze(self) -> None:
        self.server.freeze()

    def thaw(self) -> None:
        self.server.thaw()


class GstServer:
    name = "gst"

    def __init__(self, *, session_timeout: int = 60, auth: str = "digest") -> None:
        self.port = free_port()
        self.args = [
            SYSTEM_PYTHON,
            str(GST_HELPER),
            "--port",
            str(self.port),
            "--timeout",
            str(session_timeout),
            "--auth",
            auth,
            "--password",
            PASSWORD,
        ]
        self.proc: asyncio.subprocess.Process | None = None
        self.playing = 0
        self.expired = 0
        self._replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/onvif/metadata"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self.playing = 0
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(ready))
        await asyncio.wait_for(ready, 15)

    async def _read(self, ready: asyncio.Future[None]) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            msg = json.loads(line)
            if "ready" in msg and not ready.done():
                ready.set_result(None)
            elif "playing" in msg:
                self.playing = msg["playing"]
                self._changed.set()
            elif "expired" in msg:
                self.expired += 1
            elif "sent" in msg:
                await self._replies.put(msg)

    async def send(self, doc: bytes, *, mtu: int = 1200) -> int:
        assert self.proc is not None and self.proc.stdin is not None
        cmd = {"op": "doc", "xml": doc.decode("utf-8"), "mtu": mtu}
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()
        reply = await asyncio.wait_for(self._replies.get(), 5)
        return int(reply["sent"])

    async def wait_playing(self, n: int = 1, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while self.playing < n:
                self._changed.clear()
                await self._changed.wait()

    async def _stop(self, sig: int) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(sig)
        await asyncio.wait_for(self.proc.wait(), 10)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def close(self) -> None:
        await self._stop(signal.SIGTERM)

    async def kill(self) -> None:
        await self._stop(signal.SIGKILL)

    async def restart(self) -> None:
        await self.start()

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


def make_server(kind: str, **kw: Any) -> RtspServer:
    return SimServer(**kw) if kind == "sim" else GstServer(**kw)
