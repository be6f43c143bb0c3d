"""JSON-lines and text logging; the --log-format switch."""
from __future__ import annotations

import io
import json
import logging

import pytest

from streamad.daemon.logs import setup_logging


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def test_json_lines_have_the_fields_and_extras(restore_root):
    buf = io.StringIO()
    setup_logging("INFO", "json", stream=buf)
    log = logging.getLogger("streamad.daemon")
    log.info("stats %s", "x", extra={"records": 12, "pipeline": "audio", "obj": object()})
    log.debug("not at INFO")
    log.warning("two\nlines")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3
    docs = [json.loads(line) for line in lines]
    first = docs[0]
    assert first["level"] == "INFO" and first["logger"] == "streamad.daemon" and first["message"] == "stats x"
    assert first["records"] == 12 and first["pipeline"] == "audio" and first["obj"].startswith("<object")
    assert first["ts"].endswith("Z") and first["ts"][10] == "T" and len(first["ts"]) == 24
    assert docs[1]["message"] == "two\nlines"
    assert docs[2]["level"] == "ERROR" and "ValueError: boom" in docs[2]["exc"]
    assert not {"args", "msg", "levelno", "pathname"} & set(first)


def test_text_format_is_the_classic_line_and_a_second_call_switches(restore_root):
    buf = io.StringIO()
    setup_logging("info", "text", stream=buf)
    logging.getLogger("streamad.x").info("hello")
    assert buf.getvalue().rstrip().endswith("INFO streamad.x: hello")
    buf2 = io.StringIO()
    setup_logging("INFO", "json", stream=buf2)
    logging.getLogger("streamad.x").info("again")
    assert "again" not in buf.getvalue()
    assert json.loads(buf2.getvalue())["message"] == "again"
    assert sum(getattr(h, "_streamad", False) for h in logging.getLogger().handlers) == 1
    assert logging.getLogger("kafka").level == logging.WARNING


def test_bad_format_rejected():
    with pytest.raises(ValueError, match="text, json"):
        setup_logging("INFO", "xml")


def test_run_has_log_format_flag():
    from streamad.cli import build_parser

    a = build_parser().parse_args(["run", "--config", "c.yaml", "--log-format", "json"])
    assert a.log_format == "json"
    assert build_parser().parse_args(["run", "--config", "c.yaml"]).log_format is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--config", "c.yaml", "--log-format", "xml"])
