"""Dead-letter records: a record the daemon cannot use, copied with the reason.

The copy keeps the original key, value and headers and adds three headers: ``dlq_reason`` (one
line), ``dlq_source`` (``topic/partition/offset``) and ``dlq_id``, a de-duplication key: the same
source record always gets the same id (a daemon that re-reads records after a restart re-sends
their dead letters with the same ids), a different record at a reused offset (a recreated topic)
a different one.

A copy that cannot be sent as it is (a header whose value is null, a record larger than the
producer's ``max_request_size``, one the broker refuses) and a record the Kafka client cannot
decode at all go as a **placeholder**: no original headers, the value a small JSON object, and
the headers ``dlq_reason``, ``dlq_source``, ``dlq_id``, ``dlq_placeholder`` (why the copy could
not be sent), ``dlq_original_size`` (bytes of the original value, or ``unknown``) and
``dlq_original_sha256`` (of the original value, or ``unknown``).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]
MAX_PLACEHOLDER_KEY = 1024


def source_of(record: Any) -> str:
    return f"{record.topic}/{record.partition}/{record.offset}"


def dead_letter_id(source: str, value: bytes | None) -> str:
    """Stable for (source, value): the de-duplication key of a dead letter."""
    h = hashlib.sha256(source.encode())
    h.update(b"\0" + (hashlib.sha256(value).digest() if value is not None else b"-"))
    return h.hexdigest()[:20]


def dead_letter(record: Any, reason: str) -> Record:
    """(key, value, headers) of the dead-letter copy of a consumed record."""
    src = source_of(record)
    headers = list(record.headers or []) + [
        ("dlq_reason", reason.encode("utf-8", "replace")),
        ("dlq_source", src.encode()),
        ("dlq_id", dead_letter_id(src, record.value).encode()),
    ]
    return record.key, record.value, headers


def placeholder(source: str, reason: str, why: str, key: Any = None, value: Any = None,
                known: bool = True) -> Record:
    """(key, value, headers) of a placeholder dead letter; ``known=False``: the original is unreadable."""
    size = str(len(value)) if known and isinstance(value, (bytes, bytearray)) else ("0" if known else "unknown")
    digest = hashlib.sha256(value).hexdigest() if known and isinstance(value, (bytes, bytearray)) else \
        (hashlib.sha256(b"").hexdigest() if known else "unknown")
    why = " ".join(why.split())[:300]
    dlq_id = dead_letter_id(source, bytes(value) if known and isinstance(value, (bytes, bytearray)) else None)
    body = {"dlq_placeholder": why, "reason": reason, "source": source, "size": size, "sha256": digest}
    headers = [("dlq_reason", reason.encode("utf-8", "replace")), ("dlq_source", source.encode()),
               ("dlq_id", dlq_id.encode()), ("dlq_placeholder", why.encode("utf-8", "replace")),
               ("dlq_original_size", size.encode()), ("dlq_original_sha256", digest.encode())]
    k = bytes(key) if isinstance(key, (bytes, bytearray)) and len(key) <= MAX_PLACEHOLDER_KEY else None
    return k, json.dumps(body, sort_keys=True).encode(), headers


def placeholder_for(record: Any, reason: str, why: str) -> Record:
    """The placeholder of a consumed record whose copy could not be sent."""
    return placeholder(source_of(record), reason, why, record.key, record.value)


def sendable(record: Any) -> str | None:
    """Why the client would refuse the copy as it is (None: it can be sent)."""
    for k, v in record.headers or ():
        if not isinstance(k, str):
            return f"header name {k!r:.40} is not text"
        if not isinstance(v, (bytes, bytearray)):
            return f"header {k[:40]!r} has a null value"
    return None
