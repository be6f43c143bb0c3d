"""Gaussian mixture negative log-likelihood (the classical density baseline; e.g. the GMM
rows of Zong et al. 2018).

Fitted by ``sklearn.mixture.GaussianMixture`` (EM, k-means init, seeded). The fitted
weights, means, covariances and precision Cholesky factors are stored; scoring rebuilds
the estimator from them and returns ``-score_samples(x)``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.mixture import GaussianMixture

from streamad.models.classical import SklearnDetector, in_chunks

_FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_")


class GMMDetector(SklearnDetector):
    name = "gmm"
    defaults: dict[str, Any] = {"k": 4, "covariance_type": "full", "reg_covar": 1e-6, "max_iter": 100,
                                "max_train": 50000}

    def _estimator(self, seed: int = 0) -> GaussianMixture:
        p = self.params
        return GaussianMixture(n_components=p["k"], covariance_type=p["covariance_type"],
                               reg_covar=p["reg_covar"], max_iter=p["max_iter"], random_state=seed)

    def fit_arrays(self, A: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        gm = self._estimator(seed).fit(A)
        return {a.rstrip("_"): getattr(gm, a) for a in _FITTED}

    def score_rows(self, A: np.ndarray) -> np.ndarray:
        if self._model is None:
            gm = self._estimator()
            for a in _FITTED:
                setattr(gm, a, self.arrays[a.rstrip("_")])
            gm.converged_, gm.n_iter_, gm.lower_bound_ = True, 0, 0.0
            gm.n_features_in_ = self.arrays["means"].shape[1]
            self._model = gm
        return in_chunks(lambda a: -self._model.score_samples(a), A)
