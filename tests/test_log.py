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
