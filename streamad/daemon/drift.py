"""Per-stream drift of the normal scores, and the optional per-stream threshold adjustment.

Each stream keeps an exponentially weighted mean of its window scores (half-life
``alerts.drift_halflife_s`` of stream time; each score clipped at threshold + ``adapt_max_offset``
so a short loud event barely moves it). Its *drift* is that mean minus the mean of the held-back
normal scores the model was calibrated on (scores are standardised, so drift is in the same units
as the threshold). A stream that moved somewhere noisier drifts up within a half-life or two, a
glass break does not. With ``alerts.adapt_threshold`` a stream's
threshold is raised by its drift after ``alerts.adapt_warmup_s`` of stream time, never lowered
and at most ``alerts.adapt_max_offset``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Drift:
    halflife_s: float
    mean: float = 0.0
    first: float | None = None
    last: float | None = None

    def update(self, t: float, score: float) -> None:
        if not math.isfinite(score):
            return
        if self.first is None or self.last is None:
            self.first, self.last, self.mean = t, t, score
            return
        a = 1.0 - 0.5 ** (max(0.0, t - self.last) / self.halflife_s)
        self.mean += a * (score - self.mean)
        self.last = max(self.last, t)

    def drift(self, base_mean: float) -> float | None:
        return None if self.first is None else self.mean - base_mean

    def offset(self, base_mean: float, warmup_s: float, max_offset: float) -> float:
        """Threshold raise for this stream (0 during warm-up)."""
        if self.first is None or self.last is None or self.last - self.first < warmup_s:
            return 0.0
        return min(max_offset, max(0.0, self.mean - base_mean))
