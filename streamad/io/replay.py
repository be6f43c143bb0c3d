"""Publish audio as a live chunk stream in the wire format (``streamad replay``)."""
from __future__ import annotations

import time
from typing import Callable, Iterable

import numpy as np

from streamad.io.codecs import encode_audio


def chunks(signal: np.ndarray, sample_rate: int, chunk_s: float) -> Iterable[tuple[int, np.ndarray]]:
    n = max(1, int(round(chunk_s * sample_rate)))
    for i in range(0, len(signal), n):
        yield i, signal[i:i + n]


def replay_signal(producer, topic: str, stream_id: str, signal: np.ndarray, sample_rate: int,
                  start_ts: float | None = None, speed: float = 1.0, chunk_s: float = 0.1,
                  dtype: str = "int16", on_chunk: Callable[[int, float, float], None] | None = None) -> float:
    """Send ``signal`` as consecutive chunks, paced at ``speed`` x real time (0 = as fast as possible).

    Capture timestamps run at the audio's own rate from ``start_ts`` (default: now),
    whatever the pacing. ``on_chunk(sample_index, capture_ts, wall_sent)`` is called per
    chunk. Returns the capture time just after the last sample.
    """
    t_wall0 = time.time()
    ts0 = t_wall0 if start_ts is None else start_ts
    futures = []
    for i, chunk in chunks(signal, sample_rate, chunk_s):
        if speed > 0:
            due = t_wall0 + i / sample_rate / speed
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
        ts = ts0 + i / sample_rate
        key, value, headers = encode_audio(stream_id, chunk, sample_rate, ts, dtype)
        futures.append(producer.send(topic, key=key, value=value, headers=headers))
        if on_chunk:
            on_chunk(i, ts, time.time())
        if len(futures) >= 200:
            _settle(producer, futures)
    _settle(producer, futures)
    return ts0 + len(signal) / sample_rate


def _settle(producer, futures: list) -> None:
    producer.flush(timeout=30)
    for f in futures:
        f.get(timeout=30)
    futures.clear()


def replay_series(producer, topic: str, stream_id: str, data, speed: float = 1.0, batch: int = 1,
                  shift_s: float = 0.0, on_record: Callable[[int, float], None] | None = None) -> int:
    """Send a series (``SeriesData``) as reading records, paced by its own timestamps.

    ``batch`` = 1 sends one reading per record (sensor style); > 1 sends the compact
    batch form (ECG style; needs an even rate). Timestamps keep their original text
    unless ``shift_s`` moves them. Returns the number of records sent.
    """
    from streamad.io.readings import encode_readings

    t = data.times + shift_s
    labels = data.time_labels if shift_s == 0 else None
    t_wall0, futures, sent = time.time(), [], 0
    for i in range(0, len(t), batch):
        j = min(len(t), i + batch)
        if speed > 0:
            delay = t_wall0 + (t[i] - t[0]) / speed - time.time()
            if delay > 0:
                time.sleep(delay)
        key, value, headers = encode_readings(
            stream_id, t[i:j], data.values[i:j], data.channels, batch=j - i > 1,
            rate_hz=data.rate_hz if j - i > 1 else None, time_labels=labels[i:j] if labels else None)
        futures.append(producer.send(topic, key=key, value=value, headers=headers))
        sent += 1
        if on_record:
            on_record(i, time.time())
        if len(futures) >= 500:
            _settle(producer, futures)
    _settle(producer, futures)
    return sent
