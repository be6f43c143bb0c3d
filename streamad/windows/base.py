"""What every input kind's windowing shares: the Window record, the Frontend protocol, framing.

A *window* is a fixed-length stretch of one stream (audio samples or numeric readings) on an
absolute time grid; a *front end* turns a batch of windows into standardised detector input
(32x32 patches) with torch ops, so it runs on the scoring device, and keeps its fitted
statistics as tensors stored with the model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

TopicPartition = tuple[str, int]


@dataclass
class Window:
    stream_id: str
    start: float  # capture time of the first sample / reading (epoch seconds)
    end: float  # capture time just after the last sample / of the last reading
    data: np.ndarray  # audio: float32 (samples,); series: float32 (readings, channels)
    sources: dict[TopicPartition, tuple[int, int]] = field(default_factory=dict)  # tp -> (min, max) offset
    start_label: str | None = None  # series: first timestamp as it appeared in the input
    end_label: str | None = None
    key: str = ""  # stable id of this window (stream + grid position)


class Frontend(Protocol):
    """Windows (B, window[, C]) -> standardised detector input (B, 1, 32, 32)."""

    window: int  # samples / readings per window (as cut from the stream)
    lead: int  # of those, context before the span the window stands for (its time, labels, alerts)
    hop: int  # samples / readings between window starts (scoring)
    rate: float  # samples / readings per second

    def train_hop(self, cfg: Any) -> int: ...
    def fit(self, windows: np.ndarray) -> None: ...
    def transform(self, x: torch.Tensor) -> torch.Tensor: ...
    def state(self) -> dict[str, torch.Tensor]: ...
    def load_state(self, state: dict[str, torch.Tensor]) -> None: ...
    def describe(self) -> dict[str, Any]: ...


def stack_windows(windows: list[Window]) -> np.ndarray:
    """(B, window[, C]) float32 batch of the windows' data."""
    return np.stack([w.data for w in windows]).astype(np.float32, copy=False)


def frame_windows(signal: np.ndarray, window: int, hop: int) -> np.ndarray:
    """All full windows along axis 0: (T, ...) -> (N, window, ...) float32 copy."""
    return windows_at(signal, window, window_starts(len(signal), window, hop))


def window_starts(n: int, window: int, hop: int) -> np.ndarray:
    """Start positions of all full windows of a signal of n samples / readings."""
    if n < window:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n - window + 1, hop, dtype=np.int64)


def windows_at(signal: np.ndarray, window: int, starts: np.ndarray) -> np.ndarray:
    """The windows ``signal[s:s + window]`` for each start s: (N, window, ...) float32 copy."""
    x = np.asarray(signal)
    if len(starts) == 0:
        return np.zeros((0, window) + x.shape[1:], dtype=np.float32)
    idx = np.asarray(starts, dtype=np.int64)[:, None] + np.arange(window)[None, :]
    return np.asarray(x[idx], dtype=np.float32)
