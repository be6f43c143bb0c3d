"""One-Class SVM (Schoelkopf et al. 2001), RBF kernel: score = -f(x) with
f(x) = sum_i alpha_i k(s_i, x) - rho (negative inside the learned support).

Fitted by ``sklearn.svm.OneClassSVM`` (libsvm; deterministic). The support vectors,
dual coefficients, intercept and the kernel width are stored and ``f`` is evaluated with
numpy. Training is quadratic in the rows: ``max_train`` caps them (seeded subsample).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.svm import OneClassSVM

from streamad.models.classical import SklearnDetector, in_chunks


class OCSVMDetector(SklearnDetector):
    name = "ocsvm"
    defaults: dict[str, Any] = {"nu": 0.1, "gamma": "scale", "max_train": 10000}

    def fit_arrays(self, A: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        svm = OneClassSVM(kernel="rbf", nu=self.params["nu"], gamma=self.params["gamma"]).fit(A)
        return {"sv": svm.support_vectors_, "alpha": svm.dual_coef_[0], "intercept": svm.intercept_,
                "gamma": np.array([float(svm._gamma)])}

    def score_rows(self, A: np.ndarray) -> np.ndarray:
        sv, alpha, b, g = self.arrays["sv"], self.arrays["alpha"], self.arrays["intercept"][0], self.arrays["gamma"][0]
        sv2 = np.square(sv).sum(1)

        def one(x):
            d2 = np.maximum(np.square(x).sum(1)[:, None] + sv2[None] - 2.0 * x @ sv.T, 0.0)
            return -(np.exp(-g * d2) @ alpha + b)
        return in_chunks(one, A, 4096)
