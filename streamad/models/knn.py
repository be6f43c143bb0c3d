"""k-nearest-neighbour distance (Ramaswamy et al. 2000): score = distance to the k-th
nearest training row (``method: largest``) or the mean distance to the k nearest
(``method: mean``, Angiulli & Pizzuti 2002).

``sklearn.neighbors.NearestNeighbors``; the (sub-sampled, float32) training rows are
stored and the index is rebuilt on first use after loading (deterministic).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors

from streamad.models.classical import SklearnDetector, in_chunks


class KNNDetector(SklearnDetector):
    name = "knn"
    defaults: dict[str, Any] = {"k": 5, "method": "largest", "max_train": 20000}

    def fit_arrays(self, A: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        if self.params["method"] not in ("largest", "mean"):
            from streamad.config import ConfigError

            raise ConfigError(f"model.params.method: must be largest or mean, got {self.params['method']!r}")
        return {"train": A.astype(np.float32)}

    def score_rows(self, A: np.ndarray) -> np.ndarray:
        train = self.arrays["train"]
        k = min(int(self.params["k"]), len(train))
        if self._model is None:
            self._model = NearestNeighbors(n_neighbors=k).fit(train)

        def one(a):
            d, _ = self._model.kneighbors(a.astype(np.float32), n_neighbors=k)
            return d[:, -1] if self.params["method"] == "largest" else d.mean(1)
        return in_chunks(one, A, 4096)
