"""HTTP-style authentication, sans-IO: Basic and Digest, both sides.

Used by RTSP (the camera's RTSP server asks for Basic or Digest, RFC 2326 and
RFC 2617) and HTTP (the camera's picture endpoint; the push receiver's Basic
check). The client side builds ``Authorization`` values from a challenge; the
server side (the simulated camera) checks them. Every comparison of a secret
is constant-time (:func:`hmac.compare_digest`), and both the user name and
the password are always compared, so timing does not tell which was wrong.

Digest covers what cameras use: ``MD5`` (the default), ``MD5-sess``,
``SHA-256``, with ``qop=auth`` or the RFC 2069 form without ``qop``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "Challenge",
    "DigestState",
    "basic_authorization",
    "check_basic",
    "check_digest",
    "digest_challenge",
    "parse_auth_params",
    "parse_challenges",
]


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: the scheme (lower case) and its parameters."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)


_HTTP_TCHAR = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(rf'\s*({_HTTP_TCHAR})\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


def parse_auth_params(text: str) -> dict[str, str]:
    """``realm="x", nonce="y", qop=auth`` -> dict (names lower case, quotes removed)."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        m = _PARAM.match(text, pos)
        if m is None or m.end() == pos:
            break
        value = m.group(2)
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        out[m.group(1).lower()] = value
        pos = m.end()
    return out


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """Every challenge in the given ``WWW-Authenticate`` header values (one per value, as
    RTSP servers send them)."""
    out: list[Challenge] = []
    for value in values:
        scheme, _, rest = value.strip().partition(" ")
        if scheme:
            out.append(Challenge(scheme.lower(), parse_auth_params(rest)))
    return out


def basic_authorization(user: str, password: str) -> str:
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def check_basic(header: str | None, user: str, password: str) -> bool:
    """Constant-time check of a ``Basic`` Authorization header."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        got_user, _, got_pw = (
            base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
        )
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    ok_user = hmac.compare_digest(got_user.encode(), user.encode())
    ok_pw = hmac.compare_digest(got_pw.encode(), password.encode())
    return ok_user and ok_pw


def _hash(algorithm: str) -> Callable[[str], str]:
    name = "sha256" if algorithm.upper().startswith("SHA-256") else "md5"

    def h(text: str) -> str:
        return hashlib.new(name, text.encode("utf-8"), usedforsecurity=False).hexdigest()

    return h


def _response(
    *,
    algorithm: str,
    user: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None,
    nc: str,
    cnonce: str,
) -> str:
    h = _hash(algorithm)
    ha1 = h(f"{user}:{realm}:{password}")
    if algorithm.lower().endswith("-sess"):
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    if qop:
        return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return h(f"{ha1}:{nonce}:{ha2}")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class DigestState:
    """A client's Digest session with one server: the last challenge and the nonce count.

    Reusing it lets later requests authenticate up front, without a 401 round trip.
    """

    challenge: Challenge
    nc: int = 0

    def authorization(self, user: str, password: str, method: str, uri: str) -> str:
        p = self.challenge.params
        algorithm = p.get("algorithm", "MD5")
        qops = [q.strip() for q in p.get("qop", "").split(",") if q.strip()]
        qop = "auth" if "auth" in qops else None
        self.nc += 1
        nc = f"{self.nc:08x}"
        cnonce = secrets.token_hex(8)
        realm, nonce = p.get("realm", ""), p.get("nonce", "")
        response = _response(
            algorithm=algorithm,
            user=user,
            realm=realm,
            password=password,
            method=method,
            uri=uri,
            nonce=nonce,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
        )
        parts = [
            f"username={_quote(user)}",
            f"realm={_quote(realm)}",
            f"nonce={_quote(nonce)}",
            f"uri={_quote(uri)}",
            f"response={_quote(response)}",
        ]
        if "algorithm" in p:
            parts.append(f"algorithm={algorithm}")
        if "opaque" in p:
            parts.append(f"opaque={_quote(p['opaque'])}")
        if qop:
            parts += [f"qop={qop}", f"nc={nc}", f"cnonce={_quote(cnonce)}"]
        return "Digest " + ", ".join(parts)


def digest_challenge(realm: str, nonce: str, *, qop: bool = True, stale: bool = False) -> str:
    """A ``WWW-Authenticate`` value a server sends (the simulated camera)."""
    out = f'Digest realm="{realm}", nonce="{nonce}", algorithm=MD5'
    if qop:
        out += ', qop="auth"'
    if stale:
        out += ", stale=TRUE"
    return out


def check_digest(
    header: str | None,
    *,
    user: str,
    password: str,
    realm: str,
    method: str,
    nonce_ok: Callable[[str], bool],
) -> bool:
    """Server side: is this ``Authorization: Digest ...`` right for ``user``/``password``?"""
    scheme, _, rest = (header or "").strip().partition(" ")
    if scheme.lower() != "digest":
        return False
    p = parse_auth_params(rest)
    needed = ("username", "realm", "nonce", "uri", "response")
    if any(k not in p for k in needed) or p["realm"] != realm or not nonce_ok(p["nonce"]):
        return False
    expected = _response(
        algorithm=p.get("algorithm", "MD5"),
        user=user,
        realm=realm,
        password=password,
        method=method,
        uri=p["uri"],
        nonce=p["nonce"],
        qop=p.get("qop"),
        nc=p.get("nc", ""),
        cnonce=p.get("cnonce", ""),
    )
    ok_user = hmac.compare_digest(p["username"].encode(), user.encode())
    ok_resp = hmac.compare_digest(p["response"].lower().encode(), expected.encode())
    return ok_user and ok_resp
