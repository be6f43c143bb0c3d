"""PCA reconstruction error (Shyu et al. 2003, "A novel anomaly detection scheme based on
principal component classifier"): project onto the principal subspace of the normal
rows and score the squared distance to it.

Fitted by ``sklearn.decomposition.PCA``; scoring uses the stored ``mean_`` and
``components_`` (``||x - mean - (x - mean) V^T V||^2``).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.decomposition import PCA

from streamad.models.classical import SklearnDetector, in_chunks


class PCADetector(SklearnDetector):
    name = "pca"
    defaults: dict[str, Any] = {"n_components": 0.9, "max_train": 50000}

    def fit_arrays(self, A: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        nc = self.params["n_components"]
        nc = min(int(nc), *A.shape) if nc >= 1 else float(nc)
        pca = PCA(n_components=nc, svd_solver="full").fit(A)
        return {"mean": pca.mean_, "components": pca.components_}

    def score_rows(self, A: np.ndarray) -> np.ndarray:
        mean, V = self.arrays["mean"], self.arrays["components"]

        def one(a):
            c = a - mean
            return np.square(c - (c @ V.T) @ V).sum(1)
        return in_chunks(one, A)
