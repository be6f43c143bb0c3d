"""Isolation Forest (Liu, Ting & Zhou, ICDM 2008): anomalies are isolated by fewer random
splits; score = 2^(-E[h(x)] / c(psi)) (higher = more anomalous; equals
``-IsolationForest.score_samples``).

Fitted by ``sklearn.ensemble.IsolationForest`` (seeded). The trees are stored as flat
arrays (children, split feature in the original column order, threshold, node sizes)
and re-scored by a small vectorised numpy traversal that reproduces scikit-learn's path
lengths (rows are compared in float32, as scikit-learn's trees do).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest

from streamad.models.classical import SklearnDetector, in_chunks


def average_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): mean path length of an unsuccessful BST search among n points."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


class IsolationForestDetector(SklearnDetector):
    name = "iforest"
    defaults: dict[str, Any] = {"n_estimators": 100, "max_samples": 256, "max_train": None}

    def fit_arrays(self, A: np.ndarray, seed: int) -> dict[str, np.ndarray]:
        p = self.params
        f = IsolationForest(n_estimators=p["n_estimators"], max_samples=min(p["max_samples"], len(A)),
                            random_state=seed).fit(A)
        lefts, rights, feats, thr, sizes, roots, off = [], [], [], [], [], [], 0
        for est, cols in zip(f.estimators_, f.estimators_features_):
            t = est.tree_
            leaf = t.children_left == -1
            lefts.append(np.where(leaf, -1, t.children_left + off))
            rights.append(np.where(leaf, -1, t.children_right + off))
            feats.append(np.where(leaf, 0, np.asarray(cols)[np.maximum(t.feature, 0)]))
            thr.append(t.threshold)
            sizes.append(t.n_node_samples)
            roots.append(off)
            off += t.node_count
        cat = lambda xs, dt: np.concatenate(xs).astype(dt)  # noqa: E731
        return {"left": cat(lefts, np.int64), "right": cat(rights, np.int64), "feature": cat(feats, np.int64),
                "threshold": cat(thr, np.float64), "n_samples": cat(sizes, np.float64),
                "roots": np.asarray(roots, np.int64), "max_samples": np.array([float(f.max_samples_)])}

    def score_rows(self, A: np.ndarray) -> np.ndarray:
        a = self.arrays
        left, right, feat, thr = a["left"], a["right"], a["feature"], a["threshold"]
        leaf_len = average_path_length(a["n_samples"])
        norm = len(a["roots"]) * average_path_length(a["max_samples"])[0]

        def one(rows: np.ndarray) -> np.ndarray:
            x = rows.astype(np.float32).astype(np.float64)
            node = np.broadcast_to(a["roots"], (len(x), len(a["roots"]))).copy()  # (N, trees)
            depth = np.zeros(node.shape)
            r = np.arange(len(x))[:, None]
            while True:
                inner = left[node] != -1
                if not inner.any():
                    break
                go_left = x[r, feat[node]] <= thr[node]
                nxt = np.where(go_left, left[node], right[node])
                node = np.where(inner, nxt, node)
                depth += inner
            total = (depth + leaf_len[node]).sum(1)
            return np.power(2.0, -total / norm)
        return in_chunks(one, A, 2048)
