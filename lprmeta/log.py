"""Logging: structlog to stderr, human-readable or JSON, with secrets scrubbed.

stdout belongs to events; nothing here ever writes to it. The redactor runs on
every log record: it replaces each configured secret and the password part of
any URL (``rtsp://user:pw@host``) wherever they occur in a value, so an
exception text from FFmpeg or aiohttp that quotes a URL cannot leak a password.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Literal, TextIO

import structlog

__all__ = ["Redactor", "configure_logging", "get_logger", "log_counted", "redact_text"]

_USERINFO = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]*)@"
)
MASK = "***"


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret and every URL password replaced by ``***``."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, MASK)
    return text


class Redactor:
    """A structlog processor; ``add`` secrets as they become known (config load)."""

    def __init__(self) -> None:
        # Longest first, so a secret that contains another is masked whole.
        self._secrets: list[str] = []

    def add(self, secrets: Iterable[str]) -> None:
        merged = set(self._secrets) | {s for s in secrets if s}
        self._secrets = sorted(merged, key=len, reverse=True)

    def clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact_text(value, self._secrets)
        if isinstance(value, BaseException):
            return redact_text(f"{type(value).__name__}: {value}", self._secrets)
        if isinstance(value, dict):
            return {k: self.clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.clean(v) for v in value]
        return value

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            if key == "exc_info":
                continue
            event_dict[key] = self.clean(value)
        return event_dict


REDACTOR = Redactor()


class _RedactRendered:
    """Last-resort pass over the rendered line (tracebacks rendered by structlog included)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
        rendered = self.inner(logger, method, event_dict)
        return REDACTOR.clean(str(rendered))  # type: ignore[no-any-return]


class _StdlibToStructlog(logging.Handler):
    """Libraries (zeep, onvif, aiohttp) log through :mod:`logging`: send their records
    through the same pipeline, so they are formatted alike and redacted too."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            method = record.levelname.lower()
            log = get_logger(record.name)  # never structlog's default, which prints to stdout
            getattr(log, method if method in _LEVELS else "warning")(record.getMessage())
        except Exception:  # noqa: BLE001  # logging must never raise into the caller
            self.handleError(record)


_LEVELS = {"debug", "info", "warning", "error", "critical"}


def _processors(out: TextIO, fmt: Literal["auto", "console", "json"]) -> list[Any]:
    """lprmeta's pipeline: level, UTC time, secrets scrubbed, rendered for ``out``."""
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    renderer: Any
    # Tracebacks never carry frame locals: a local can hold a password (a URL with
    # credentials, a header), and structlog's defaults render locals (dict tracebacks,
    # and the console's rich/better-exceptions formatters).
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
        exc: list[Any] = [
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        ]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        exc = []
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        REDACTOR,
        *exc,
        _RedactRendered(renderer),
    ]


def configure_logging(
    *,
    fmt: Literal["auto", "console", "json"] = "auto",
    level: str = "info",
    stream: TextIO | None = None,
) -> None:
    """Send every log record to ``stream`` (stderr by default): console on a terminal, else
    JSON. For ``lprmeta``'s command line; an application embedding lprmeta keeps its own
    structlog configuration and need not call this."""
    out = stream if stream is not None else sys.stderr
    global _SETUP  # noqa: PLW0603  # what worker processes are configured with
    _SETUP = (fmt, level)
    structlog.configure(
        processors=_processors(out, fmt),
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    root.handlers[:] = [_StdlibToStructlog()]
    # Libraries are chatty below WARNING (zeep logs every SOAP message at DEBUG).
    root.setLevel(max(logging.WARNING, logging.getLevelNamesMapping()[level.upper()]))


_SETUP: tuple[str, str] = ("json", "info")


def logging_setup() -> tuple[str, str]:
    """The format and level :func:`configure_logging` was last called with (worker
    processes log alike)."""
    return _SETUP


def worth_saying(n: int, *, step: int = 100, added: int = 1) -> bool:
    """Whether a counter that just reached ``n`` (by ``added``) is worth a log line: the
    first time, and each time it passes a multiple of ``step``."""
    return n == added or n // step > (n - added) // step


def log_counted(
    log: Any, n: int, level: str, message: str, /, *, step: int = 100, added: int = 1, **kw: Any
) -> None:
    """Log a counted, repeated problem once, then every ``step``th time, at ``level``; the
    others at debug. ``n`` is the counter after this occurrence (``stats.inc``'s answer)."""
    getattr(log, level if worth_saying(n, step=step, added=added) else "debug")(message, **kw)


def get_logger(name: str = "lprmeta", **initial: Any) -> Any:
    """A structlog logger bound to ``logger=name`` and ``initial`` values.

    When structlog is configured (``lprmeta`` itself, or an application that set it
    up), its configuration is used. When it is not, lprmeta does not configure it
    globally behind the application's back: its own records go to stderr through a
    private pipeline (structlog's default would print to stdout, which is for events).
    """
    if structlog.is_configured():
        return structlog.get_logger(name).bind(logger=name, **initial)
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        processors=_processors(sys.stderr, "auto"),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    ).bind(logger=name, **initial)
