"""Beat-synchronous features of a heart-signal window (``series.representation: beats``).

A premature beat looks almost like a normal one; what makes it abnormal is *when* it comes
(too early, then a compensatory pause) and, for ventricular beats, its shape. A window
spectrogram sees both only blurred over the window, so a single early beat moves the score
little against the normal variation of 30 minutes of ECG. This representation scores one
beat per window, the one nearest the window's centre, against its own neighbours:

1. QRS energy (Pan-Tompkins style, on the normalised readings of all leads together): the
   squared central difference over +-10 ms summed over leads, averaged over 120 ms.
2. Beats: peaks of that energy above 30 % of its 98th percentile in the window, at least
   250 ms apart (up to 240 beats/min).
3. Seven features of the centre beat (``FEATURES``):

   * ``rr_before``: log of the interval from the previous beat over the window's reference
     interval (the median of its other intervals, leaving out the two next to the centre beat):
     negative for an early beat, positive after a pause. The interval to the *next* beat is
     left out on purpose: it is the next beat's timing, and with it the normal beat before an
     early one alerts (it did on MIT-BIH 100: the alert opened a beat too soon);
   * ``rate``: log of the window's reference interval over the training median (a change of
     heart rate);
   * ``qrs_energy``: log of the beat's QRS energy over the median of the other beats';
   * ``shape_local`` / ``size_local``: log(1.001 - correlation) and log RMS ratio of the beat
     (200 ms before to 400 ms after the peak, all leads together, each lead less its
     least-squares line so that baseline wander does not count as shape) against the median
     of the window's other beats;
   * ``shape_trained`` / ``size_trained``: the same against the median beat of the training data.

   All leads go into one correlation (not one per lead), so one lead that drops out for a few
   seconds moves the shape features less than a changed beat does.

A window without a beat (flat line, lead off) or with a single one gets intervals of the whole
window and no neighbours, which maps far from every normal window, i.e. it alerts. ``fit``
learns the training median interval, median beat, median QRS energy and the mean / standard
deviation of each feature; ``transform`` returns the standardised (N, 8) features, computed with
NumPy on the CPU (a few hundred microseconds per window; heart signals come at a few windows per
second per stream).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.signal import find_peaks

FEATURES = ("rr_before", "rate", "qrs_energy", "shape_local", "size_local",
            "shape_trained", "size_trained")
DIFF_S = 0.010  # central difference half-width
SMOOTH_S = 0.120  # QRS energy moving average
REFRACTORY_S = 0.250  # beats at least this far apart
PEAK_FRACTION = 0.3  # of the window's 98th percentile of QRS energy
BEFORE_S, AFTER_S = 0.2, 0.4  # beat segment around the peak
MIN_WINDOW_S = 2.0  # shorter windows hold too few beats for a reference interval
STD_FLOOR = 1e-3
EPS = 1e-6


def qrs_energy(z: np.ndarray, rate: float) -> np.ndarray:
    """(B, W, C) normalised readings -> (B, W) QRS energy."""
    b, w, _ = z.shape
    k = max(1, int(round(DIFF_S * rate)))
    d = np.zeros((b, w), dtype=np.float64)
    if w > 2 * k:
        d[:, k:-k] = np.square(z[:, 2 * k:, :] - z[:, :-2 * k, :]).sum(-1)
    n = max(1, int(round(SMOOTH_S * rate)))
    c = np.concatenate([np.zeros((b, 1)), np.cumsum(d, axis=1)], axis=1)
    lo = np.clip(np.arange(w) - n // 2, 0, w)
    hi = np.clip(np.arange(w) - n // 2 + n, 0, w)
    return (c[:, hi] - c[:, lo]) / n


def find_beats(energy: np.ndarray, rate: float) -> np.ndarray:
    """Sample indices of the beats in one window's QRS energy (W,)."""
    top = float(np.quantile(energy, 0.98))
    if not top > 0:
        return np.zeros(0, dtype=np.int64)
    p, _ = find_peaks(energy, height=PEAK_FRACTION * top, distance=max(1, int(round(REFRACTORY_S * rate))))
    return p.astype(np.int64)


class BeatFeatures:
    """Fits and computes the centre-beat features of windows of normalised readings."""

    def __init__(self, rate: float, window: int):
        self.rate, self.window = float(rate), int(window)
        if self.window < MIN_WINDOW_S * self.rate:
            raise ValueError(f"series.window: the beats representation needs at least {MIN_WINDOW_S:g} s of "
                             f"readings ({int(math.ceil(MIN_WINDOW_S * self.rate))} at {self.rate:g}/s), "
                             f"got {self.window}")
        self.before = int(round(BEFORE_S * self.rate))
        self.after = int(round(AFTER_S * self.rate))
        ramp = np.linspace(-1.0, 1.0, self.before + self.after)
        self._ramp = ramp / np.linalg.norm(ramp)
        self.rr = 1.0  # training median interval, s
        self.energy = 1.0  # training median QRS energy at a beat
        self.template: np.ndarray | None = None  # (before + after, C) median training beat
        self.mean = np.zeros(len(FEATURES))
        self.std = np.ones(len(FEATURES))

    # -- fitting ------------------------------------------------------------------------
    def fit(self, z: np.ndarray, max_windows: int = 4000) -> None:
        """Learn the references and the feature scaling from training windows (N, W, C)."""
        if len(z) == 0:
            raise ValueError("no training windows")
        sub = z[:: max(1, int(math.ceil(len(z) / max_windows)))]
        e = qrs_energy(sub, self.rate)
        rrs, energies, segs = [], [], []
        for i in range(len(sub)):
            p = find_beats(e[i], self.rate)
            rrs.extend(np.diff(p) / self.rate)
            energies.extend(e[i, p])
            segs.extend(s for s in (self._segment(sub[i], t) for t in p) if s is not None)
        if len(rrs) < 2 or not segs:
            raise ValueError("series.representation beats: no heart beats found in the training windows "
                             "(is this a heart signal, and is series.rate_hz right?)")
        self.rr = float(np.median(rrs))
        self.energy = float(np.median(energies))
        self.template = np.median(np.stack(segs[:5000]), axis=0)
        f = self.raw(z)
        self.mean = f.mean(0)
        self.std = np.maximum(f.std(0), STD_FLOOR)

    def state(self) -> dict[str, torch.Tensor]:
        if self.template is None:
            raise ValueError("beats front end is not fitted")
        return {"beat_rr": torch.tensor(self.rr, dtype=torch.float64),
                "beat_energy": torch.tensor(self.energy, dtype=torch.float64),
                "beat_template": torch.from_numpy(self.template.astype(np.float64)),
                "beat_mean": torch.from_numpy(self.mean.astype(np.float64)),
                "beat_std": torch.from_numpy(self.std.astype(np.float64))}

    def load_state(self, state: dict[str, torch.Tensor], channels: int) -> None:
        missing = [k for k in ("beat_rr", "beat_energy", "beat_template", "beat_mean", "beat_std") if k not in state]
        if missing:
            raise ValueError(f"series front end state: the beats representation needs {', '.join(missing)}")
        self.rr, self.energy = float(state["beat_rr"]), float(state["beat_energy"])
        self.template = state["beat_template"].double().numpy().copy()
        self.mean = state["beat_mean"].double().numpy().copy()
        self.std = state["beat_std"].double().numpy().copy()
        if self.template.shape != (self.before + self.after, channels):
            raise ValueError(f"series front end state: beat template {tuple(self.template.shape)} does not match "
                             f"{self.before + self.after} readings x {channels} channels")
        if self.mean.shape != (len(FEATURES),) or self.std.shape != (len(FEATURES),) or not (self.std > 0).all():
            raise ValueError("series front end state: beat feature scaling is malformed")
        if not (self.rr > 0 and self.energy >= 0):
            raise ValueError("series front end state: beat references must be > 0")

    # -- features -------------------------------------------------------------------------
    def _segment(self, w: np.ndarray, t: int) -> np.ndarray | None:
        if t - self.before < 0 or t + self.after > len(w):
            return None
        s = w[t - self.before:t + self.after]
        s = s - s.mean(axis=0)
        return s - np.outer(self._ramp, self._ramp @ s)  # baseline wander: least-squares line out

    @staticmethod
    def _compare(a: np.ndarray | None, b: np.ndarray | None) -> tuple[float, float]:
        """(log(1.001 - correlation), log RMS ratio) of beat a against reference b, all leads."""
        if a is None or b is None:
            return 0.0, math.log(1e-3)
        a, b = a.ravel(), b.ravel()
        sa, sb = float(a.std()), float(b.std())
        corr = float(np.dot(a - a.mean(), b - b.mean()) / (len(a) * sa * sb)) if sa > 0 and sb > 0 else 0.0
        return math.log(1.001 - min(max(corr, -1.0), 1.0)), math.log((sa + 1e-3) / (sb + 1e-3))

    def raw(self, z: np.ndarray) -> np.ndarray:
        """(N, W, C) normalised readings -> (N, 7) unscaled features."""
        z = np.asarray(z, dtype=np.float64)
        e = qrs_energy(z, self.rate)
        out = np.empty((len(z), len(FEATURES)))
        span = self.window / self.rate
        for i in range(len(z)):
            out[i] = self._one(z[i], e[i], find_beats(e[i], self.rate), span)
        return out

    def _one(self, w: np.ndarray, e: np.ndarray, p: np.ndarray, span: float) -> list[float]:
        if len(p) == 0:
            return [math.log(span / self.rr), 0.0, math.log((float(e.max()) + EPS) / (self.energy + EPS)),
                    *(self._compare(None, None) * 2)]
        c = int(np.argmin(np.abs(p - (len(w) - 1) / 2.0)))
        t = int(p[c])
        rr = np.diff(p) / self.rate
        others = np.delete(rr, [i for i in (c - 1, c) if 0 <= i < len(rr)])
        ref = float(np.median(others)) if len(others) >= 2 else (float(np.median(rr)) if len(rr) else self.rr)
        before = rr[c - 1] if c > 0 else span
        rest = np.delete(p, c)
        e_ref = float(np.median(e[rest])) if len(rest) else self.energy
        beat = self._segment(w, t)
        neigh = [s for s in (self._segment(w, int(q)) for q in rest) if s is not None]
        local = np.median(np.stack(neigh), axis=0) if neigh else None
        return [math.log(before / ref), math.log(ref / self.rr),
                math.log((float(e[t]) + EPS) / (e_ref + EPS)), *self._compare(beat, local),
                *self._compare(beat, self.template)]

    def transform(self, z: np.ndarray) -> np.ndarray:
        """(N, W, C) normalised readings -> (N, 7) standardised features."""
        return (self.raw(z) - self.mean) / self.std
