"""Logging set-up: the classic text lines, or JSON lines for log shippers (Loki, Elasticsearch, ...).

JSON format: one object per line with ``ts`` (UTC, ISO-8601 with milliseconds and ``Z``),
``level``, ``logger``, ``message``, then every ``extra={...}`` field given to the log call, and
``exc`` (the formatted traceback) when there is one. Values JSON cannot encode are written with
``str()``. Newlines inside the message stay escaped inside the string, so a line is a record.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from typing import IO

FORMATS = ("text", "json")
QUIET_KAFKA_LOGGERS = ("kafka.net", "kafka.conn", "kafka.client", "kafka.cluster", "kafka.coordinator",
                       "kafka.consumer.fetcher", "kafka.producer")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STANDARD and not k.startswith("_") and k not in out:
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "text", stream: IO[str] | None = None) -> None:
    """Configure the root logger once for the process: ``fmt`` is ``text`` or ``json``.

    A second call replaces the handler the first one installed (other handlers, e.g. pytest's,
    are left alone); the ``kafka`` loggers stay at WARNING, its connection-level ones are silent
    (the supervisor reports broker state changes) unless ``level`` is DEBUG.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler._streamad = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_streamad", False)]:
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(getattr(logging, str(level).upper(), logging.INFO))
    logging.getLogger("kafka").setLevel(logging.WARNING)
    # The client logs every failed connection attempt and request; the daemon's supervisor logs one
    # line per broker state change instead. --log-level DEBUG brings the client's lines back.
    quiet = logging.WARNING if root.level <= logging.DEBUG else logging.CRITICAL
    for name in QUIET_KAFKA_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
