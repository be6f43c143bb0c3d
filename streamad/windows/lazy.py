"""Training windows made batch by batch, so training memory does not grow with the window overlap.

At the training hop (0.125 s for 1 s audio windows) every sample sits in 8 windows: written out,
an hour of 16 kHz audio is 28 800 windows = 1.8 GB, against 230 MB for the audio itself.
:class:`FramedWindows` makes any slice of the windows of a few signals on demand; it equals the
same rows of the concatenated :func:`streamad.windows.base.frame_windows` bit for bit.

``audio.train_gains_db`` adds copies of the windows at other gains; ``audio.train_mix`` adds
copies in which each window (gain copies included) is summed with another one drawn at random
and divided by sqrt(2), so overlaps of normal sounds are normal too. Materialising those copies
would multiply that again; :class:`AugmentedWindows` makes them on demand too, equal bit for bit
to the materialised copies.

Both are read by slices (``w[i:i + batch]``) or integer arrays; ``np.asarray(w)`` writes them out
(for front ends that need every window at once; series windows are small).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from streamad.windows.base import window_starts, windows_at

_HALF_POWER = np.float32(0.5 ** 0.5)


def row_numbers(key: Any, n: int) -> np.ndarray:
    """A slice or 1-d integer array of rows of an n-row view -> int64 row numbers (checked)."""
    if isinstance(key, slice):
        return np.arange(*key.indices(n))
    j = np.asarray(key)
    if j.ndim != 1 or not np.issubdtype(j.dtype, np.integer):
        raise TypeError("training windows are read by a slice or a 1-d array of row numbers")
    if len(j) and (j.min() < 0 or j.max() >= n):
        raise IndexError(f"row numbers must be in [0, {n})")
    return j.astype(np.int64)


class RowView:
    """What the training-window views share: ``shape[0]`` rows, read by ``self[key]``; ``np.asarray`` writes them out."""

    shape: tuple[int, ...]

    def __len__(self) -> int:
        return self.shape[0]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)


class FramedWindows(RowView):
    """The windows of ``signals`` (each (T, ...)) at ``hop``, one signal after the other: the rows
    of ``np.concatenate([frame_windows(s, window, hop) for s in signals])``, made when read."""

    def __init__(self, signals: Sequence[np.ndarray], window: int, hop: int):
        self.signals = [np.asarray(s) for s in signals]
        self.window = window
        self.starts = [window_starts(len(s), window, hop) for s in self.signals]
        self.offsets = np.concatenate([[0], np.cumsum([len(st) for st in self.starts])]).astype(np.int64)
        trailing = self.signals[0].shape[1:] if self.signals else ()
        self.shape = (int(self.offsets[-1]), window) + tuple(trailing)
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, key: Any) -> np.ndarray:
        j = row_numbers(key, len(self))
        out = np.empty((len(j),) + self.shape[1:], dtype=np.float32)
        which = np.searchsorted(self.offsets, j, side="right") - 1
        for s in np.unique(which):
            sel = which == s
            out[sel] = windows_at(self.signals[s], self.window, self.starts[s][j[sel] - self.offsets[s]])
        return out


class AugmentedWindows(RowView):
    """Rows ``[windows, windows * g1, ..., (mixed copy 1), ...]`` of (N, samples) ``windows``:
    first the gain copies in order, then ``mix`` mixed copies of all of those, each with its own
    permutation (drawn in order from ``numpy.random.default_rng(seed)``)."""

    def __init__(self, windows: np.ndarray | FramedWindows, gains_db: Sequence[float] = (), mix: int = 0,
                 seed: int = 0):
        self.base = windows
        self.factors = [None] + [np.float32(10 ** (g / 20)) for g in gains_db]
        self.n = len(windows)
        self.m = self.n * len(self.factors)  # rows before mixing
        rng = np.random.default_rng(seed)
        self.perms = [rng.permutation(self.m) for _ in range(mix if self.m > 1 else 0)]
        self.shape = (self.m * (1 + len(self.perms)),) + tuple(windows.shape[1:])

    def _plain(self, j: np.ndarray) -> np.ndarray:
        """Rows j < m: a window or one of its gain copies."""
        out = self.base[j % self.n]
        which = j // self.n
        for c in np.unique(which):
            if self.factors[c] is not None:
                out[which == c] *= self.factors[c]
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        j = row_numbers(key, len(self))
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
