"""Time labels: epoch seconds or ISO-8601 in, and back out in the style the producer used.

Shared by the readings wire format (``io/readings.py``), series files (``io/seriesfiles.py``)
and the reading buffers (``windows/readings.py``), which keep the text of each timestamp as its
*label* so alerts and ``streamad score`` quote times back exactly as they were written.
:class:`Readings` (decoded readings of one record) lives here too, so ``windows/`` needs nothing
from ``io/``.

Rules: a timestamp is a number of epoch seconds (or a string holding one) or an ISO-8601
string (``2020-03-09T10:14:33Z``, ``2020-03-09 10:14:33+01:00``; naive = UTC); it must be
finite and within the years 1900-9999 (:data:`MIN_TS`, :data:`MAX_TS`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import numpy as np

MIN_TS = -2_208_988_800.0  # 1900-01-01T00:00:00Z
MAX_TS = 253_402_300_799.0  # 9999-12-31T23:59:59Z


@dataclass
class Readings:
    """Numeric readings of one record: rows of channel values at their times."""

    stream_id: str
    times: np.ndarray  # float64 epoch seconds (n,)
    values: np.ndarray  # float32 (n, C); NaN where a channel is missing / null / non-finite
    channels: list[str]
    time_labels: list[str]  # timestamps as they appeared in the record (batch rows: derived)


def parse_time(value: Any) -> float:
    """Epoch seconds from a number or a string (epoch or ISO-8601; naive = UTC).

    Raises ``ValueError`` with a short reason for anything else, non-finite values and times
    outside 1900-9999.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError("timestamp must be a number or an ISO-8601 string")
    if isinstance(value, str):
        s = value.strip()
        try:
            t = float(s)
        except ValueError:
            t = _parse_iso(s)
    else:
        try:
            t = float(value)
        except OverflowError:
            raise ValueError("timestamp out of range (years 1900-9999)") from None
    if not math.isfinite(t):
        raise ValueError("timestamp is not finite")
    if not MIN_TS <= t <= MAX_TS:
        raise ValueError("timestamp out of range (years 1900-9999)")
    return t


def _parse_iso(s: str) -> float:
    try:
        if len(s) < 10 or not s[:4].isdigit():
            raise ValueError
        dt = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    except (ValueError, OverflowError):
        raise ValueError(f"bad timestamp {s[:40]!r} (expected epoch seconds or ISO-8601)") from None


def label_of(value: Any, t: float) -> str:
    """The label kept for a parsed timestamp: strings as written, numbers as shortest text."""
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, int) else repr(float(t))


def seconds_label(t: float) -> str:
    """Seconds as a short string: 0 -> '0', 1/360 -> '0.002778'."""
    s = f"{t:.6f}".rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


@lru_cache(maxsize=256)
def _style(template: str) -> tuple[str, str, Any, bool]:
    """('num'|'iso', separator + fraction spec, tzinfo or None, ends with Z) of a label."""
    s = template.strip()
    try:
        float(s)
        return ("num", "T", None, False)
    except ValueError:
        pass
    try:
        z = s.endswith(("Z", "z"))
        dt = datetime.fromisoformat(s[:-1] + "+00:00" if z else s)
    except ValueError:
        return ("iso", "T", timezone.utc, True)
    sep = s[10] if len(s) > 10 and s[10] in " T" else "T"
    frac = ""
    if "." in s[10:]:
        digits = s[s.index(".", 10) + 1:]
        n = len(digits) - len(digits.lstrip("0123456789"))
        frac = "milliseconds" if n == 3 else ("microseconds" if n == 6 else "")
    return ("iso", sep + frac, dt.tzinfo, z)


def format_time_like(t: float, template: str | None) -> str:
    """Format epoch seconds ``t`` in the style of ``template`` (another label of the stream).

    Numeric templates give seconds ('1583748873.5'); ISO templates give ISO-8601 with the same
    separator, time zone (naive stays naive, in UTC) and fraction digits. No template:
    ISO-8601 UTC with 'Z'.
    """
    kind, sep, tz, z = _style(template) if template else ("iso", "T", timezone.utc, True)
    if kind == "num":
        return seconds_label(t)
    dt = datetime.fromtimestamp(t, tz or timezone.utc)
    if tz is None:
        dt = dt.replace(tzinfo=None)
    out = dt.isoformat(sep=sep[0], timespec=sep[1:] or "auto")
    if z and out.endswith("+00:00"):
        out = out[:-6] + "Z"
    return out


def iso_utc(t: float) -> str:
    """ISO-8601 UTC with milliseconds and 'Z' (alert records)."""
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
