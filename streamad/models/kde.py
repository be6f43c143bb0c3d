"""Kernel density estimation (Parzen 1962), Gaussian kernel: score = -log p(x).

``sklearn.neighbors.KernelDensity``; its "fit" only indexes the training rows, so the
(sub-sampled, float32) rows and the bandwidth are stored and the estimator is refitted
on first use after loading, which is deterministic. ``bandwidth``: a number, or
``"scott"`` / ``"silverman"`` (scikit-learn's rules on the training rows).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import KernelDensity

from streamad.models.classical import SklearnDetector, in_chunks


class KDEDetector(SklearnDetector):
    name = "kde"
    defaults: dict[str, Any] = {"bandwidth": "scott", "max_train": 10000}

    def fit_arrays(self, A: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        train = A.astype(np.float32)
        kde = KernelDensity(kernel="gaussian", bandwidth=self.params["bandwidth"]).fit(train)
        return {"train": train, "bandwidth": np.array([float(kde.bandwidth_)])}

    def score_rows(self, A: np.ndarray) -> np.ndarray:
        if self._model is None:
            self._model = KernelDensity(kernel="gaussian", bandwidth=float(self.arrays["bandwidth"][0])).fit(
                self.arrays["train"])
        return in_chunks(lambda a: -self._model.score_samples(a.astype(np.float32)), A, 2048)
