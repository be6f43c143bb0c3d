"""Wire formats: audio chunks, numeric readings and alert records.

Audio chunk (one Kafka record):
  key      stream id (UTF-8)
  value    raw PCM, little-endian, interleaved channels; int16 or float32
  headers  sample_rate (int, ASCII), dtype ("int16" | "float32"), channels (int, ASCII),
           timestamp (capture time of the first sample, epoch seconds, ASCII float)

Anything that does not decode raises ``PayloadError`` with a one-line reason; the
daemon sends the record to the dead-letter topic with that reason in a header.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamad.timelabels import MAX_TS, parse_time


class PayloadError(ValueError):
    """A record that cannot be decoded; the message is the dead-letter reason."""


DTYPES = {"int16": np.dtype("<i2"), "float32": np.dtype("<f4")}
MAX_CHANNELS = 64
# float32 PCM is nominally within [-1, 1]; a sample beyond this (60 dB above full scale) is not
# audio, and squared by the spectrogram it overflows float32 into NaN scores.
MAX_FLOAT_SAMPLE = 1000.0


@dataclass
class AudioChunk:
    stream_id: str
    samples: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int
    timestamp: float  # capture time of samples[0], epoch seconds


def _headers(headers: Any) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for k, v in headers or ():
        if isinstance(k, bytes):
            k = k.decode("utf-8", "replace")
        out[k] = v if isinstance(v, bytes) else (b"" if v is None else str(v).encode())
    return out


def stream_id_of(key: bytes | None) -> str:
    if not key:
        raise PayloadError("missing key (stream id)")
    try:
        sid = key.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("key is not UTF-8") from None
    if not sid.strip() or len(sid) > 256:
        raise PayloadError("key (stream id) must be 1-256 characters")
    return sid


def _header_num(h: dict[str, bytes], name: str, kind: type) -> Any:
    if name not in h:
        raise PayloadError(f"missing header {name!r}")
    raw = h[name].decode("ascii", "replace").strip()
    try:
        v = kind(raw)
    except ValueError:
        raise PayloadError(f"header {name!r} is not a valid {kind.__name__}: {raw[:40]!r}") from None
    if kind is float and not math.isfinite(v):
        raise PayloadError(f"header {name!r} is not finite")
    return v


def encode_audio(stream_id: str, samples: np.ndarray, sample_rate: int, timestamp: float,
                 dtype: str = "int16") -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) for one chunk. ``samples``: float in [-1,1], shape (n,) or (n, ch)."""
    x = np.asarray(samples, dtype=np.float32)
    channels = 1 if x.ndim == 1 else x.shape[1]
    if dtype == "int16":
        payload = (np.clip(x, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
    elif dtype == "float32":
        payload = x.astype("<f4").tobytes()
    else:
        raise ValueError(f"dtype must be int16 or float32, got {dtype!r}")
    headers = [("sample_rate", str(int(sample_rate)).encode()), ("dtype", dtype.encode()),
               ("channels", str(channels).encode()), ("timestamp", repr(float(timestamp)).encode())]
    return stream_id.encode(), payload, headers


def decode_audio(key: bytes | None, value: bytes | None, headers: Any) -> AudioChunk:
    sid = stream_id_of(key)
    h = _headers(headers)
    sr = _header_num(h, "sample_rate", int)
    if not 1000 <= sr <= 384000:
        raise PayloadError(f"header 'sample_rate' out of range: {sr}")
    if "dtype" not in h:
        raise PayloadError("missing header 'dtype'")
    dtype_name = h["dtype"].decode("ascii", "replace")
    if dtype_name not in DTYPES:
        raise PayloadError(f"header 'dtype' must be int16 or float32, got {dtype_name[:20]!r}")
    ch = _header_num(h, "channels", int)
    if not 1 <= ch <= MAX_CHANNELS:
        raise PayloadError(f"header 'channels' out of range: {ch}")
    ts = _timestamp(h)
    if not value:
        raise PayloadError("empty audio payload")
    dt = DTYPES[dtype_name]
    frame = dt.itemsize * ch
    if len(value) % frame:
        raise PayloadError(f"payload of {len(value)} bytes is not a whole number of "
                           f"{ch}-channel {dtype_name} frames")
    x = np.frombuffer(value, dtype=dt).reshape(-1, ch)
    if dtype_name == "int16":
        x = np.multiply(x, np.float32(1.0 / 32768.0), dtype=np.float32)  # = astype(float32) / 32768, one pass
    else:
        if not np.isfinite(x).all():
            raise PayloadError("float32 payload contains NaN or Inf")
        peak = float(np.abs(x).max())
        if peak > MAX_FLOAT_SAMPLE:
            raise PayloadError(f"float32 sample out of range ({peak:.3g}; |x| must be <= {MAX_FLOAT_SAMPLE:g})")
        x = x.astype(np.float32)
    if ts + len(x) / sr > MAX_TS:
        raise PayloadError("header 'timestamp' out of range: the chunk runs past the year 9999")
    mono = x.mean(axis=1) if ch > 1 else x[:, 0]
    return AudioChunk(sid, np.ascontiguousarray(mono, dtype=np.float32), sr, ts)


def _timestamp(h: dict[str, bytes]) -> float:
    """The ``timestamp`` header: epoch seconds within 1900-9999 (the readings' rule, ``parse_time``)."""
    if "timestamp" not in h:
        raise PayloadError("missing header 'timestamp'")
    raw = h["timestamp"].decode("ascii", "replace").strip()
    try:
        float(raw)
    except ValueError:
        raise PayloadError(f"header 'timestamp' is not a valid float: {raw[:40]!r}") from None
    try:
        return parse_time(raw)
    except ValueError as e:
        raise PayloadError(f"header 'timestamp' {str(e).removeprefix('timestamp ')}: {raw[:40]!r}") from None


def encode_alert(alert: dict[str, Any]) -> tuple[bytes, bytes]:
    return alert["stream_id"].encode(), json.dumps(alert, sort_keys=True).encode()
