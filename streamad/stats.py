"""Robust location and scale: one rule for the score calibration and the series front end."""
from __future__ import annotations

import numpy as np

IQR_TO_SIGMA = 1.349  # IQR of a standard normal


def robust_center_scale(values: np.ndarray, fallback: float | None = None) -> tuple[float, float]:
    """(median, IQR / 1.349) of the finite values, with fallbacks for degenerate data.

    A zero IQR (quantised or almost constant data) falls back to the standard deviation; a
    constant sample to ``fallback`` (default: 1 % of |median|, at least 1e-3), so a later change
    stays visible but finite. No finite value at all: (0, 1).
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    q25, q50, q75 = np.percentile(v, [25, 50, 75])
    tiny = 1e-9 * max(1.0, abs(q50))
    scale = (q75 - q25) / IQR_TO_SIGMA
    if not scale > tiny:
        scale = float(v.std())
    if not scale > tiny:
        scale = fallback if fallback is not None else max(0.01 * abs(q50), 1e-3)
    return float(q50), float(scale)
