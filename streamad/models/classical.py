"""Shared base of the classical (scikit-learn) detectors.

Patches are flattened to vectors. scikit-learn does the fitting; what scoring needs is
kept as numpy arrays (``self.arrays``) and saved as float64 / int64 tensors, never
pickled. Scoring always goes through those arrays, right after ``fit`` as after
``load_state``, so a saved model scores exactly as the fitted one. Two ways, per
detector (documented in each module):

* store the fitted parameters and score with a few lines of numpy (PCA, Isolation
  Forest, One-Class SVM), or rebuild the scikit-learn estimator from them (Gaussian
  mixture);
* store the (sub-sampled) training rows and refit the deterministic scikit-learn
  estimator on first use (KDE, kNN, LOF: their "fit" is an index over the rows).
"""
from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from streamad.models.base import Detector, Progress, TrainingError, check_layout, flat


class SklearnDetector(Detector):
    components: ClassVar[tuple[str, ...]] = ("score",)
    primary: ClassVar[str | None] = "score"

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.arrays: dict[str, np.ndarray] = {}
        self._model: Any = None

    @abstractmethod
    def fit_arrays(self, A: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        """Fit on training rows (N, D) -> the arrays scoring needs."""

    @abstractmethod
    def score_rows(self, A: np.ndarray) -> np.ndarray:
        """(N, D) rows -> (N,) anomaly scores from ``self.arrays``."""

    def fit(self, X: torch.Tensor, y: Any = None, *, seed: int = 0, progress: Progress | None = None,
            checkpoint: Path | None = None) -> "SklearnDetector":
        X, _ = self.training_rows(X, y)
        A = flat(X)
        cap = self.params.get("max_train")
        if cap and len(A) > cap:  # a fixed, seeded subsample keeps fit time and model size bounded
            A = A[np.sort(np.random.default_rng(seed).choice(len(A), int(cap), replace=False))]
        self.arrays = {k: np.ascontiguousarray(v) for k, v in self.fit_arrays(A, seed).items()}
        self._model = None
        if progress:
            progress(1, 1, {})
        return self

    def score_components(self, X: torch.Tensor) -> dict[str, np.ndarray]:
        if not self.arrays:
            raise TrainingError(f"{self.name}: not fitted")
        check_layout(X, self.name, self.input)
        return {"score": np.asarray(self.score_rows(flat(X)), dtype=np.float64)}

    def state(self) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(np.array(v, copy=True)) for k, v in self.arrays.items()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.arrays = {k: v.numpy().copy() for k, v in state.items()}
        self._model = None


def in_chunks(fn, A: np.ndarray, size: int = 8192) -> np.ndarray:
    """Apply a row-wise scorer in chunks (bounded memory)."""
    if len(A) == 0:
        return np.zeros(0)
    return np.concatenate([fn(A[i:i + size]) for i in range(0, len(A), size)])
