"""Sans-IO parsers and encoders: bytes or text in, events out.

Nothing in this package imports asyncio, aiohttp or av, opens a socket or
reads a clock: callers pass ``received`` times in. ``tests/test_layers.py``
enforces it.
"""
