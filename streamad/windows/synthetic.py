"""Normal training windows with one generic synthetic sound mixed into each (outlier exposure
without any recorded event).

A per-scene model only ever hears the scene. :class:`SyntheticWindows` gives a detector that can use
labelled anomalies (``labels = "optional"``) examples of *something else in this scene*: each row is a
normal training window with one short sound added at a random place and level. The sounds are
deliberately generic, not models of any event class:

* a harmonic tone (1-5 harmonics, fundamental 150-3 000 Hz, optional vibrato), 0.1-0.9 s;
* a frequency sweep between two random frequencies (200-5 000 Hz), 0.1-0.9 s;
* a band-limited noise burst (random band from 100 Hz, 0.3-2.5 e-folds wide) with an exponential
  decay of 10-200 ms, 20-400 ms long: the shape of an impact.

Each starts with a 1-50 ms attack, and is scaled so that its RMS over its own length is
``ebr_db`` (drawn uniformly in [-12, +6] dB) relative to the RMS of the whole window it goes into: as
loud as the quieter half of the scene-to-event ratios a monitor should hear. Rows are made when read
(from ``numpy.random.default_rng([seed, row])``), so they never sit in memory beside the windows they
come from, and reading a row twice gives the same samples.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from streamad.windows.lazy import RowView, row_numbers

EBR_DB = (-12.0, 6.0)


def synthetic_sound(rng: np.random.Generator, max_len: int, rate: float) -> np.ndarray:
    """One generic synthetic sound (float32, unit-free, at most ``max_len`` samples at ``rate`` Hz)."""
    kind = int(rng.integers(3))
    seconds = rng.uniform(0.02, 0.4) if kind == 2 else rng.uniform(0.1, 0.9)
    n = max(1, min(max_len, int(rate * seconds)))
    t = np.arange(n) / rate
    nyq = rate / 2
    if kind == 0:  # harmonic tone, optional vibrato
        f0 = float(np.exp(rng.uniform(np.log(150.0), np.log(min(3000.0, 0.45 * nyq)))))
        vib = 1 + rng.uniform(0, 0.15) * np.sin(2 * np.pi * rng.uniform(0.5, 8) * t)
        phase = 2 * np.pi * np.cumsum(f0 * vib) / rate
        x = np.zeros(n)
        for h in range(1, int(rng.integers(1, 6)) + 1):
            amp = rng.uniform(0.2, 1.0) / h
            if h * f0 * 1.15 < nyq:
                x += amp * np.sin(h * phase)
    elif kind == 1:  # sweep
        f = np.exp(rng.uniform(np.log(200.0), np.log(min(5000.0, 0.45 * nyq)), 2))
        x = np.sin(2 * np.pi * np.cumsum(np.geomspace(f[0], f[1], n)) / rate)
    else:  # band-limited noise burst with a fast decay
        x = rng.standard_normal(n)
        spec = np.fft.rfft(x)
        freqs = np.fft.rfftfreq(n, 1 / rate)
        lo = float(np.exp(rng.uniform(np.log(100.0), np.log(min(4000.0, 0.45 * nyq)))))
        hi = lo * float(np.exp(rng.uniform(0.3, 2.5)))
        spec[(freqs < lo) | (freqs > hi)] = 0
        x = np.fft.irfft(spec, n) * np.exp(-t / rng.uniform(0.01, 0.2))
    attack = min(n, int(rate * rng.uniform(0.001, 0.05)))
    if attack > 0:
        x[:attack] *= np.linspace(0.0, 1.0, attack)
    return x.astype(np.float32)


def level_gain(sound: np.ndarray, background: np.ndarray, ebr_db: float) -> float:
    """The gain that puts ``sound``'s RMS (over its own length) ``ebr_db`` dB from ``background``'s."""
    bg = float(np.sqrt(np.mean(np.square(background, dtype=np.float64)) + 1e-12))
    ev = float(np.sqrt(np.mean(np.square(sound, dtype=np.float64)) + 1e-20))
    return bg / ev * 10 ** (ebr_db / 20)


class SyntheticWindows(RowView):
    """``count`` rows, each a window of (N, samples) ``windows`` (drawn with replacement when
    ``count`` > N, else without) with one :func:`synthetic_sound` added. With ``lead`` > 0 (windows
    that carry ``audio.context_s`` of context first) the sound lies wholly in the window's own span
    after the context, and its level is set against that span's background: it is the event the
    window stands for, not one in the audio before it."""

    def __init__(self, windows: Any, count: int, rate: float, seed: int = 0,
                 ebr_db: tuple[float, float] = EBR_DB, lead: int = 0):
        if len(windows) == 0 or count <= 0:
            raise ValueError("synthetic windows need at least one normal window and count >= 1")
        if not 0 <= int(lead) < windows.shape[1]:
            raise ValueError(f"lead {lead} must be >= 0 and shorter than the windows ({windows.shape[1]} samples)")
        self.base = windows
        self.lead = int(lead)
        self.rate = float(rate)
        self.seed = int(seed)
        self.ebr_db = (float(ebr_db[0]), float(ebr_db[1]))
        rng = np.random.default_rng([self.seed, 0x5E7])
        self.pick = np.sort(rng.choice(len(windows), count, replace=count > len(windows)))
        self.shape = (int(count),) + tuple(windows.shape[1:])
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, key: Any) -> np.ndarray:
        j = row_numbers(key, len(self))
        out = np.array(self.base[self.pick[j]], dtype=np.float32, copy=True)
        if out.ndim != 2:
            raise ValueError("synthetic sounds go into mono audio windows (N, samples)")
        lead = self.lead
        n = out.shape[1] - lead  # the window's own span
        for r, row in enumerate(j):
            rng = np.random.default_rng([self.seed, 1, int(row)])
            x = synthetic_sound(rng, n, self.rate)
            start = lead + int(rng.integers(0, n - len(x) + 1))
            gain = level_gain(x, out[r, lead:], rng.uniform(*self.ebr_db))
            out[r, start:start + len(x)] += np.float32(gain) * x
        return out
