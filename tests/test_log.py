"""Logging: stderr only, secrets scrubbed everywhere, library logs through the same pipeline."""

from __future__ import annotations

import io
import json
import logging

from lprmeta.log import REDACTOR, configure_logging, get_logger, redact_text


def test_redact_text_masks_url_passwords_and_known_secrets() -> None:
    text = "rtsp://admin:p%40ss@cam:554/x failed; password p@ss; other http://u:@h/"
    assert redact_text(text, ["p@ss"]) == (
        "rtsp://admin:***@cam:554/x failed; password ***; other http://u:***@h/"
    )


def test_every_log_line_is_scrubbed_including_library_logs() -> None:
    buf = io.StringIO()
    configure_logging(fmt="json", stream=buf)
    REDACTOR.add(["Hunter2-secret"])
    get_logger("lprmeta.test").error(
        "boom",
        error=ValueError("rtsp://a:Hunter2-secret@h/ refused"),
        nested={"k": ["Hunter2-secret"]},
    )
    logging.getLogger("onvif").warning("GetStreamUri for http://admin:Hunter2-secret@cam/")
    logging.getLogger("zeep.transports").debug("every SOAP envelope, at debug")
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [line["logger"] for line in lines] == ["lprmeta.test", "onvif"]
    assert "Hunter2-secret" not in buf.getvalue()
    assert lines[1]["event"] == "GetStreamUri for http://admin:***@cam/"


def _fails_with_a_secret_in_a_local() -> None:
    url = "https://hook-user:Local-Secret-7@127.0.0.1/in"  # noqa: F841  # the frame local
    token = "Bearer Local-Token-9"  # noqa: F841
    raise RuntimeError("the sink failed")


def test_tracebacks_carry_no_frame_locals() -> None:
    """A traceback is logged with its frames but never their locals: a local can hold a
    URL with credentials or a header (structlog's defaults render them)."""
    for fmt in ("json", "console"):
        buf = io.StringIO()
        configure_logging(fmt=fmt, stream=buf)  # type: ignore[arg-type]
        try:
            _fails_with_a_secret_in_a_local()
        except RuntimeError as exc:
            get_logger("lprmeta.test").error("sink failed", exc_info=exc)
        out = buf.getvalue()
        assert "_fails_with_a_secret_in_a_local" in out  # the frame is there
        assert "Local-Secret-7" not in out and "Local-Token-9" not in out, fmt


def test_counted_problems_are_said_once_then_every_nth() -> None:
    from structlog.testing import capture_logs

    from lprmeta.log import log_counted, worth_saying

    assert [n for n in range(1, 301) if worth_saying(n)] == [1, 100, 200, 300]
    assert [n for n in range(3, 400, 3) if worth_saying(n, added=3)] == [3, 102, 201, 300]
    log = get_logger("lprmeta.test")
    with capture_logs() as logs:
        for n in range(1, 1001):
            log_counted(log, n, "warning", "repeated", step=500, message="a field named message")
    levels = [r["log_level"] for r in logs]
    assert levels.count("warning") == 3  # the others at debug, below the level in force


def test_an_embedding_application_keeps_its_own_logging(capsys: object) -> None:
    """get_logger does not configure structlog globally: an application that has not
    configured it still has it unconfigured afterwards; lprmeta's records go to stderr."""
    import structlog

    structlog.reset_defaults()
    get_logger("lprmeta.test").warning("from lprmeta", password_check="ok")
    assert not structlog.is_configured()
    out = capsys.readouterr()  # type: ignore[attr-defined]
    assert out.out == "" and "from lprmeta" in out.err
