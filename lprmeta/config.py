"""Configuration: a TOML file read with :mod:`tomllib` into frozen, validated dataclasses.

This module owns the schema of the configuration and its validation. It reads
the file and nothing else: it opens no socket and imports no hook (the daemon
and ``check-config`` do that). Every problem is reported at once, each named by
its key path (``cameras[1].tcp.port: must be 1-65535``), through
:class:`~lprmeta.errors.ConfigError`.

Secrets (camera and receiver passwords) are held in :class:`Secret`, whose
``repr`` and ``str`` never show the value, so a config object can be logged.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from .errors import ConfigError, ConfigProblem

__all__ = [
    "REGISTER_FEATURES",
    "BusConfig",
    "CameraConfig",
    "CameraHttpConfig",
    "Config",
    "HookConfig",
    "HttpConfig",
    "ListConfig",
    "MetricsConfig",
    "MqttConfig",
    "OutputConfig",
    "RtspConfig",
    "Secret",
    "TcpConfig",
    "WebhookConfig",
    "load_config",
    "parse_config",
]

# Feature names accepted in ``cameras.tcp.register`` -> the COMM_REGISTE_REQ key the
# guide uses for them ("1. TCP Type", COMM_REGISTER_REQ, "Data Content"). The guide
# lists "Attributes Event", "List Event", "Violation Event" and "General" without
# their JSON spelling; the lower-case, space-free form follows its "lprparking"
# and "vehiclecount" examples. The encoder sends exactly these keys.
REGISTER_FEATURES: Final[Mapping[str, str]] = {
    "parking": "lprparking",
    "counting": "vehiclecount",
    "attributes": "attributesevent",
    "list": "listevent",
    "violation": "violationevent",
    "general": "general",
}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HOOK_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
MIB = 1024 * 1024


class Secret:
    """A string that does not show itself in logs, reprs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class OutputConfig:
    snapshot_dir: Path = Path("snapshots")
    stdout: bool = True
    queue_size: int = 10_000
    # Bytes each sink's queue may hold (events are weighed by their raw fields).
    queue_bytes: int = 64 * MIB


@dataclass(frozen=True, slots=True)
class BusConfig:
    # Reads of the same plate by the same camera closer than this are one car.
    dedup_window: float = 2.0
    # How long a read waits for the same car over the camera's other transports
    # before it goes out anyway; only for cameras with more than one transport.
    merge_wait: float = 0.5


@dataclass(frozen=True, slots=True)
class HttpConfig:
    host: str = "127.0.0.1"
    port: int = 8092
    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    max_body: int = 16 * MIB
    # How long one request may take to arrive in full (slow clients are cut off).
    read_timeout: float = 30.0
    # Budgets (the README's limits table): connections open at once (more are answered
    # 503 and closed at once, so descriptors stay for cameras and pictures), bodies read
    # at once from one address (more wait their turn), and bytes of bodies held at once, gzip
    # bodies counted inflated (past it: 503 with Retry-After).
    max_connections: int = 512
    max_connections_per_address: int = 256
    max_reads_per_address: int = 8
    max_body_memory: int = 128 * MIB


@dataclass(frozen=True, slots=True)
class TcpConfig:
    port: int = 5000
    # "all" -> registerAll=1; otherwise the features to register one by one.
    register: tuple[str, ...] | None = None
    connect_timeout: float = 10.0
    # The protocol has no heartbeat; a camera silent for this long is reconnected.
    idle_timeout: float = 300.0
    # Largest DATA_SIZE accepted; a 0x8801 packet carries up to four JPEGs.
    max_packet: int = 32 * MIB
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    # After a rejected login, wait at least this long before trying again.
    login_retry: float = 300.0

    @property
    def register_all(self) -> bool:
        return self.register is None


@dataclass(frozen=True, slots=True)
class RtspConfig:
    # Without credentials (they are taken out of the URL into username/password).
    url: str | None = None
    # Credentials written in the URL; they win over the camera's for RTSP.
    username: str | None = None
    password: Secret | None = None
    # A quiet stream is renewed (a new session opened before the old one closes)
    # after this many seconds without a packet; 0 = automatic: 0.4 x the session
    # timeout the server advertises, and early enough to notice a frozen server
    # within ``timeout``.
    refresh: float = 0.0
    # A server that sends nothing and does not answer a new session for this
    # long is taken for frozen.
    timeout: float = 20.0
    # Opening a session (OPTIONS ... PLAY) must finish within this; 0 = timeout / 4.
    open_timeout: float = 0.0
    # Used when the server advertises no session timeout (RFC 2326's default).
    session_timeout: float = 60.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    # After the camera refused the credentials, wait this long before trying again.
    auth_retry: float = 300.0
    max_document: int = 1 * MIB
    # Fetch the picture each notification points at (the camera keeps 10).
    pictures: bool = True
    # How long an event waits for its picture before it goes out without it.
    picture_deadline: float = 2.0
    max_picture: int = 8 * MIB
    # Picture fetches in flight at once for this camera.
    fetch_concurrency: int = 4

    @property
    def effective_open_timeout(self) -> float:
        return self.open_timeout or self.timeout / 4

    def quiet_refresh(self, advertised: float | None) -> float:
        """Seconds without a packet after which a session is renewed."""
        if self.refresh:
            return self.refresh
        session = advertised or self.session_timeout
        # FFmpeg sends a keep-alive only when a packet arrives, and at the earliest
        # half a session timeout after its last request: renewing at 0.4x keeps a
        # quiet session alive; the second bound notices a frozen server in time.
        return max(0.5, min(0.4 * session, self.timeout - self.effective_open_timeout))


@dataclass(frozen=True, slots=True)
class OnvifEventsConfig:
    """``[cameras.onvif_events]``: the camera's ONVIF event service, PullPoint: for
    cameras whose metadata track is off or absent (on the camera's web port,
    ``cameras.http_port``, with the camera's credentials)."""

    # The subscription's life: asked for at CreatePullPointSubscription and at each
    # Renew; renewed when 80% of what the camera granted has passed.
    subscription: float = 60.0
    # PullMessages waits this long on the camera for notifications (its Timeout).
    pull_timeout: float = 10.0
    message_limit: int = 100
    # Connecting, subscribing, renewing must each finish within this.
    timeout: float = 10.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    auth_retry: float = 300.0
    max_document: int = 1 * MIB  # one notification, as the metadata track's documents
    # Fetching the pictures notifications point at (as [cameras.rtsp] does).
    pictures: bool = True
    picture_deadline: float = 2.0
    max_picture: int = 8 * MIB
    fetch_concurrency: int = 4
    password: Secret | None = None  # the camera's (no credentials of its own)


@dataclass(frozen=True, slots=True)
class CameraHttpConfig:
    path: str = ""
    # Our field name -> the camera's field name, for firmware with a template editor.
    fields: Mapping[str, str] = field(default_factory=dict)
    # True when the [cameras.http] table was written out: the camera is expected to push.
    declared: bool = False


@dataclass(frozen=True, slots=True)
class CameraConfig:
    name: str
    host: str
    http_port: int = 80
    username: str = "admin"
    password: Secret = field(default_factory=lambda: Secret(""))
    tcp: TcpConfig | None = None
    rtsp: RtspConfig | None = None
    http: CameraHttpConfig = field(default_factory=CameraHttpConfig)
    onvif_events: OnvifEventsConfig | None = None

    @property
    def transports(self) -> frozenset[str]:
        """The transports this camera is expected to deliver over (for merging duplicates)."""
        out = set()
        if self.tcp is not None:
            out.add("tcp")
        if self.rtsp is not None:
            out.add("rtsp")
        if self.http.declared:
            out.add("http")
        if self.onvif_events is not None:
            out.add("onvif")
        return frozenset(out)


@dataclass(frozen=True, slots=True)
class HookConfig:
    target: str
    timeout: float = 5.0
    queue_size: int = 1000
    # Only events whose plate is on one of these lists (empty: every event).
    only_lists: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ListConfig:
    name: str
    plates: tuple[str, ...] = ()
    # A CSV file of plates (first column; an optional label in the second), reloaded
    # when it changes. Relative to the working directory.
    file: Path | None = None
    # Edits allowed after look-alike folding (0: exact and wildcard entries only).
    tolerance: int = 0
    lookalikes: bool = True
    # Only reads of these cameras can be on the list (empty: every camera's).
    cameras: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    # More brokers of a cluster, "HOST:PORT" each: tried in turn when one is away.
    failover: tuple[tuple[str, int], ...] = ()
    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    tls: bool = False
    ca_file: Path | None = None  # CA bundle for TLS; the system's when unset
    # Names this daemon to the broker and in its availability topic. Default
    # lprmeta-<host name>: stable across restarts (so the retained availability
    # topic is the same one); two daemons on one host must each set their own.
    client_id: str = ""
    prefix: str = "lprmeta"
    qos: int = 1
    retain: bool = False
    # "path": events carry picture paths (default); "binary": each picture is also
    # published to <prefix>/<camera>/<kind>/<role>.
    pictures: str = "path"
    # Events held while the broker is away; beyond that they are dropped and counted.
    buffer: int = 10_000
    # Hold them in this file instead (they survive a restart of the daemon).
    spool: Path | None = None
    keepalive: int = 30
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    only_lists: tuple[str, ...] = ()
    # Home Assistant MQTT discovery: a device per camera, an event entity per read, ...
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    # Which picture the Home Assistant image entity shows: the plate crop or the full one.
    discovery_picture: str = "plate"


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    url: str
    # HMAC-SHA256 key: X-Lprmeta-Signature: sha256=HMAC(secret, "<timestamp>.<body>").
    secret: Secret = field(default_factory=lambda: Secret(""))
    timeout: float = 5.0
    retries: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    queue_size: int = 1000
    pictures: bool = False  # multipart/form-data with the pictures
    headers: Mapping[str, Secret] = field(default_factory=dict)  # e.g. an API token
    only_lists: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    host: str = "127.0.0.1"
    port: int = 9108


def _hostname() -> str:
    import socket  # noqa: PLC0415

    return socket.gethostname() or "lprmeta"


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """The event history (``[store]``): SQLite in ``data_dir`` unless ``url`` names a
    PostgreSQL database (``postgresql://user:pw@127.0.0.1:5432/lprmeta``)."""

    # False: no history; keep_days and max_pictures_bytes still bound the snapshot directory.
    enabled: bool = True
    url: Secret | None = None
    data_dir: Path = Path("lprmeta-data")
    # Pictures older than this are removed (their rows say so); events outlive them.
    keep_days: float = 30.0
    keep_events_days: float = 365.0
    # The pictures of this daemon may take this much disk at most; None: no budget.
    max_pictures_bytes: int | None = None
    # Events written in one transaction at most (group commit).
    batch: int = 1000
    # Events kept on disk while the database is away, at most, and their bytes at most.
    spool_events: int = 1_000_000
    spool_bytes: int = 1024 * MIB
    retention_interval: float = 60.0
    # This daemon's name in a shared database (whose disk holds a picture).
    origin: str = field(default_factory=_hostname)
    # How long an HTTP push waits for its event to be committed before a 503.
    commit_timeout: float = 10.0
    # Group commit: how long the writer waits for more events before a small batch.
    commit_wait: float = 0.02

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "events.db"

    @property
    def spool_path(self) -> Path:
        return self.data_dir / "store-spool.jsonl"


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """The query API (``[api]``), on its own port; credentials: Basic, or a bearer token."""

    host: str = "127.0.0.1"
    port: int = 8081
    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    token: Secret = field(default_factory=lambda: Secret(""))

    @property
    def open(self) -> bool:
        return not (self.password or self.token)


@dataclass(frozen=True, slots=True)
class Config:
    output: OutputConfig = field(default_factory=OutputConfig)
    bus: BusConfig = field(default_factory=BusConfig)
    http: HttpConfig | None = None
    cameras: tuple[CameraConfig, ...] = ()
    hooks: tuple[HookConfig, ...] = ()
    lists: tuple[ListConfig, ...] = ()
    mqtt: MqttConfig | None = None
    webhooks: tuple[WebhookConfig, ...] = ()
    metrics: MetricsConfig | None = None
    store: StoreConfig = field(default_factory=StoreConfig)
    api: ApiConfig | None = None
    source: Path | None = None

    def camera(self, name: str) -> CameraConfig:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(name)

    def secrets(self) -> list[str]:
        """Every secret value in this config, for the log redactor (also as they look
        percent-encoded in a URL)."""
        values = [c.password for c in self.cameras]
        values += [c.rtsp.password for c in self.cameras if c.rtsp and c.rtsp.password]
        if self.http is not None:
            values.append(self.http.password)
        if self.mqtt is not None:
            values.append(self.mqtt.password)
        if self.api is not None:
            values += [self.api.password, self.api.token]
        if self.store.url is not None:
            values.append(self.store.url)
            pw = url_password(self.store.url.get())
            if pw:
                values.append(Secret(pw))
        for hook in self.webhooks:
            values += [hook.secret, *hook.headers.values()]
        # Credentials written into a URL are secrets too (an error text quoting the URL).
        urls = [h.url for h in self.webhooks]
        urls += [c.rtsp.url for c in self.cameras if c.rtsp is not None and c.rtsp.url]
        values += [Secret(pw) for pw in map(url_password, urls) if pw]
        out: set[str] = set()
        for secret in values:
            if secret:
                out.add(secret.get())
                out.add(quote(secret.get(), safe=""))
        return sorted(out)


def url_password(url: str) -> str | None:
    """The password written into a URL (``https://user:pw@host/``), decoded, if any."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


# --------------------------------------------------------------------------- loading

_T = TypeVar("_T")


class _Default:
    """``DEFAULT`` as a reader's default: the dataclass field's own default (``r.model``),
    so the parser cannot restate a default that has drifted from the dataclass."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final[Any] = _Default()


class _Reader:
    """Walks a TOML table, collecting one problem per bad key instead of stopping at the first."""

    def __init__(self, problems: list[ConfigProblem], table: Mapping[str, Any], path: str) -> None:
        self.problems = problems
        self.table = table
        self.path = path
        self.used: set[str] = set()
        self.model: type | None = None  # the dataclass being filled (for DEFAULT)

    def _default(self, name: str, given: Any) -> Any:
        if given is not DEFAULT:
            return given
        assert self.model is not None, f"{self.key(name)}: DEFAULT needs r.model"
        f = {f.name: f for f in dataclasses.fields(self.model)}[name]
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[operator]
        return value.get() if isinstance(value, Secret) else value

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def problem(self, name: str, message: str) -> None:
        self.problems.append(ConfigProblem(self.key(name), message))

    def _get(self, name: str, kinds: tuple[type, ...], what: str) -> Any:
        self.used.add(name)
        if name not in self.table:
            return None
        value = self.table[name]
        if isinstance(value, bool) and bool not in kinds:
            self.problem(name, f"must be {what}, not a boolean")
            return None
        if not isinstance(value, kinds):
            self.problem(name, f"must be {what}, not {_toml_type(value)}")
            return None
        return value

    def string(self, name: str, default: str) -> str:
        value = self._get(name, (str,), "a string")
        return str(self._default(name, default)) if value is None else str(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name, (bool,), "true or false")
        return bool(self._default(name, default)) if value is None else bool(value)

    def integer(self, name: str, default: int, lo: int, hi: int) -> int:
        value = self._get(name, (int,), "an integer")
        default = int(self._default(name, default))
        if value is None:
            return default
        if not lo <= value <= hi:
            self.problem(name, f"must be {lo}-{hi}")
            return default
        return int(value)

    def number(self, name: str, default: float, lo: float, hi: float) -> float:
        value = self._get(name, (int, float), "a number")
        default = float(self._default(name, default))
        if value is None:
            return default
        if not lo <= value <= hi:
            self.problem(name, f"must be between {lo:g} and {hi:g}")
            return default
        return float(value)

    def table_of(self, name: str) -> Mapping[str, Any] | None:
        return self._get(name, (dict,), "a table")  # type: ignore[no-any-return]

    def array(self, name: str) -> list[Any] | None:
        return self._get(name, (list,), "an array")  # type: ignore[no-any-return]

    def sub(self, name: str) -> _Reader | None:
        table = self.table_of(name)
        if table is None:
            return None
        return _Reader(self.problems, table, self.key(name))

    def finish(self) -> None:
        for name in self.table:
            if name not in self.used:
                self.problem(name, "unknown key")


def _toml_type(value: object) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a number",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def host_port(text: str) -> tuple[str, int] | None:
    """``"HOST:PORT"`` (``[::1]:1883`` for IPv6) -> (host, port); None when it is not one."""
    host, sep, port_text = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdecimal() or not 1 <= int(port_text) <= 65535:
        return None
    return host, int(port_text)


_HOST_PORT = 'must be "HOST:PORT" with a port 1-65535'


def _parse_listen(r: _Reader, default_host: str, default_port: int) -> tuple[str, int]:
    parsed = host_port(r.string("listen", f"{default_host}:{default_port}"))
    if parsed is None:
        r.problem("listen", _HOST_PORT)
        return default_host, default_port
    return parsed


def _parse_output(r: _Reader | None) -> OutputConfig:
    if r is None:
        return OutputConfig()
    r.model = OutputConfig
    out = OutputConfig(
        snapshot_dir=Path(r.string("snapshot_dir", "snapshots")),
        stdout=r.boolean("stdout", DEFAULT),
        queue_size=r.integer("queue_size", DEFAULT, 1, 10_000_000),
        queue_bytes=r.integer("queue_bytes", DEFAULT, 1024 * 1024, 64 * 1024 * MIB),
    )
    r.finish()
    return out


def _parse_bus(r: _Reader | None) -> BusConfig:
    if r is None:
        return BusConfig()
    r.model = BusConfig
    out = BusConfig(
        dedup_window=r.number("dedup_window", DEFAULT, 0.0, 3600.0),
        merge_wait=r.number("merge_wait", DEFAULT, 0.0, 60.0),
    )
    r.finish()
    return out


def _parse_http(r: _Reader | None) -> HttpConfig | None:
    if r is None:
        return None
    host, port = _parse_listen(r, "127.0.0.1", 8092)
    username = r.string("username", "")
    password = r.string("password", "")
    if bool(username) != bool(password):
        r.problem("password" if username else "username", "username and password go together")
    r.model = HttpConfig
    out = HttpConfig(
        host=host,
        port=port,
        username=username,
        password=Secret(password),
        max_body=r.integer("max_body", DEFAULT, 1024, 1024 * MIB),
        read_timeout=r.number("read_timeout", DEFAULT, 0.1, 3600.0),
        max_connections=r.integer("max_connections", DEFAULT, 1, 1_000_000),
        max_connections_per_address=r.integer("max_connections_per_address", DEFAULT, 1, 1_000_000),
        max_reads_per_address=r.integer("max_reads_per_address", DEFAULT, 1, 100_000),
        max_body_memory=r.integer("max_body_memory", DEFAULT, 1024, 64 * 1024 * MIB),
    )
    if out.max_body_memory < out.max_body:
        r.problem("max_body_memory", f"must be at least max_body ({out.max_body})")
    r.finish()
    return out


def _parse_tcp(r: _Reader) -> TcpConfig:
    register: tuple[str, ...] | None = None
    r.used.add("register")
    raw = r.table.get("register", "all")
    if raw == "all":
        register = None
    elif isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        bad = [x for x in raw if x not in REGISTER_FEATURES]
        if bad:
            r.problem(
                "register",
                f'unknown feature {bad[0]!r}; use {", ".join(REGISTER_FEATURES)} or "all"',
            )
        register = tuple(x for x in raw if x in REGISTER_FEATURES)
    else:
        r.problem("register", 'must be "all" or a list of feature names')
    r.model = TcpConfig
    backoff_initial = r.number("backoff_initial", DEFAULT, 0.01, 3600.0)
    backoff_max = r.number("backoff_max", DEFAULT, 0.01, 86_400.0)
    if backoff_max < backoff_initial:
        r.problem("backoff_max", "must not be below backoff_initial")
    out = TcpConfig(
        port=r.integer("port", DEFAULT, 1, 65535),
        register=register,
        connect_timeout=r.number("connect_timeout", DEFAULT, 0.1, 600.0),
        idle_timeout=r.number("idle_timeout", DEFAULT, 0.1, 86_400.0),
        max_packet=r.integer("max_packet", DEFAULT, 1024, 1024 * MIB),
        backoff_initial=backoff_initial,
        backoff_max=backoff_max,
        login_retry=r.number("login_retry", DEFAULT, 0.01, 86_400.0),
    )
    r.finish()
    return out


def _split_url_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``rtsp://u:p@host/x`` -> (``rtsp://host/x``, "u", "p"): secrets never stay in URLs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    clean = urlunsplit(parts._replace(netloc=hostport))
    return clean, unquote(user), unquote(password) if colon else None


def _parse_rtsp(r: _Reader) -> RtspConfig:
    url = r.string("url", "") or None
    user = password = None
    if url is not None:
        if not url.startswith(("rtsp://", "rtsps://")):
            r.problem("url", "must start with rtsp:// or rtsps://")
        url, user, password = _split_url_credentials(url)
        if not urlsplit(url).hostname:
            r.problem("url", "has no host")
    r.model = RtspConfig
    timeout = r.number("timeout", DEFAULT, 0.5, 3600.0)
    open_timeout = r.number("open_timeout", DEFAULT, 0.0, 600.0)
    if open_timeout >= timeout:
        r.problem("open_timeout", "must be below timeout")
    out = RtspConfig(
        url=url,
        username=user,
        password=Secret(password) if password is not None else None,
        refresh=r.number("refresh", DEFAULT, 0.0, 86_400.0),
        timeout=timeout,
        open_timeout=open_timeout,
        session_timeout=r.number("session_timeout", DEFAULT, 1.0, 86_400.0),
        **_metadata_settings(r),
    )
    r.finish()
    return out


def _metadata_settings(r: _Reader) -> dict[str, Any]:
    """What the metadata track and the event service share: retries, the document
    limit, and fetching the pictures the notifications point at."""
    return {
        "backoff_initial": r.number("backoff_initial", DEFAULT, 0.01, 3600.0),
        "backoff_max": r.number("backoff_max", DEFAULT, 0.01, 86_400.0),
        "auth_retry": r.number("auth_retry", DEFAULT, 0.01, 86_400.0),
        "max_document": r.integer("max_document", DEFAULT, 1024, 256 * MIB),
        "pictures": r.boolean("pictures", DEFAULT),
        "picture_deadline": r.number("picture_deadline", DEFAULT, 0.05, 600.0),
        "max_picture": r.integer("max_picture", DEFAULT, 1024, 1024 * MIB),
        "fetch_concurrency": r.integer("fetch_concurrency", DEFAULT, 1, 64),
    }


def _parse_onvif_events(r: _Reader) -> OnvifEventsConfig:
    r.model = OnvifEventsConfig
    out = OnvifEventsConfig(
        subscription=r.number("subscription", DEFAULT, 2.0, 86_400.0),
        pull_timeout=r.number("pull_timeout", DEFAULT, 0.5, 600.0),
        message_limit=r.integer("message_limit", DEFAULT, 1, 1000),
        timeout=r.number("timeout", DEFAULT, 0.5, 600.0),
        **_metadata_settings(r),
    )
    r.finish()
    return out


def _parse_camera_http(r: _Reader | None, name: str) -> CameraHttpConfig:
    if r is None:
        return CameraHttpConfig(path=f"/lpr/{name}")
    path = r.string("path", f"/lpr/{name}")
    if not path.startswith("/"):
        r.problem("path", 'must start with "/"')
    fields: dict[str, str] = {}
    f = r.sub("fields")
    if f is not None:
        for key, value in f.table.items():
            f.used.add(key)
            if not isinstance(value, str) or not value:
                f.problem(key, "must be a non-empty string (the camera's field name)")
            else:
                fields[key] = value
    out = CameraHttpConfig(path=path, fields=fields, declared=True)
    r.finish()
    return out


def _parse_camera(r: _Reader) -> CameraConfig | None:
    name = r.string("name", "")
    if not name:
        r.problem("name", "is required")
    elif not _NAME_RE.match(name):
        r.problem("name", "must be 1-64 letters, digits, '.', '_' or '-', starting alphanumeric")
    host = r.string("host", "")
    if not host:
        r.problem("host", "is required")
    tcp = r.sub("tcp")
    rtsp = r.sub("rtsp")
    onvif_events = r.sub("onvif_events")
    r.model = CameraConfig
    cam = CameraConfig(
        name=name,
        host=host,
        http_port=r.integer("http_port", DEFAULT, 1, 65535),
        username=r.string("username", DEFAULT),
        password=Secret(r.string("password", "")),
        tcp=_parse_tcp(tcp) if tcp is not None else None,
        rtsp=_parse_rtsp(rtsp) if rtsp is not None else None,
        http=_parse_camera_http(r.sub("http"), name),
        onvif_events=_parse_onvif_events(onvif_events) if onvif_events is not None else None,
    )
    r.finish()
    return cam


def _parse_hook(r: _Reader) -> HookConfig:
    target = r.string("target", "")
    if not target:
        r.problem("target", 'is required ("package.module:function")')
    elif not _HOOK_RE.match(target):
        r.problem("target", 'must look like "package.module:function"')
    r.model = HookConfig
    out = HookConfig(
        target=target,
        timeout=r.number("timeout", DEFAULT, 0.01, 3600.0),
        queue_size=r.integer("queue_size", DEFAULT, 1, 1_000_000),
        only_lists=_names(r, "only_lists"),
    )
    r.finish()
    return out


def _names(r: _Reader, key: str) -> tuple[str, ...]:
    value = r.array(key)
    if value is None:
        return ()
    if not all(isinstance(x, str) and x for x in value):
        r.problem(key, "must be a list of names")
        return ()
    return tuple(value)


def _parse_list(r: _Reader) -> ListConfig:
    name = r.string("name", "")
    if not _NAME_RE.match(name):
        r.problem("name", "is required: letters, digits, '.', '_' or '-'")
    plates = r.array("plates") or []
    if not all(isinstance(x, str) for x in plates):
        r.problem("plates", "must be a list of strings")
        plates = []
    file = r.string("file", "")
    if not plates and not file:
        r.problem("plates", 'give "plates" or "file" (or both)')
    r.model = ListConfig
    out = ListConfig(
        name=name,
        plates=tuple(plates),
        file=Path(file) if file else None,
        tolerance=r.integer("tolerance", DEFAULT, 0, 3),
        lookalikes=r.boolean("lookalikes", DEFAULT),
        cameras=_names(r, "cameras"),
    )
    r.finish()
    return out


def _parse_mqtt(r: _Reader | None) -> MqttConfig | None:
    if r is None:
        return None
    r.model = MqttConfig
    pictures = r.string("pictures", DEFAULT)
    if pictures not in ("path", "binary"):
        r.problem("pictures", 'must be "path" or "binary"')
    prefix = r.string("prefix", DEFAULT).strip("/")
    if not prefix or any(ch in prefix for ch in "#+"):
        r.problem("prefix", "must be a topic without wildcards")
    ca_file = r.string("ca_file", "")
    if ca_file and not Path(ca_file).is_file():
        r.problem("ca_file", f"no such file: {ca_file!r}")
    spool = r.string("spool", "")
    failover: list[tuple[str, int]] = []
    for i, entry in enumerate(r.array("failover") or []):
        parsed = host_port(str(entry))
        if parsed is None:
            r.problem(f"failover[{i}]", _HOST_PORT)
        else:
            failover.append(parsed)
    client_id = r.string("client_id", "")
    if any(ch in client_id for ch in "#+/"):
        r.problem("client_id", "is part of a topic: no '/', '#' or '+'")
    discovery_prefix = r.string("discovery_prefix", DEFAULT).strip("/")
    if not discovery_prefix or any(ch in discovery_prefix for ch in "#+"):
        r.problem("discovery_prefix", "must be a topic without wildcards")
    discovery_picture = r.string("discovery_picture", DEFAULT)
    if discovery_picture not in ("plate", "full"):
        r.problem("discovery_picture", 'must be "plate" or "full"')
    r.model = MqttConfig
    out = MqttConfig(
        host=r.string("host", DEFAULT),
        port=r.integer("port", DEFAULT, 1, 65535),
        failover=tuple(failover),
        username=r.string("username", DEFAULT),
        password=Secret(r.string("password", "")),
        tls=r.boolean("tls", DEFAULT),
        ca_file=Path(ca_file) if ca_file else None,
        client_id=client_id,
        prefix=prefix,
        qos=r.integer("qos", DEFAULT, 0, 2),
        retain=r.boolean("retain", DEFAULT),
        pictures=pictures,
        buffer=r.integer("buffer", DEFAULT, 1, 10_000_000),
        spool=Path(spool) if spool else None,
        keepalive=r.integer("keepalive", DEFAULT, 5, 3600),
        backoff_initial=r.number("backoff_initial", DEFAULT, 0.01, 3600.0),
        backoff_max=r.number("backoff_max", DEFAULT, 0.01, 86_400.0),
        only_lists=_names(r, "only_lists"),
        discovery=r.boolean("discovery", DEFAULT),
        discovery_prefix=discovery_prefix,
        discovery_picture=discovery_picture,
    )
    r.finish()
    return out


def _parse_webhook(r: _Reader) -> WebhookConfig:
    url = r.string("url", "")
    if not url.startswith(("http://", "https://")) or not urlsplit(url).hostname:
        r.problem("url", "must be an http:// or https:// URL")
    headers: dict[str, Secret] = {}
    h = r.sub("headers")
    if h is not None:
        for key, value in h.table.items():
            h.used.add(key)
            if not isinstance(value, str):
                h.problem(key, "must be a string")
            else:
                headers[key] = Secret(value)
    url_auth = url_password(url) is not None or bool(urlsplit(url).username)
    if url_auth and any(k.casefold() == "authorization" for k in headers):
        r.problem(
            "url",
            "has credentials and headers.Authorization is set too: which one is meant "
            "is ambiguous; keep one",
        )
    r.model = WebhookConfig
    out = WebhookConfig(
        url=url,
        secret=Secret(r.string("secret", "")),
        timeout=r.number("timeout", DEFAULT, 0.1, 600.0),
        retries=r.integer("retries", DEFAULT, 0, 100),
        backoff_initial=r.number("backoff_initial", DEFAULT, 0.01, 3600.0),
        backoff_max=r.number("backoff_max", DEFAULT, 0.01, 86_400.0),
        queue_size=r.integer("queue_size", DEFAULT, 1, 1_000_000),
        pictures=r.boolean("pictures", DEFAULT),
        headers=headers,
        only_lists=_names(r, "only_lists"),
    )
    r.finish()
    return out


def _parse_metrics(r: _Reader | None) -> MetricsConfig | None:
    if r is None:
        return None
    host, port = _parse_listen(r, "127.0.0.1", 9108)
    r.finish()
    return MetricsConfig(host=host, port=port)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
    "tb": 1000**4,
    "tib": 1024**4,
}


def parse_size(value: object) -> int | None:
    """``"20 GiB"``, ``"500 MB"``, ``1048576`` -> bytes; None when it is not a size."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value >= 0 else None
    if not isinstance(value, str):
        return None
    m = _SIZE.match(value)
    if m is None:
        return None
    return int(float(m[1]) * _SIZE_UNITS[(m[2] or "b").lower()])


def _parse_store(r: _Reader | None) -> StoreConfig:
    if r is None:
        return StoreConfig()
    r.model = StoreConfig
    enabled = r.boolean("enabled", DEFAULT)
    url = r.string("url", "")
    if url and not url.startswith(("postgresql://", "postgres://", "sqlite:///")):
        r.problem("url", 'must start with "postgresql://" or "sqlite:///"')
        url = ""
    r.used.add("max_pictures_bytes")
    budget: int | None = None
    if "max_pictures_bytes" in r.table:
        budget = parse_size(r.table["max_pictures_bytes"])
        if budget is None:
            r.problem("max_pictures_bytes", 'must be a size such as "20 GiB" or a number of bytes')
    origin = r.string("origin", "")
    out = StoreConfig(
        enabled=enabled,
        url=Secret(url) if url else None,
        data_dir=Path(r.string("data_dir", DEFAULT)),
        keep_days=r.number("keep_days", DEFAULT, 0.0, 36500.0),
        keep_events_days=r.number("keep_events_days", DEFAULT, 0.0, 36500.0),
        max_pictures_bytes=budget,
        batch=r.integer("batch", DEFAULT, 1, 100_000),
        spool_events=r.integer("spool_events", DEFAULT, 1, 100_000_000),
        spool_bytes=r.integer("spool_bytes", DEFAULT, MIB, 1024 * 1024 * MIB),
        retention_interval=r.number("retention_interval", DEFAULT, 0.01, 86400.0),
        commit_timeout=r.number("commit_timeout", DEFAULT, 0.1, 300.0),
        commit_wait=r.number("commit_wait", DEFAULT, 0.0, 1.0),
        **({"origin": origin} if origin else {}),
    )
    r.finish()
    if out.keep_events_days < out.keep_days:
        r.problem("keep_events_days", "must be at least keep_days (events outlive pictures)")
    return out


def _parse_api(r: _Reader | None) -> ApiConfig | None:
    if r is None:
        return None
    r.model = ApiConfig
    host, port = _parse_listen(r, "127.0.0.1", 8081)
    username = r.string("username", "")
    password = r.string("password", "")
    token = r.string("token", "")
    if password and not username:
        r.problem("username", "must be set with password")
    r.finish()
    return ApiConfig(
        host=host, port=port, username=username, password=Secret(password), token=Secret(token)
    )


def _array_of_tables(root: _Reader, name: str, parse: Callable[[_Reader], _T | None]) -> list[_T]:
    items = root.array(name)
    out: list[_T] = []
    for i, item in enumerate(items or []):
        key = f"{name}[{i}]"
        if not isinstance(item, dict):
            root.problems.append(ConfigProblem(key, "must be a table"))
            continue
        parsed = parse(_Reader(root.problems, item, key))
        if parsed is not None:
            out.append(parsed)
    return out


def parse_config(data: Mapping[str, Any], *, source: Path | None = None) -> Config:
    """Validate a parsed TOML document; raise :class:`ConfigError` listing every problem."""
    problems: list[ConfigProblem] = []
    root = _Reader(problems, data, "")
    output = _parse_output(root.sub("output"))
    bus = _parse_bus(root.sub("bus"))
    http = _parse_http(root.sub("http"))
    cameras = _array_of_tables(root, "cameras", _parse_camera)
    hooks = _array_of_tables(root, "hooks", _parse_hook)
    lists = _array_of_tables(root, "lists", _parse_list)
    mqtt = _parse_mqtt(root.sub("mqtt"))
    webhooks = _array_of_tables(root, "webhooks", _parse_webhook)
    metrics = _parse_metrics(root.sub("metrics"))
    store = _parse_store(root.sub("store"))
    api = _parse_api(root.sub("api"))
    root.finish()
    if api is not None and not store.enabled:
        problems.append(ConfigProblem("api", "needs the store ([store] enabled = true)"))

    list_names = [x.name for x in lists]
    for i, name in enumerate(list_names):
        if name in list_names[:i]:
            problems.append(ConfigProblem(f"lists[{i}].name", "duplicate list name"))
    filters = [(f"hooks[{i}]", h.only_lists) for i, h in enumerate(hooks)]
    filters += [(f"webhooks[{i}]", w.only_lists) for i, w in enumerate(webhooks)]
    filters += [("mqtt", mqtt.only_lists)] if mqtt is not None else []
    for where, names_used in filters:
        for name in names_used:
            if name not in list_names:
                problems.append(ConfigProblem(f"{where}.only_lists", f"no list named {name!r}"))
    camera_names = {c.name for c in cameras}
    for i, plate_list in enumerate(lists):
        for name in plate_list.cameras:
            if name not in camera_names:
                problems.append(ConfigProblem(f"lists[{i}].cameras", f"no camera named {name!r}"))

    names: dict[str, int] = {}
    paths: dict[str, int] = {}
    for i, cam in enumerate(cameras):
        if cam.name in names:
            problems.append(
                ConfigProblem(f"cameras[{i}].name", f"duplicate of cameras[{names[cam.name]}]")
            )
        names.setdefault(cam.name, i)
        if cam.http.path in paths:
            problems.append(
                ConfigProblem(
                    f"cameras[{i}].http.path", f"same path as cameras[{paths[cam.http.path]}]"
                )
            )
        paths.setdefault(cam.http.path, i)
    if problems:
        raise ConfigError(problems)
    return Config(
        output=output,
        bus=bus,
        http=http,
        cameras=tuple(cameras),
        hooks=tuple(hooks),
        lists=tuple(lists),
        mqtt=mqtt,
        webhooks=tuple(webhooks),
        metrics=metrics,
        store=store,
        api=api,
        source=source,
    )


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML file. Relative snapshot paths stay relative to the CWD."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise ConfigError([ConfigProblem("", f"{p}: cannot read: {exc.strerror}")]) from exc
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigProblem("", f"{p}: not UTF-8 text")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem("", f"{p}: invalid TOML: {exc}")]) from exc
    return parse_config(data, source=p)
