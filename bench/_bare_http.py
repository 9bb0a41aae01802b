"""A bare aiohttp server for ``http_bench.py``: what aiohttp itself costs a POST here.

The receiver's server is aiohttp's low-level ``web.Server`` (lprmeta/inputs/http.py);
this is the same server with a handler that only reads the body and answers 200 with a
short JSON reply, as the receiver's is. No parse, no event, no picture: the part of a
POST's cost that no code of lprmeta's can take away while aiohttp serves the port.
Started by the benchmark on the daemon's core; says ``listening`` on stdout when ready.

    python bench/_bare_http.py PORT
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web


async def handle(request: web.BaseRequest) -> web.Response:
    body = await request.read()
    return web.Response(body=b'{"ok":true,"bytes":%d}' % len(body), content_type="application/json")


async def serve(port: int) -> None:
    server = web.Server(handle, access_log=None)
    runner = web.ServerRunner(server, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("listening", flush=True)
    try:
        await asyncio.Event().wait()  # until the benchmark terminates it
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
