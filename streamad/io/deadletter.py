"""Dead-letter records: a record the daemon cannot use, copied with the reason.

The copy keeps the original key, value and headers and adds two headers: ``dlq_reason`` (one
line) and ``dlq_source`` (``topic/partition/offset``).
"""
from __future__ import annotations

from typing import Any


def dead_letter(record: Any, reason: str) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """(key, value, headers) of the dead-letter copy of a consumed record."""
    headers = list(record.headers or []) + [
        ("dlq_reason", reason.encode("utf-8", "replace")),
        ("dlq_source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
    ]
    return record.key, record.value, headers
