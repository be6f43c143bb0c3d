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
