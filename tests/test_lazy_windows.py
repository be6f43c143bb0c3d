"""Training windows are made batch by batch, equal to the written-out windows and copies."""
from __future__ import annotations

import numpy as np
import pytest

from streamad.windows.base import frame_windows
from streamad.windows.lazy import AugmentedWindows, FramedWindows


def _materialised(w: np.ndarray, gains: list[float], mix: int, seed: int) -> np.ndarray:
    """The copies written out in full: gain copies, then mixed copies of all of them."""
    out = np.concatenate([w] + [w * np.float32(10 ** (g / 20)) for g in gains])
    rng = np.random.default_rng(seed)
    return np.concatenate([out] + [(out + out[rng.permutation(len(out))]) * np.float32(0.5 ** 0.5) for _ in range(mix)])


def _reads(n: int) -> list:
    return [slice(0, n), slice(0, 10), slice(30, 45), slice(n - 5, n + 3), slice(1, n, 7), np.array([n - 1, 0, 5, 5])]


@pytest.mark.parametrize("shape", [(), (3,)])
def test_framed_windows_equal_the_concatenated_frames(shape):
    """Audio (T,) and series (T, C) signals, one too short for a window, read across their joins."""
    rng = np.random.default_rng(2)
    sigs = [rng.standard_normal((n,) + shape) for n in (200, 7, 131, 64)]
    full = np.concatenate([f for f in (frame_windows(s, 16, 5) for s in sigs) if len(f)])
    view = FramedWindows(sigs, 16, 5)
    assert len(view) == len(full) and view.shape == full.shape
    for key in _reads(len(full)):
        got = view[key]
        assert got.dtype == np.float32 and np.array_equal(got, full[key])
    assert np.array_equal(np.asarray(view, dtype=np.float64), full.astype(np.float64))
    assert len(FramedWindows([np.zeros(3)], 16, 5)) == 0


@pytest.mark.parametrize("gains,mix", [([], 2), ([-3, 3], 0), ([6], 3)])
def test_augmented_windows_equal_the_materialised_copies(gains, mix):
    sig = np.random.default_rng(1).standard_normal(400).astype(np.float32)
    base = FramedWindows([sig[:200], sig[200:]], 20, 9)
    w = np.asarray(base)
    view, full = AugmentedWindows(base, gains, mix, seed=7), _materialised(w, gains, mix, 7)
    assert len(view) == len(full) == len(w) * (1 + len(gains)) * (1 + mix)
    for key in _reads(len(full)) + [slice(len(w) - 2, len(w) * (1 + len(gains)) + 2)]:
        got = view[key]
        assert got.dtype == np.float32 and np.array_equal(got, full[key])
    with pytest.raises(TypeError, match="read by a slice or a 1-d array of row numbers"):
        view[0.5]
    with pytest.raises(IndexError, match="row numbers must be in"):
        view[np.array([0, len(full)])]
