"""Tabular front end: table rows -> standardised feature vectors (B, D).

A "window" is one row (``window = hop = 1``; ``rate`` = 1 row per second, so the
calibration's false-alert target reads as alerts per 3 600 rows). ``fit`` learns a centre
and scale per feature from the training rows (``scaling: standard``: mean / standard
deviation; ``minmax``: minimum / range; ``none``); a constant feature gets scale 1. Stored
with the model as tensors. Missing values (NaN) map to the centre (0 after scaling).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


class TabularFrontend:
    kind = "tabular"
    window = 1
    lead = 0
    hop = 1
    rate = 1.0

    def __init__(self, cfg: Any):
        self.cfg = cfg
        self.center = torch.zeros(0)
        self.scale = torch.ones(0)

    def train_hop(self, cfg: Any) -> int:
        return 1

    def fit(self, windows: np.ndarray) -> None:
        x = np.asarray(windows, dtype=np.float64).reshape(len(windows), -1)
        x = np.where(np.isinf(x), np.nan, x)  # an infinite training cell counts as missing, not as the scale
        if self.cfg.scaling == "minmax":
            lo, hi = np.nanmin(x, 0), np.nanmax(x, 0)
            center, scale = lo, hi - lo
        elif self.cfg.scaling == "standard":
            center, scale = np.nanmean(x, 0), np.nanstd(x, 0)
        else:
            center, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        center = np.nan_to_num(center)
        scale = np.where(np.isfinite(scale) & (scale > 1e-12), scale, 1.0)
        self.center = torch.from_numpy(center).float()
        self.scale = torch.from_numpy(scale).float()

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, D) or (B, D) rows -> (B, D) scaled features."""
        x = x.reshape(len(x), -1)
        if x.shape[1] != len(self.center):
            raise ValueError(f"rows have {x.shape[1]} features, the model was trained on {len(self.center)}")
        z = (x - self.center.to(x.device)) / self.scale.to(x.device)
        return torch.nan_to_num(z, nan=0.0)

    def state(self) -> dict[str, torch.Tensor]:
        return {"center": self.center.clone(), "scale": self.scale.clone()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.center, self.scale = state["center"].float(), state["scale"].float()

    def describe(self) -> dict[str, Any]:
        return {"features": int(len(self.center)), "scaling": self.cfg.scaling}
