"""Fetching the pictures a camera keeps only briefly (RTSP notifications point at them).

The guide ("3. RTSP Type"): the picture of a read is fetched with a GET of
``http://IP:PORT<LicensePlatePicturePath>``, and "only 10 latest images are
available for download". So a fetch starts the moment the notification is
parsed, fetches of one camera run side by side (a burst of reads must not
queue behind a slow one), and a picture that could not be had in time is
reported missing with the reason, never silently left out.

Owns HTTP fetching, the camera-host rule and the picture checks; saving is
:mod:`lprmeta.storage`'s, deciding what to fetch is the parser's.

Security: the URL is always built from the camera's configured host and web
port, so a path cannot point anywhere else; a full URL or a redirect to a
different host or port is refused (:class:`~lprmeta.errors.ForbiddenPictureURL`).
Credentials go only to that host: Basic, or Digest when the camera asks for it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from yarl import URL

from .errors import ForbiddenPictureURL, SnapshotError, UsageError
from .log import get_logger
from .protocol.auth import DigestState, basic_authorization, parse_challenges

__all__ = ["CameraWeb", "PictureFetcher", "is_jpeg"]

_MAX_REDIRECTS = 3
_CHUNK = 64 * 1024


def is_jpeg(data: bytes | bytearray) -> bool:
    return data[:3] == b"\xff\xd8\xff"


@dataclass
class CameraWeb:
    """What the fetcher needs to know of one camera's web server."""

    name: str
    host: str
    port: int
    username: str
    password: str
    max_picture: int = 8 * 1024 * 1024
    # Learnt from the camera's first 401: "basic" or "digest" (then sent up front).
    scheme: str | None = None
    digest: DigestState | None = field(default=None, repr=False)

    def url_for(self, path_or_url: str) -> URL:
        """The URL to fetch. Paths go to this camera; a full URL must already point here."""
        text = path_or_url.strip()
        if any(ord(ch) < 0x20 for ch in text) or "\\" in text:
            raise ForbiddenPictureURL(
                f"picture path {text[:80]!r} has control characters or backslashes",
                reason="refused: malformed picture path",
            )
        if "://" in text:
            parts = urlsplit(text)
            if parts.scheme.lower() not in ("http", "https"):
                raise ForbiddenPictureURL(
                    f"picture URL {text[:80]!r} is not http",
                    reason=f"refused: not an http URL ({parts.scheme.lower()})",
                )
            url = URL(text)
            if not self._same_origin(url):
                raise ForbiddenPictureURL(
                    f"picture URL points at {url.host}:{url.port}, not the camera "
                    f"{self.host}:{self.port}",
                    reason=f"refused: picture URL points at another host ({url.host})",
                )
            return url
        if not text.startswith("/"):
            text = "/" + text
        path, _, query = text.partition("?")
        return URL.build(
            scheme="http",
            host=self.host,
            port=self.port,
            path=path,
            query_string=query,
            encoded=False,
        )

    def _same_origin(self, url: URL) -> bool:
        return (url.host or "").lower() == self.host.lower() and url.port == self.port

    def learn(self, challenges: list[str]) -> None:
        """Take the camera's ``WWW-Authenticate`` challenges; prefer Digest to Basic."""
        parsed = parse_challenges(challenges)
        digest = next((c for c in parsed if c.scheme == "digest"), None)
        self.digest = DigestState(digest) if digest is not None else None
        self.scheme = "digest" if digest is not None else "basic"

    def authorization(self, method: str, url: URL) -> str | None:
        """The ``Authorization`` value for a request; ``None`` until the camera has asked
        (credentials are never sent to a server that does not want them)."""
        if self.scheme == "digest" and self.digest is not None:
            return self.digest.authorization(self.username, self.password, method, url.path_qs)
        if self.scheme == "basic":
            return basic_authorization(self.username, self.password)
        return None


class PictureFetcher:
    """Fetches pictures from cameras. One shared aiohttp session, pooled per camera host."""

    def __init__(self, *, session: aiohttp.ClientSession | None = None) -> None:
        self._session = session
        self._own = session is None
        self._log = get_logger("lprmeta.snapshots")

    async def __aenter__(self) -> PictureFetcher:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=512, limit_per_host=32),
                auto_decompress=False,
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise UsageError("use `async with PictureFetcher()`")
        return self._session

    async def fetch(self, cam: CameraWeb, path: str, *, timeout: float) -> bytes:
        """The picture at ``path`` on ``cam``; :class:`SnapshotError` says why not."""
        url = cam.url_for(path)
        deadline = time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                return await self._get(cam, url)
        except TimeoutError as exc:
            raise SnapshotError(
                f"picture {url.path} not fetched within {timeout:g} s",
                reason=f"not fetched within {timeout:g} s",
            ) from exc
        except aiohttp.ClientError as exc:
            left = deadline - time.monotonic()
            raise SnapshotError(
                f"picture {url.path}: {type(exc).__name__}: {exc}",
                reason=f"fetch failed: {type(exc).__name__}" + ("" if left > 0 else " (deadline)"),
            ) from exc

    async def _get(self, cam: CameraWeb, url: URL) -> bytes:
        challenged = False
        for _ in range(_MAX_REDIRECTS + 2):  # redirects, plus one answer to a challenge
            auth = cam.authorization("GET", url)
            headers = {"Authorization": auth} if auth else {}
            async with self.session.get(url, headers=headers, allow_redirects=False) as resp:
                if resp.status == 401 and not challenged and (cam.username or cam.password):
                    challenged = True  # a new or stale nonce, or the first request
                    cam.learn(resp.headers.getall("WWW-Authenticate", []))
                    continue
                if resp.status in (301, 302, 303, 307, 308):
                    url = self._redirect(cam, url, resp.headers.get("Location", ""))
                    continue
                return await self._body(cam, url, resp)
        raise SnapshotError(
            f"picture {url.path}: more than {_MAX_REDIRECTS} redirects",
            reason="too many redirects",
        )

    @staticmethod
    def _redirect(cam: CameraWeb, url: URL, location: str) -> URL:
        target = url.join(URL(location)) if location else url
        if not cam._same_origin(target):
            raise ForbiddenPictureURL(
                f"picture {url.path} redirects to {target.host}:{target.port}; refused",
                reason=f"refused: redirect to another host ({target.host})",
            )
        return target

    async def _body(self, cam: CameraWeb, url: URL, resp: aiohttp.ClientResponse) -> bytes:
        if resp.status == 401:
            raise SnapshotError(
                f"picture {url.path}: the camera refused the credentials (401)",
                reason="refused credentials (401)",
            )
        if resp.status != 200:
            raise SnapshotError(
                f"picture {url.path}: HTTP {resp.status}",
                reason=f"HTTP {resp.status}",
            )
        if resp.content_length is not None and resp.content_length > cam.max_picture:
            raise SnapshotError(
                f"picture {url.path} is {resp.content_length} bytes, above {cam.max_picture}",
                reason=f"larger than the limit of {cam.max_picture} bytes",
            )
        data = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK):
            data += chunk
            if len(data) > cam.max_picture:
                raise SnapshotError(
                    f"picture {url.path} exceeds {cam.max_picture} bytes",
                    reason=f"larger than the limit of {cam.max_picture} bytes",
                )
        if not is_jpeg(data):
            raise SnapshotError(
                f"picture {url.path} is not a JPEG (starts {bytes(data[:8])!r})",
                reason="not a JPEG",
            )
        return bytes(data)
