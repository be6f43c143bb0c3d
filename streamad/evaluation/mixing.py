"""Event mixing for evaluation and the demo (DCASE 2017 Task 2 style).

An event is scaled so that its energy over its active part, relative to the
background's energy over the same samples, equals the requested event-to-
background ratio (EBR, dB), then added to the background at a given position.
The active part is the span of 20 ms frames within 40 dB of the event's loudest frame.
"""
from __future__ import annotations

import numpy as np


def active_span(event: np.ndarray, sr: int, floor_db: float = 40.0) -> tuple[int, int]:
    """(first, last+1) sample of the event's active span."""
    hop = max(1, int(0.02 * sr))
    n = max(1, len(event) // hop)
    e = np.array([np.mean(event[i * hop:(i + 1) * hop] ** 2) for i in range(n)]) + 1e-20
    db = 10 * np.log10(e)
    on = np.nonzero(db >= db.max() - floor_db)[0]
    return int(on[0] * hop), int(min(len(event), (on[-1] + 1) * hop))


def trim_event(event: np.ndarray, sr: int, max_s: float | None = None) -> np.ndarray:
    a, b = active_span(event, sr)
    ev = event[a:b]
    if max_s is not None:
        ev = ev[: int(max_s * sr)]
    return ev


def mix_event(background: np.ndarray, event: np.ndarray, start: int, ebr_db: float) -> np.ndarray:
    """Background with ``event`` (already trimmed to its active span) added at sample ``start``."""
    out = background.astype(np.float32).copy()
    n = min(len(event), len(out) - start)
    if n <= 0:
        raise ValueError("event starts after the end of the background")
    ev = event[:n].astype(np.float64)
    bg_e = float(np.mean(out[start:start + n].astype(np.float64) ** 2)) + 1e-12
    ev_e = float(np.mean(ev ** 2)) + 1e-20
    gain = np.sqrt(bg_e / ev_e * 10 ** (ebr_db / 10))
    out[start:start + n] += (gain * ev).astype(np.float32)
    # No peak normalisation: rescaling the whole mixture would change the background
    # level (itself an anomaly). Float pipelines take values beyond +-1; int16 wire
    # encoding clips them.
    return out


def window_labels(starts: np.ndarray, ends: np.ndarray, events: list[tuple[float, float]],
                  min_overlap_s: float = 0.1) -> np.ndarray:
    """1 = window overlaps an event by >= min_overlap_s, 0 = no overlap, -1 = ambiguous (excluded)."""
    lab = np.zeros(len(starts), dtype=np.int8)
    for a, b in events:
        ov = np.minimum(ends, b) - np.maximum(starts, a)
        lab[(ov > 0) & (lab == 0)] = -1
        lab[ov >= min_overlap_s] = 1
    return lab
