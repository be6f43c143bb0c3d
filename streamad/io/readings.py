"""Wire format for numeric readings (series streams).

One Kafka record:

* **key**: the stream id (UTF-8, 1-256 characters).
* **value**: UTF-8 JSON in one of three forms:

  1. one reading::

         {"ts": 1583748873.0, "values": {"pressure": 0.38, "temperature": 79.3}}

  2. a batch on a regular grid (compact; use it for ECG and other fast signals);
     row ``i`` has time ``t0 + i / rate_hz``::

         {"t0": "2020-03-09T10:14:33Z", "rate_hz": 360, "channels": ["MLII", "V5"],
          "values": [[-0.145, -0.065], [-0.145, -0.065], ...]}

  3. a list of single readings::

         [{"ts": 1583748873, "values": {"a": 1.0}}, {"ts": 1583748874, "values": {"a": 1.2}}]

* **headers**: none required (``encode_readings`` sets ``content-type: application/json``).

Timestamps (``ts``, ``t0``) are epoch seconds (a JSON number, or a string holding one) or
ISO-8601 strings (``2020-03-09T10:14:33Z``, ``2020-03-09 10:14:33+01:00``; naive = UTC).
The timestamp text is kept as the reading's time label (alerts quote it back).

Values are JSON numbers. ``null``, ``NaN`` and ``Infinity`` are accepted and become NaN
(a missing reading: the window buffer interpolates short gaps). Channels the consumer
does not know are ignored; expected channels missing from a record are NaN.

A record is rejected (``PayloadError`` -> dead-letter topic, with the reason) when: the key
is missing / not UTF-8; the value is empty, not UTF-8 or not JSON; the JSON has none of
the three shapes; ``ts`` / ``values`` / ``t0`` / ``rate_hz`` / ``channels`` are missing or
malformed; a timestamp is unparseable or out of range (1900-9999); a value is a string,
boolean, list or object; a batch row has the wrong length; a batch / list is empty or has
more than 100000 rows; or none of the expected channels occurs in the record.
"""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from streamad.io.codecs import PayloadError, stream_id_of
from streamad.timelabels import MAX_TS, Readings, format_time_like, label_of, parse_time

MAX_ROWS = 100_000
MAX_CHANNELS = 1024
MAX_RATE_HZ = 1_000_000.0
_NUM = (int, float)


def _parse_ts(v: Any, what: str) -> tuple[float, str]:
    """(epoch seconds, label) or PayloadError naming ``what``."""
    try:
        t = parse_time(v)
    except ValueError as e:
        got = f", got {_short(v)}" if "must be" in str(e) else ""
        raise PayloadError(f"{what}: {e}{got}") from None
    return t, label_of(v, t)


# ---------------------------------------------------------------------------
# decoding
# ---------------------------------------------------------------------------
def _short(v: Any) -> str:
    r = json.dumps(v) if not isinstance(v, float) else repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _num(v: Any, what: str) -> float:
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, _NUM):
        raise PayloadError(f"{what}: value must be a number or null, got {_short(v)}")
    try:
        return float(v)
    except OverflowError:
        return math.inf  # becomes NaN like any non-finite value


def _single(obj: Any, what: str) -> tuple[float, str, dict[str, float]]:
    if not isinstance(obj, dict):
        raise PayloadError(f"{what}: expected an object with 'ts' and 'values', got {_short(obj)}")
    if "ts" not in obj:
        raise PayloadError(f"{what}: missing 'ts'")
    if "values" not in obj:
        raise PayloadError(f"{what}: missing 'values'")
    t, label = _parse_ts(obj["ts"], what)
    vals = obj["values"]
    if not isinstance(vals, dict):
        raise PayloadError(f"{what}: 'values' must be an object of channel: number, got {_short(vals)}")
    if len(vals) > MAX_CHANNELS:
        raise PayloadError(f"{what}: too many channels ({len(vals)} > {MAX_CHANNELS})")
    return t, label, {k: _num(v, f"{what} channel {k[:40]!r}") for k, v in vals.items()}


def _finish(sid: str, times: list[float] | np.ndarray, labels: list[str], x: np.ndarray,
            names: list[str], channels: list[str] | None) -> Readings:
    with np.errstate(over="ignore", invalid="ignore"):
        x = x.astype(np.float32)
    x[~np.isfinite(x)] = np.nan
    if channels is not None:
        pos = {n: i for i, n in enumerate(names)}
        present = [c for c in channels if c in pos]
        if not present:
            got = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
            raise PayloadError(f"none of the expected channels ({', '.join(channels[:10])}) "
                               f"in the record (got: {got or 'none'})")
        out = np.full((x.shape[0], len(channels)), np.nan, dtype=np.float32)
        for j, c in enumerate(channels):
            if c in pos:
                out[:, j] = x[:, pos[c]]
        x, names = out, list(channels)
    return Readings(sid, np.asarray(times, dtype=np.float64), x, names, labels)


def _decode_batch(sid: str, obj: dict, channels: list[str] | None) -> Readings:
    for k in ("rate_hz", "channels", "values"):
        if k not in obj:
            raise PayloadError(f"batch: missing {k!r}")
    t0, label0 = _parse_ts(obj["t0"], "batch 't0'")
    rate = obj["rate_hz"]
    if isinstance(rate, bool) or not isinstance(rate, _NUM) or not math.isfinite(float(rate)) \
            or not 0 < float(rate) <= MAX_RATE_HZ:
        raise PayloadError(f"batch: 'rate_hz' must be a number in (0, {MAX_RATE_HZ:g}], got {_short(rate)}")
    rate = float(rate)
    names = obj["channels"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise PayloadError(f"batch: 'channels' must be a non-empty list of names, got {_short(names)}")
    if len(names) > MAX_CHANNELS:
        raise PayloadError(f"batch: too many channels ({len(names)} > {MAX_CHANNELS})")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise PayloadError(f"batch: channel {dup[:40]!r} listed twice")
    rows = obj["values"]
    if not isinstance(rows, list):
        raise PayloadError(f"batch: 'values' must be a list of rows, got {_short(rows)}")
    if not rows:
        raise PayloadError("empty batch")
    if len(rows) > MAX_ROWS:
        raise PayloadError(f"too many rows ({len(rows)} > {MAX_ROWS})")
    width = len(names)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            got = f"{len(row)} values" if isinstance(row, list) else _short(row)
            raise PayloadError(f"batch row {i}: expected {width} values, got {got}")
    ok = (int, float, type(None))
    if not all(type(v) in ok for row in rows for v in row):
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                _num(v, f"batch row {i} channel {names[j][:40]!r}")
    try:
        x = np.array(rows, dtype=np.float64)
    except OverflowError:
        x = np.array([[_num(v, "") for v in row] for row in rows], dtype=np.float64)
    n = len(rows)
    times = t0 + np.arange(n, dtype=np.float64) / rate
    if times[-1] > MAX_TS:
        raise PayloadError("batch: timestamps run past the year 9999")
    labels = [label0] + [format_time_like(t, label0) for t in times[1:].tolist()]
    return _finish(sid, times, labels, x, list(names), channels)


def decode_readings(key: bytes | None, value: bytes | str | None, headers: Any = None,
                    channels: list[str] | None = None) -> Readings:
    """Decode one record; ``channels`` (the model's) fixes the column order. Raises PayloadError."""
    sid = stream_id_of(key)
    if value is None or len(value) == 0:
        raise PayloadError("empty payload")
    if not isinstance(value, str):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise PayloadError("value is not UTF-8") from None
    try:
        obj = json.loads(value)
    except json.JSONDecodeError as e:
        raise PayloadError(f"invalid JSON: {e.msg} (line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise PayloadError("invalid JSON: nested too deeply") from None

    if isinstance(obj, dict) and "t0" in obj:
        if "ts" in obj:
            raise PayloadError("ambiguous record: has both 'ts' and 't0'")
        return _decode_batch(sid, obj, channels)
    if isinstance(obj, dict) and ("ts" in obj or "values" in obj):
        t, label, vals = _single(obj, "reading")
        if not vals:
            raise PayloadError("reading: 'values' is empty")
        names = list(vals)
        x = np.array([[vals[n] for n in names]], dtype=np.float64)
        return _finish(sid, [t], [label], x, names, channels)
    if isinstance(obj, list):
        if not obj:
            raise PayloadError("empty batch")
        if len(obj) > MAX_ROWS:
            raise PayloadError(f"too many rows ({len(obj)} > {MAX_ROWS})")
        parsed = [_single(o, f"reading {i}") for i, o in enumerate(obj)]
        pos: dict[str, int] = {}
        for _t, _l, vals in parsed:
            for k in vals:
                if k not in pos:
                    pos[k] = len(pos)
                    if len(pos) > MAX_CHANNELS:
                        raise PayloadError(f"too many channels (> {MAX_CHANNELS})")
        if not pos:
            raise PayloadError("readings have no values")
        x = np.full((len(parsed), len(pos)), np.nan, dtype=np.float64)
        for i, (_t, _l, vals) in enumerate(parsed):
            for k, v in vals.items():
                x[i, pos[k]] = v
        return _finish(sid, [p[0] for p in parsed], [p[1] for p in parsed], x, list(pos), channels)
    raise PayloadError("unknown structure: expected {'ts', 'values'}, a batch {'t0', 'rate_hz', "
                       "'channels', 'values'} or a list of readings")


# ---------------------------------------------------------------------------
# encoding
# ---------------------------------------------------------------------------
def _json_values(values: np.ndarray) -> list[list[float | None]]:
    x = np.asarray(values)
    fin = np.isfinite(x)
    if x.dtype in (np.float32, np.float16):
        # shortest decimal that round-trips the float32 (0.1, not 0.10000000149011612)
        y = np.where(fin, x, 0).astype(str).astype(np.float64)
    else:
        y = x.astype(np.float64)
    rows = y.tolist()
    for i, j in zip(*np.nonzero(~fin)):
        rows[i][j] = None
    return rows


def encode_readings(stream_id: str, times: np.ndarray | list[float], values: np.ndarray,
                    channels: list[str], batch: bool = True, rate_hz: float | None = None,
                    time_labels: list[str] | None = None) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) for readings ``values`` (n, C) at ``times`` (epoch seconds).

    ``batch=True`` writes the compact batch form; the times must then be evenly spaced
    (``rate_hz`` defaults to the spacing; ValueError otherwise). ``batch=False`` writes one
    reading (n == 1) or a list of readings. Non-finite values are sent as null.
    ``time_labels`` (optional) are sent instead of the numeric times (``t0`` = the first).
    """
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    x = np.asarray(values)
    if x.ndim == 1:
        x = x[:, None] if len(channels) == 1 else x[None, :]
    n = len(t)
    if n == 0 or x.shape != (n, len(channels)):
        raise ValueError(f"values must have shape ({n}, {len(channels)}) with n > 0, got {x.shape}")
    if time_labels is not None and len(time_labels) != n:
        raise ValueError("time_labels must have one label per row")
    rows = _json_values(x)
    ts_out: list[Any] = list(time_labels) if time_labels is not None else t.tolist()
    if batch:
        if rate_hz is None:
            rate_hz = (n - 1) / (t[-1] - t[0]) if n > 1 and t[-1] > t[0] else 1.0
        grid = t[0] + np.arange(n) / rate_hz
        if n > 1 and np.max(np.abs(grid - t)) > 0.25 / rate_hz:
            raise ValueError("times are not evenly spaced at rate_hz; use batch=False")
        obj: Any = {"t0": ts_out[0], "rate_hz": float(rate_hz), "channels": list(channels), "values": rows}
    else:
        items = [{"ts": ts_out[i], "values": dict(zip(channels, rows[i]))} for i in range(n)]
        obj = items[0] if n == 1 else items
    payload = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    return stream_id.encode(), payload, [("content-type", b"application/json")]
