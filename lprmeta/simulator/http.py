"""The simulated camera's HTTP side: pushes reads to a receiver, as a camera configured
with an HTTP Post (or Get) URL does ("2. HTTP Type")."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import aiohttp

from .script import Read

__all__ = ["HttpPusher"]


class HttpPusher:
    """POSTs JSON bodies (either naming era) or GETs the plate to ``target``."""

    def __init__(
        self,
        target: str,
        *,
        username: str = "",
        password: str = "",
        device: str = "Network Camera",
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.target = target
        self.device = device
        self._headers = {"Content-Type": "application/json"}
        if username:
            self._headers["Authorization"] = aiohttp.encode_basic_auth(username, password)
        self._own_session = session is None
        self._session = session
        self.sent = 0
        self.failed = 0

    async def __aenter__(self) -> HttpPusher:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64),
                timeout=aiohttp.ClientTimeout(total=30),
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use `async with HttpPusher(...)`"
        return self._session

    async def post(self, body: Mapping[str, Any] | bytes) -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        async with self.session.post(self.target, data=data, headers=self._headers) as resp:
            reply = await resp.json(content_type=None)
            self._count(resp.status)
            return resp.status, reply

    async def push_read(self, read: Read, *, era: str = "new") -> tuple[int, dict[str, Any]]:
        return await self.post(read.http_body(era=era, device=self.device))

    async def push_get(self, read: Read, *, glued: bool = False) -> int:
        """The GET shape; ``glued`` is the guide's example: the configured URL had no ``?``."""
        params = f"source=LPR&description={quote(read.plate)}"
        url = self.target + (params if glued else ("&" if "?" in self.target else "?") + params)
        headers = {k: v for k, v in self._headers.items() if k == "Authorization"}
        async with self.session.get(url, headers=headers) as resp:
            await resp.read()
            self._count(resp.status)
            return resp.status

    def _count(self, status: int) -> None:
        if status == 200:
            self.sent += 1
        else:
            self.failed += 1
