"""What cameras push over HTTP, sans-IO: request target and body -> Read (event + pictures).

Source: the guide's section "2. HTTP Type". POST bodies are JSON and go through
:func:`lprmeta.protocol.jsonpost.normalize_json` (both naming eras, any
letter case). GET pushes carry the plate in the URL; the guide's own example
shows the camera appending ``source=LPR&description=MS12345`` to whatever URL
was configured, so a URL configured without ``?`` yields
``/api/httpEventsource=LPR&description=MS12345``. Both shapes are read, as
are ``Caption=LPR`` and spaces around ``=`` that some firmware sends.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from ..envelope import Read
from ..errors import PayloadError
from ..events import Source
from ..vocabulary import expect_object
from .jsonpost import MAX_KEYS, normalize_json, settle_pictures
from .values import fold_key, lenient_json

__all__ = [
    "decode_body",
    "device_of",
    "parse_get",
    "parse_get_params",
    "parse_post",
    "split_target",
]

# The keys a GET push is known to carry; used to find where the parameters
# start when the camera glued them onto the path without a "?".
_GET_KEYS = ("source", "description", "caption", "plate", "licenseplate", "time")
_GLUED = re.compile(r"(?i)(?:^|(?<=[/a-z0-9]))(" + "|".join(_GET_KEYS) + r")\s*=")


def split_target(target: str) -> tuple[str, str]:
    """``(path, params)`` of a raw request target, for both GET shapes."""
    path, sep, query = target.partition("?")
    if sep:
        return path, query
    m = _GLUED.search(path.rsplit("/", 1)[-1])
    if m is None:
        return path, ""
    cut = len(path) - len(path.rsplit("/", 1)[-1]) + m.start(1)
    return path[:cut], path[cut:]


def parse_get_params(params: str) -> dict[str, str]:
    """``source=LPR&description=MS12345`` -> dict; tolerates spaces around ``=`` and ``&``.
    At most MAX_KEYS parameters are read (a form body of 10^6 took the loop 1.6 s); the
    rest is named in ``details.problems`` by :func:`parse_get`."""
    out: dict[str, str] = {}
    parts = params.split("&", MAX_KEYS)
    if len(parts) > MAX_KEYS:
        extra = parts.pop()
        out[_SKIPPED] = str(extra.count("&") + 1)
    for part in parts:
        if not part.strip():
            continue
        key, _, value = part.partition("=")
        key = unquote_plus(key).strip()
        if key:
            out.setdefault(key, unquote_plus(value).strip())
    return out


_SKIPPED = "\x00skipped"  # not a name a URL can carry (a NUL would be %00, decoded later)


def parse_get(
    params: Mapping[str, str],
    *,
    camera: str,
    received: datetime,
    fields: Mapping[str, str] | None = None,
) -> Read:
    """A GET push. ``description`` is the plate when ``source`` (or ``Caption``) says
    LPR or is absent; any other source is kept as ``kind: event``."""
    params = dict(params)
    skipped = params.pop(_SKIPPED, None)
    problems = [f"{skipped} more parameters than {MAX_KEYS}; not read"] if skipped else []
    folded = {fold_key(k): v for k, v in params.items()}
    body: dict[str, Any] = dict(params)
    source = folded.get("source") or folded.get("caption")
    fmap = dict(fields or {})
    if (
        "plate" not in fmap
        and "description" in folded
        and (source is None or "lpr" in source.lower())
    ):
        fmap["plate"] = next(k for k in params if fold_key(k) == "description")
    return normalize_json(
        body, camera=camera, source=Source.HTTP, received=received, fields=fmap, problems=problems
    )


def decode_body(body: bytes) -> dict[str, Any]:
    """A POST body -> its JSON object; :class:`PayloadError` says why it is not one."""
    if not body.strip():
        raise PayloadError("empty body")
    return dict(expect_object(lenient_json(body)))


def parse_post(
    data: Mapping[str, Any],
    *,
    camera: str,
    received: datetime,
    fields: Mapping[str, str] | None = None,
    max_picture: int = 16 * 1024 * 1024,
    problems: Sequence[str] = (),
) -> Read:
    """A decoded POST body -> Read. A picture that is not valid base64 is marked
    missing with the reason and the read still goes out (the receiver's reply lists
    it); ``problems`` are what was cut before (a body parsed by the worker)."""
    if fields and isinstance(data, dict):
        settle_pictures(data, fields)
    return normalize_json(
        data,
        camera=camera,
        source=Source.HTTP,
        received=received,
        fields=fields,
        max_picture=max_picture,
        problems=problems,
    )


def device_of(body: Mapping[str, Any]) -> str | None:
    """The ``device`` field of a body (the camera's configurable Device Name), if any."""
    for key, value in body.items():
        if fold_key(key) in ("device", "devicename") and isinstance(value, str) and value.strip():
            return value.strip()
    return None
