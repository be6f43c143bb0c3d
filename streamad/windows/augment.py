"""Training windows augmented from the normal audio itself, built batch by batch.

``audio.train_gains_db`` adds copies of the windows at other gains; ``audio.train_mix`` adds
copies in which each window (gain copies included) is summed with another one drawn at random
and divided by sqrt(2), so overlaps of normal sounds are normal too. Materialising those copies
would multiply the training set's memory (raw windows: 64 KB each at 16 kHz); this view makes any
slice of them on demand, and a slice equals the same rows of the materialised array bit for bit.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

_HALF_POWER = np.float32(0.5 ** 0.5)


class AugmentedWindows:
    """Rows ``[windows, windows * g1, ..., (mixed copy 1), ...]`` of (N, samples) ``windows``:
    first the gain copies in order, then ``mix`` mixed copies of all of those, each with its own
    permutation (drawn in order from ``numpy.random.default_rng(seed)``)."""

    def __init__(self, windows: np.ndarray, gains_db: Sequence[float] = (), mix: int = 0, seed: int = 0):
        self.base = windows
        self.factors = [None] + [np.float32(10 ** (g / 20)) for g in gains_db]
        self.n = len(windows)
        self.m = self.n * len(self.factors)  # rows before mixing
        rng = np.random.default_rng(seed)
        self.perms = [rng.permutation(self.m) for _ in range(mix if self.m > 1 else 0)]
        self.shape = (self.m * (1 + len(self.perms)),) + tuple(windows.shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def _plain(self, j: np.ndarray) -> np.ndarray:
        """Rows j < m: a window or one of its gain copies."""
        out = self.base[j % self.n]
        copy = j // self.n
        for c in np.unique(copy):
            if self.factors[c] is not None:
                out[copy == c] = self.base[j[copy == c] % self.n] * self.factors[c]
        return out

    def __getitem__(self, key: slice) -> np.ndarray:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("AugmentedWindows supports contiguous slices only")
        j = np.arange(*key.indices(len(self)))
        if not len(self.perms):
            return self._plain(j)
        out = np.empty((len(j),) + self.shape[1:], dtype=self.base.dtype)
        plain = j < self.m
        if plain.any():
            out[plain] = self._plain(j[plain])
        for c, perm in enumerate(self.perms):
            sel = (j >= self.m * (c + 1)) & (j < self.m * (c + 2))
            if sel.any():
                i = j[sel] - self.m * (c + 1)
                out[sel] = (self._plain(i) + self._plain(perm[i])) * _HALF_POWER
        return out
