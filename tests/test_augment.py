"""Augmented training windows are made batch by batch, equal to the materialised copies."""
from __future__ import annotations

import numpy as np
import pytest

from streamad.windows.augment import AugmentedWindows


def _materialised(w: np.ndarray, gains: list[float], mix: int, seed: int) -> np.ndarray:
    """The copies written out in full: gain copies, then mixed copies of all of them."""
    out = np.concatenate([w] + [w * np.float32(10 ** (g / 20)) for g in gains])
    rng = np.random.default_rng(seed)
    return np.concatenate([out] + [(out + out[rng.permutation(len(out))]) * np.float32(0.5 ** 0.5) for _ in range(mix)])


@pytest.mark.parametrize("gains,mix", [([], 2), ([-3, 3], 0), ([6], 3)])
def test_every_slice_equals_the_materialised_rows(gains, mix):
    w = np.random.default_rng(1).standard_normal((37, 50)).astype(np.float32)
    view, full = AugmentedWindows(w, gains, mix, seed=7), _materialised(w, gains, mix, 7)
    assert len(view) == len(full) == 37 * (1 + len(gains)) * (1 + mix)
    for a, b in [(0, len(full)), (0, 10), (30, 45), (len(full) - 5, len(full) + 3), (36, 37 * (1 + len(gains)) + 2)]:
        got = view[a:b]
        assert got.dtype == np.float32 and np.array_equal(got, full[a:b])
    with pytest.raises(TypeError, match="contiguous slices only"):
        view[::2]
