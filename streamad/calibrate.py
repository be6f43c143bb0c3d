"""Post-processing stored with the model: score standardisation and the threshold.

* Each score component is standardised with the median and a robust scale
  (IQR / 1.349) of the held-back normal windows, so none dominates by scale; the
  anomaly score is the weighted mean of the standardised components.
* The threshold is calibrated on the alert rule's statistic, the k-th largest score of the
  last n windows (:func:`streamad.alerts.smooth`).
* The threshold targets a false-alert rate: with one window every ``hop_s``
  seconds, a rate of r alerts/hour means a per-window exceedance probability of
  r * hop_s / 3600. Held-back normal audio is usually far shorter than an hour,
  so the tail above the 90th percentile is modelled as exponential (peaks over
  threshold) and extrapolated; exceedances come in clusters (overlapping windows hear
  the same sound, one alert per cluster), so the per-window rate is divided by the
  runs estimate of the extremal index. The threshold is never below the largest
  held-back normal score.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from streamad.alerts import smooth
from streamad.stats import robust_center_scale


def full_weights(weights: dict[str, float] | None, components: list[str]) -> dict[str, float]:
    """``weights`` over every component (missing -> 0; empty or None -> all 1, as ``model.score_weights: {}``)."""
    if not weights:
        return {k: 1.0 for k in components}
    return {k: float(weights.get(k, 0.0)) for k in components}


@dataclass
class Calibration:
    center: dict[str, float]
    scale: dict[str, float]
    weights: dict[str, float]
    threshold: float = math.inf
    hop_s: float = 1.0
    target_false_alerts_per_hour: float = 1.0
    min_windows: int = 1
    of_windows: int = 1
    holdout: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit_components(cls, comps: dict[str, np.ndarray], weights: dict[str, float] | None = None,
                       **kw: Any) -> "Calibration":
        center, scale = {}, {}
        for k, v in comps.items():
            center[k], scale[k] = robust_center_scale(v, fallback=1.0)
        w = full_weights(weights, list(comps))
        if not any(w.values()):
            raise ValueError("all score weights are zero")
        return cls(center=center, scale=scale, weights=w, **kw)

    def combine(self, comps: dict[str, np.ndarray]) -> np.ndarray:
        total = sum(self.weights.values())
        out = None
        for k, w in self.weights.items():
            if not w:
                continue
            z = (np.asarray(comps[k], dtype=np.float64) - self.center[k]) / self.scale[k]
            out = w * z if out is None else out + w * z
        return out / total

    def fit_threshold(self, sequences: list[np.ndarray]) -> None:
        """Choose the threshold from held-back normal score sequences (one per recording)."""
        smoothed = self._smoothed(sequences)
        sm = np.concatenate(smoothed)
        sm = sm[np.isfinite(sm)]
        if len(sm) < 2:
            raise ValueError("need at least 2 held-back normal windows to calibrate a threshold")
        u = float(np.percentile(sm, 90))
        # Exceedances come in clusters (overlapping windows see the same sound): one alert
        # per cluster. The runs estimate of the extremal index theta (clusters per
        # exceedance above u) converts the alert rate into a per-window rate.
        n_exc = n_clu = 0
        for seq in smoothed:
            above = seq > u
            n_exc += int(above.sum())
            n_clu += int((above & ~np.concatenate([[False], above[:-1]])).sum())
        theta = min(1.0, max(0.1, n_clu / n_exc)) if n_exc else 1.0
        p = min(0.5, self.target_false_alerts_per_hour * self.hop_s / 3600.0 / theta)
        exc = sm[sm > u] - u
        beta = float(exc.mean()) if len(exc) else float(sm.std() or 1.0)
        tail = u + beta * math.log(0.1 / p) if p < 0.1 else float(np.percentile(sm, 100 * (1 - p)))
        top = float(sm.max())
        self.threshold = max(tail, top + 1e-9 * max(1.0, abs(top)))
        self.holdout = {"windows": int(len(sm)), "max_score": top, "mean": float(sm.mean()),
                        "p90": u, "tail_beta": beta, "tail_threshold": tail, "extremal_index": theta,
                        "per_window_rate": p}

    def _smoothed(self, sequences: list[np.ndarray]) -> list[np.ndarray]:
        """The alert rule's statistic of each sequence; a sequence shorter than min_windows (a short
        cross-fitting fold) still counts: its windows all over the threshold is the most it can show."""
        return [smooth(s, min(self.min_windows, max(1, len(s))), self.of_windows) for s in sequences]

    def raise_threshold_above(self, sequences: list[np.ndarray], what: str) -> None:
        """Raise the threshold above every (smoothed) score of these normal sequences, which are
        not part of the alert-rate estimate (e.g. the windows across a seam of the normal data)."""
        sm = self._smoothed([s for s in sequences if len(s)])
        sm = np.concatenate(sm) if sm else np.zeros(0)
        sm = sm[np.isfinite(sm)]
        if not len(sm):
            return
        top = float(sm.max())
        self.holdout.update({f"{what}_windows": int(sum(len(s) for s in sequences)), f"{what}_max_score": top,
                             f"threshold_before_{what}": self.threshold})
        self.threshold = max(self.threshold, top + 1e-9 * max(1.0, abs(top)))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["threshold"] = self.threshold if math.isfinite(self.threshold) else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Calibration":
        d = dict(d)
        if d.get("threshold") is None:
            d["threshold"] = math.inf
        return cls(**d)
