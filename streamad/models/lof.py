"""Local Outlier Factor (Breunig et al. 2000), novelty mode: score = LOF of a new row
relative to the training rows.

``sklearn.neighbors.LocalOutlierFactor(novelty=True)``; fitting is deterministic given
the rows (k-distances and local reachability densities), so the (sub-sampled,
float32) training rows are stored and the estimator is refitted on first use after
loading.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import LocalOutlierFactor

from streamad.models.classical import SklearnDetector, in_chunks


class LOFDetector(SklearnDetector):
    name = "lof"
    defaults: dict[str, Any] = {"k": 20, "max_train": 20000}

    def fit_arrays(self, A: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        return {"train": A.astype(np.float32)}

    def score_rows(self, A: np.ndarray) -> np.ndarray:
        if self._model is None:
            train = self.arrays["train"]
            self._model = LocalOutlierFactor(n_neighbors=min(int(self.params["k"]), len(train) - 1),
                                             novelty=True).fit(train)
        return in_chunks(lambda a: -self._model.score_samples(a.astype(np.float32)), A, 4096)
