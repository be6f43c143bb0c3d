"""Publish audio as a live chunk stream in the wire format (``streamad replay``).

Records go out through :class:`Sender`, which survives a broker that goes away: records the
broker did not take are sent again (at-least-once; the daemon drops resent audio as duplicates)
with one line through ``on_wait`` when the wait starts, until ``timeout_s`` pass without a
broker (then :class:`~streamad.io.kafka.BrokerTimeout`).
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable

import numpy as np
from kafka import errors as kerr

from streamad.io.codecs import encode_audio
from streamad.io.kafka import BrokerTimeout, connect, producer


class Sender:
    """Send records, settle them every ``every`` records, re-send what the broker did not take."""

    def __init__(self, producer: Any, timeout_s: float | None = 300.0, every: int = 200,
                 on_wait: Callable[[str], None] | None = None):
        self.p, self.timeout_s, self.every, self.on_wait = producer, timeout_s, every, on_wait
        self.batch: list[list] = []  # [topic, key, value, headers, future or None]

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: list) -> None:
        self.batch.append([topic, key, value, headers, self._send(topic, key, value, headers)])
        if len(self.batch) >= self.every:
            self.settle()

    def _send(self, topic, key, value, headers) -> Any:
        try:
            return self.p.send(topic, key=key, value=value, headers=headers)
        except kerr.KafkaTimeoutError:  # no metadata: the broker is away
            return None

    def settle(self) -> None:
        """Block until every record was acknowledged, re-sending through broker outages."""
        t0, waiting = time.monotonic(), False
        while self.batch:
            for item in self.batch:
                if item[4] is None:
                    item[4] = self._send(*item[:4])
            try:
                self.p.flush(timeout=10)
            except kerr.KafkaTimeoutError:
                pass
            again = []
            for item in self.batch:
                try:
                    if item[4] is None:
                        raise kerr.KafkaTimeoutError("not sent")
                    item[4].get(timeout=0.1)
                except kerr.KafkaError as e:
                    if not (getattr(e, "retriable", False) or isinstance(e, kerr.KafkaTimeoutError)):
                        raise
                    item[4] = None
                    again.append(item)
            if again and len(again) < len(self.batch):
                t0 = time.monotonic()  # progress: the timeout counts from here
            self.batch = again
            if not again:
                break
            waited = time.monotonic() - t0
            if self.timeout_s is not None and waited > self.timeout_s:
                raise BrokerTimeout(f"no broker took the records for {waited:.0f} s")
            if not waiting and self.on_wait is not None:
                self.on_wait(f"broker unavailable; {len(again)} record(s) wait to be sent again")
            waiting = True
            time.sleep(1.0)
        if waiting and self.on_wait is not None:
            self.on_wait(f"broker reachable again after {time.monotonic() - t0:.1f} s")


def chunks(signal: np.ndarray, sample_rate: int, chunk_s: float) -> Iterable[tuple[int, np.ndarray]]:
    n = max(1, int(round(chunk_s * sample_rate)))
    for i in range(0, len(signal), n):
        yield i, signal[i:i + n]


def replay_signal(producer, topic: str, stream_id: str, signal: np.ndarray, sample_rate: int,
                  start_ts: float | None = None, speed: float = 1.0, chunk_s: float = 0.1,
                  dtype: str = "int16", on_chunk: Callable[[int, float, float], None] | None = None,
                  sender: Sender | None = None) -> float:
    """Send ``signal`` as consecutive chunks, paced at ``speed`` x real time (0 = as fast as possible).

    Capture timestamps run at the audio's own rate from ``start_ts`` (default: now),
    whatever the pacing. ``on_chunk(sample_index, capture_ts, wall_sent)`` is called per
    chunk. Returns the capture time just after the last sample.
    """
    t_wall0 = time.time()
    ts0 = t_wall0 if start_ts is None else start_ts
    out = sender or Sender(producer)
    for i, chunk in chunks(signal, sample_rate, chunk_s):
        if speed > 0:
            due = t_wall0 + i / sample_rate / speed
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
        ts = ts0 + i / sample_rate
        out.send(topic, *encode_audio(stream_id, chunk, sample_rate, ts, dtype))
        if on_chunk:
            on_chunk(i, ts, time.time())
    out.settle()
    return ts0 + len(signal) / sample_rate


def replay_series(producer, topic: str, stream_id: str, data, speed: float = 1.0, batch: int = 1,
                  shift_s: float = 0.0, on_record: Callable[[int, float], None] | None = None,
                  sender: Sender | None = None) -> int:
    """Send a series (``SeriesData``) as reading records, paced by its own timestamps.

    ``batch`` = 1 sends one reading per record (sensor style); > 1 sends the compact
    batch form (ECG style; needs an even rate). Timestamps keep their original text
    unless ``shift_s`` moves them. Returns the number of records sent.
    """
    from streamad.io.readings import encode_readings

    t = data.times + shift_s
    labels = data.time_labels if shift_s == 0 else None
    t_wall0, sent = time.time(), 0
    out = sender or Sender(producer, every=500)
    for i in range(0, len(t), batch):
        j = min(len(t), i + batch)
        if speed > 0:
            delay = t_wall0 + (t[i] - t[0]) / speed - time.time()
            if delay > 0:
                time.sleep(delay)
        key, value, headers = encode_readings(
            stream_id, t[i:j], data.values[i:j], data.channels, batch=j - i > 1,
            rate_hz=data.rate_hz if j - i > 1 else None, time_labels=labels[i:j] if labels else None)
        out.send(topic, key, value, headers)
        sent += 1
        if on_record:
            on_record(i, time.time())
    out.settle()
    return sent


def _check_args(stream_id: str, speed: float, audio: dict[str, Any], series: dict[str, Any]) -> None:
    """One-line InputError for replay settings that would send nothing a daemon can use."""
    from streamad.io.files import InputError

    def finite(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if not stream_id:
        raise InputError("replay: --stream-id must not be empty (it is every record's key)")
    if not finite(speed) or speed < 0:
        raise InputError(f"replay: --speed must be a number >= 0 (0 = as fast as possible), got {speed}")
    for opts in (audio, series):
        if opts.get("start_ts") is not None and not finite(opts["start_ts"]):
            raise InputError(f"replay: --start-ts must be a finite time in epoch seconds, got {opts['start_ts']}")
    sr, chunk = audio.get("sample_rate", 16000), audio.get("chunk_s", 0.1)
    if not isinstance(sr, int) or sr < 1000:
        raise InputError(f"replay: --sample-rate must be a whole number of Hz >= 1000, got {sr}")
    if not finite(chunk) or not 0.001 <= chunk <= 60:
        raise InputError(f"replay: --chunk-s must be 0.001-60 seconds of audio per record, got {chunk}")
    batch = series.get("batch", 1)
    if not isinstance(batch, int) or batch < 1:
        raise InputError(f"replay: --batch must be a whole number >= 1, got {batch}")


def replay_files(bootstrap: str, topic: str, stream_id: str, files: list[str], speed: float = 1.0,
                 broker_timeout_s: float | None = 300.0, say: Callable[[str], None] = print,
                 audio: dict[str, Any] | None = None, series: dict[str, Any] | None = None) -> None:
    """``streamad replay``: audio files (``audio``: sample_rate, chunk_s, dtype, start_ts) or CSV / WFDB
    series (``series``: batch, start_ts, the loader's column options) published as a live stream,
    waiting up to ``broker_timeout_s`` for an absent broker (BrokerTimeout)."""
    from pathlib import Path

    from streamad.config import KafkaConfig, check_topic
    from streamad.io.files import InputError, list_audio, load_audio

    check_topic(topic, "replay: --topic")
    _check_args(stream_id, speed, audio or {}, series or {})

    def make():
        # attempts of at most 10 s: a hung broker is reported (one line) soon, then waited for
        attempt_ms = int(min(10.0, broker_timeout_s or 10.0) * 1000)
        return connect(lambda: producer(KafkaConfig(broker_timeout_s=broker_timeout_s), bootstrap,
                                        bootstrap_timeout_ms=attempt_ms), "producer", broker_timeout_s, say=say)

    if all(Path(f).suffix.lower() in (".csv", ".hea") for f in files):  # numeric series
        from streamad.io.seriesfiles import load_series_files

        s = dict(series or {})
        batch, start_ts = s.pop("batch", 1), s.pop("start_ts", None)
        datas = load_series_files(files, **s)
        prod = make()
        try:
            for d in datas:
                shift = (start_ts - d.times[0]) if start_ts is not None else 0.0
                say(f"replay {d.name} ({len(d.times)} readings, {len(d.channels)} channels) -> {topic} [{stream_id}]")
                replay_series(prod, topic, stream_id, d, speed=speed, batch=batch, shift_s=shift,
                              sender=Sender(prod, broker_timeout_s, every=500, on_wait=say))
        finally:
            prod.close(timeout=10)
        return
    a = {"sample_rate": 16000, "chunk_s": 0.1, "dtype": "int16", "start_ts": None, **(audio or {})}
    paths = list_audio(files)
    if not paths:
        raise InputError("replay: no audio files given")
    prod = make()
    ts = a["start_ts"]
    try:
        for f in paths:
            sig = load_audio(f, a["sample_rate"])
            say(f"replay {f} ({len(sig) / a['sample_rate']:.1f} s) -> {topic} [{stream_id}]")
            ts = replay_signal(prod, topic, stream_id, sig, a["sample_rate"], start_ts=ts, speed=speed,
                               chunk_s=a["chunk_s"], dtype=a["dtype"],
                               sender=Sender(prod, broker_timeout_s, on_wait=say))
    finally:
        prod.close(timeout=10)
