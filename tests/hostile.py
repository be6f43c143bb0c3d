"""Generated hostile records for both decoders (seeded numpy RNG: fast enough for 10 000+ a run).

Each generator returns (key, value, headers) as a producer sends it; ``Null()`` header values go
on the wire as null (``robust_util.null_header_values``). The test predicts each record's fate
with the daemon's own decoders (the oracle) and the documented time rules.
"""
from __future__ import annotations

import json

import numpy as np

from streamad.io.codecs import encode_audio
from tests.robust_util import Null

SR = 16000
AUDIO_HEADERS = ("sample_rate", "dtype", "channels", "timestamp")
_GARBAGE = [b"", b"nan", b"inf", b"-inf", b"-1", b"0", b"1e300", b"-1e300", b"99999999999999999999", b"abc",
            b"\xff\xfe\x00", b"1.5", b" 16000 ", b"0x10", b"16000\x00", b"1e12", b"-5e12", "\u00e9".encode()]


def _pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


class AudioHostile:
    """Hostile audio chunks around a good stream ``good`` whose newest capture time the caller tracks."""

    KINDS = ("new-key", "bad-payload", "missing-header", "garbage-header", "null-header", "bad-dtype",
             "bad-channels", "bad-rate", "bad-timestamp", "float32-nonfinite", "float32-huge", "bad-key",
             "forged-good", "dup-headers", "oversize")
    WEIGHTS = (12, 6, 6, 10, 4, 4, 4, 4, 8, 3, 3, 4, 3, 3, 0.05)

    def __init__(self, seed: int, ts0: float, good: str = "mic"):
        self.rng, self.ts0, self.good, self.n = np.random.default_rng(seed), ts0, good, 0
        w = np.asarray(self.WEIGHTS, dtype=float)
        self.p = w / w.sum()

    def _chunk(self, key: str, ts: float, dtype: str = "int16", n: int = 800):
        x = (0.05 * self.rng.standard_normal(n)).astype(np.float32)
        return encode_audio(key, x, SR, ts, dtype)

    def make(self, kind: str | None = None, good_newest: float = 0.0):
        r, self.n = self.rng, self.n + 1
        kind = kind or str(r.choice(self.KINDS, p=self.p))
        ts = float(self.ts0 + r.uniform(-1e5, 1e5))
        key, value, headers = self._chunk(f"h-{self.n}", ts)
        h = dict(headers)
        if kind == "new-key":
            pass
        elif kind == "bad-payload":
            value = r.bytes(int(r.integers(1, 400)) * 2 + 1) if r.random() < 0.7 else b""
        elif kind == "missing-header":
            for name in r.choice(AUDIO_HEADERS, size=int(r.integers(1, 4)), replace=False):
                h.pop(str(name))
        elif kind == "garbage-header":
            h[str(r.choice(AUDIO_HEADERS))] = _pick(r, _GARBAGE)
        elif kind == "null-header":
            h[str(r.choice(AUDIO_HEADERS))] = Null()
        elif kind == "bad-dtype":
            h["dtype"] = _pick(r, [b"int8", b"float64", b"INT16", b"", b"\xff"])
        elif kind == "bad-channels":
            h["channels"] = _pick(r, [b"0", b"65", b"-1", b"x", b"3"])  # 3: 1600 bytes is not 3-channel frames
        elif kind == "bad-rate":
            h["sample_rate"] = _pick(r, [b"8000", b"44100", b"0", b"999", b"1000000000", b"16000.0"])
        elif kind == "bad-timestamp":
            h["timestamp"] = _pick(r, [b"nan", b"inf", b"-inf", b"1e300", b"-1e300", b"1e12", b"-5e12", b"abc", b"",
                                       b"253402300799.9"])
        elif kind in ("float32-nonfinite", "float32-huge"):
            key, value, headers = self._chunk(f"h-{self.n}", ts, "float32")
            h = dict(headers)
            x = np.frombuffer(value, "<f4").copy()
            x[int(r.integers(len(x)))] = _pick(r, [np.nan, np.inf, -np.inf]) if kind == "float32-nonfinite" \
                else float(_pick(r, [1e30, -3e38, 1e5, 1001.0]))
            value = x.tobytes()
        elif kind == "bad-key":
            key = _pick(r, [None, b"", b"\xff\xfe\xfd", b" ", ("k" * 300).encode()])
        elif kind == "forged-good":  # the good stream's key, far from its time: must not move it
            off = float(r.choice([-1, 1]) * r.uniform(30, 1e7))
            key, value, headers = self._chunk(self.good, good_newest + off)
            h = dict(headers)
        elif kind == "dup-headers":  # the last of two timestamp headers wins
            return key, value, [(n, v) for n, v in headers if n != "timestamp"] + \
                [("timestamp", b"garbage"), ("timestamp", h["timestamp"])], kind
        elif kind == "oversize":
            key, value, headers = self._chunk(f"h-{self.n}", ts, n=2_100_000)  # > 4 MiB
            h = dict(headers)
        order = [n for n, _ in headers] + [n for n in h if n not in dict(headers)]
        return key, value, [(n, h[n]) for n in order if n in h], kind


def _json_junk(r, depth=0):
    t = int(r.integers(7 if depth < 3 else 4))
    if t == 0:
        return None
    if t == 1:
        return bool(r.integers(2))
    if t == 2:
        return float(_pick(r, [0.0, -1.5, 1e308, 3.0, 1e20]))
    if t == 3:
        return _pick(r, ["", "x", "2020-13-45", "nan", "1e999"])
    if t == 4:
        return [_json_junk(r, depth + 1) for _ in range(int(r.integers(4)))]
    return {_pick(r, ["ts", "t0", "values", "rate_hz", "channels", "z"]): _json_junk(r, depth + 1)
            for _ in range(int(r.integers(4)))}


class SeriesHostile:
    """Hostile reading records around a good stream ``good`` (channels ``channels``)."""

    KINDS = ("new-key", "not-utf8", "empty", "bad-json", "junk-json", "bad-ts", "bad-value", "no-channels",
             "bad-batch", "forged-good", "bad-key", "deep-json")
    WEIGHTS = (10, 4, 2, 6, 10, 8, 6, 4, 8, 5, 3, 1)

    def __init__(self, seed: int, ts0: float, channels: list[str], good: str = "pump"):
        self.rng, self.ts0, self.ch, self.good, self.n = np.random.default_rng(seed), ts0, channels, good, 0
        w = np.asarray(self.WEIGHTS, dtype=float)
        self.p = w / w.sum()

    def _reading(self, ts):
        return {"ts": ts, "values": {c: float(self.rng.normal()) for c in self.ch}}

    def make(self, kind: str | None = None, good_newest: float = 0.0):
        r, self.n = self.rng, self.n + 1
        kind = kind or str(r.choice(self.KINDS, p=self.p))
        key = f"s-{self.n}".encode()
        ts = float(self.ts0 + r.uniform(-1e6, 1e9))
        obj = self._reading(ts)
        value = None
        if kind == "not-utf8":
            value = b"\xff\xfe" + r.bytes(int(r.integers(1, 50)))
        elif kind == "empty":
            value = b""
        elif kind == "bad-json":
            value = json.dumps(obj).encode()[: int(r.integers(1, 20))]
        elif kind == "junk-json":
            obj = _json_junk(r)
        elif kind == "bad-ts":
            obj["ts"] = _pick(r, ["soon", "1e20", True, None, [], "9999-12-31T23:59:60Z", "0000-01-01", -1e12])
        elif kind == "bad-value":
            obj["values"][self.ch[0]] = _pick(r, ["1.0", True, [1], {"a": 1}])
        elif kind == "no-channels":
            key, obj = self.good.encode(), {"ts": ts, "values": {"unknown": 1.0}}
        elif kind == "bad-batch":
            n = int(r.integers(1, 5))
            obj = {"t0": ts, "rate_hz": _pick(r, [1.0, 0, -1, "x", 1e9]),
                   "channels": _pick(r, [self.ch, [], ["a", "a"]]),
                   "values": [[1.0] * int(r.integers(0, len(self.ch) + 2)) for _ in range(n)]}
        elif kind == "forged-good":  # the good stream's key, far ahead of or behind its newest reading
            off = float(r.uniform(100, 1e7)) if r.random() < 0.5 else -float(r.uniform(100, 1e7))
            key, obj = self.good.encode(), self._reading(good_newest + off)
        elif kind == "bad-key":
            key = _pick(r, [None, b"", b"\xff\xfe"])
        elif kind == "deep-json":
            value = ("[" * 10000 + "]" * 10000).encode()
        if value is None:
            value = json.dumps(obj, allow_nan=True).encode()
        return key, value, [("content-type", b"application/json")], kind
