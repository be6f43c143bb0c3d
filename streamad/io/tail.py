"""``streamad alerts``: the alert topic as a table a person can read.

One line per record, in arrival order: an alert when an event opens, and its closing line
(duration, peak, windows over the threshold) when it ends; the evidence paths at the end of the
line. Records that are not streamad alerts are shown as such, never crash the tail.
"""
from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

HEADER = f"{'time (UTC)':<24} {'stream':<20} {'event':<8} {'score / threshold':<19} {'duration':<9} evidence"


def _num(v: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals; anything else (a wrong type in a foreign record) as "?"."""
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else "?"


def _text(v: Any, width: int | None = None) -> str:
    """A field as printable text: control characters (a newline, an escape sequence in a stream
    id) are shown escaped, so one record stays one line and nothing reaches the terminal raw."""
    t = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(v))
    return t[:width] if width else t


def format_record(rec: dict[str, Any]) -> str:
    kind, stream = rec.get("type", "alert"), _text(rec.get("stream_id", "?"), 20)
    ev = rec.get("evidence")
    ev = ev if isinstance(ev, dict) else {}
    if kind == "event_closed":
        when = _text(rec.get("event_end_iso", ""), 24)
        score = f"peak {_num(rec.get('peak_score'))}"
        dur = f"{_num(rec.get('duration_s'), 1)} s"
        evidence = ev.get("wav") or ev.get("png") or ""
        label = "closed"
    else:
        when = _text(rec.get("window_start_iso", ""), 24)
        score = f"{_num(rec.get('score'))} / {_num(rec.get('threshold'))}"
        dur, evidence, label = "open", ev.get("png", ""), "ALERT"
    return f"{when:<24} {stream:<20} {label:<8} {score:<19} {dur:<9} {_text(evidence)}".rstrip()


def tail_alerts(bootstrap: str, topic: str, from_beginning: bool = False, max_seconds: float | None = None,
                out: IO[str] = sys.stdout) -> int:
    """Print the topic's records until interrupted (or ``max_seconds``); returns how many."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    from streamad.io.kafka import BrokerTimeout

    try:
        c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                          auto_offset_reset="earliest", client_id="streamad-alerts")
    except KafkaError as e:  # no broker answers at the address (the client tried for its own timeout)
        raise BrokerTimeout(f"alerts: no broker at {bootstrap} ({type(e).__name__})") from None
    try:
        parts = c.partitions_for_topic(topic)
        if not parts:
            from streamad.io.files import InputError

            raise InputError(f"alerts: topic {topic!r} does not exist on {bootstrap}")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        (c.seek_to_beginning if from_beginning else c.seek_to_end)(*tps)
        print(HEADER, file=out, flush=True)
        n, t_end = 0, time.monotonic() + max_seconds if max_seconds else None
        while t_end is None or time.monotonic() < t_end:
            for recs in c.poll(timeout_ms=200).values():
                for r in recs:
                    print(_line(r.value), file=out, flush=True)
                    n += 1
        return n
    finally:
        c.close()


def _line(value: bytes | None) -> str:
    try:
        rec = json.loads(value or b"")
        if not isinstance(rec, dict):
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        return f"(not a streamad alert: {len(value or b'')} bytes)"
    return format_record(rec)
