"""The web page for the people at the gate, served by the API's own server.

Five pages: live reads, search, one read, cameras, plate lists. Each is the same
small HTML shell (no inline script or style: the Content-Security-Policy forbids
them) and one script, ``static/app.js``, that reads the query API and builds
the page with DOM calls only (``textContent``, ``setAttribute``; never
``innerHTML``), so a plate, camera name or raw field is text wherever it comes
from. No build step, no framework and no external request: the script, the style
sheet and the icon are files of this package, loaded once at start (on a worker
thread) and served from memory with an ETag.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from html import escape
from importlib import resources

from aiohttp import web

__all__ = ["CSP", "PAGES", "Assets", "load_assets"]

# What each page's shell says before its script runs: path -> (page, title).
PAGES = {
    "/": ("live", "Live reads"),
    "/search": ("search", "Search"),
    "/events/{id}": ("event", "A read"),
    "/cameras": ("cameras", "Cameras"),
    "/lists": ("lists", "Plate lists"),
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_STATIC = {
    "app.js": "text/javascript",
    "app.css": "text/css",
    "icon.svg": "image/svg+xml",
}
_SHELL = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · lprmeta</title>
<link rel="icon" href="/static/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script>
</head>
<body data-page="{page}">
<a class="skip" href="#main">Skip to content</a>
<header class="top">
<a class="brand" href="/">lprmeta</a>
<nav aria-label="Pages">
<a href="/" data-nav="live">Live</a>
<a href="/search" data-nav="search">Search</a>
<a href="/cameras" data-nav="cameras">Cameras</a>
<a href="/lists" data-nav="lists">Plate lists</a>
</nav>
<span id="status" class="status" role="status"></span>
</header>
<main id="main" tabindex="-1">
<h1>{title}</h1>
<noscript><p>This page needs JavaScript (served by lprmeta itself; nothing is loaded from
elsewhere).</p></noscript>
</main>
</body>
</html>
"""


@dataclass(frozen=True)
class _Asset:
    body: bytes
    content_type: str
    etag: str


class Assets:
    """The page's files, in memory."""

    def __init__(self, files: dict[str, _Asset]) -> None:
        self.files = files

    def page(self, path: str) -> web.Response:
        page, title = PAGES[path]
        html = _SHELL.format(page=escape(page), title=escape(title))
        return web.Response(
            text=html,
            content_type="text/html",
            charset="utf-8",
            headers={"Cache-Control": "no-store"},
        )

    def static(self, request: web.Request) -> web.Response:
        asset = self.files.get(request.match_info["name"])
        if asset is None:
            raise web.HTTPNotFound(reason="no such file")
        headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
        if request.headers.get("If-None-Match") == asset.etag:
            return web.Response(status=304, headers=headers)
        return web.Response(body=asset.body, content_type=asset.content_type, headers=headers)


def load_assets() -> Assets:
    """Read the static files (call it on a worker thread: it is disk work)."""
    root = resources.files(__name__).joinpath("static")
    files = {}
    for name, kind in _STATIC.items():
        body = root.joinpath(name).read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        files[name] = _Asset(body, kind, etag)
    return Assets(files)
