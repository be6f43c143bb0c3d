"""Scoring worker: windows from all streams of a pipeline -> scores, in device batches."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from streamad.pipeline import AnomalyModel
from streamad.windows.buffers import Window


@dataclass
class WorkerStats:
    windows: int = 0
    batches: int = 0
    seconds: float = 0.0


class Worker:
    def __init__(self, max_batch: int = 256):
        self.max_batch = max_batch
        self.stats = WorkerStats()

    def score(self, model: AnomalyModel, windows: list[Window]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One pass over ``windows`` (any streams, any count) in batches of ``max_batch``."""
        if not windows:
            return np.zeros(0), {}
        t = time.perf_counter()
        raw = model.frontend.stack(windows)
        scores, comps = model.score(raw, batch=self.max_batch)
        self.stats.windows += len(windows)
        self.stats.batches += -(-len(windows) // self.max_batch)
        self.stats.seconds += time.perf_counter() - t
        return scores, comps
