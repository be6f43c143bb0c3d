"""Threshold-free metrics: ROC curve, ROC-AUC and standardised partial AUC.

Thin wrappers over scikit-learn that fix the conventions streamad reports with: higher score =
more anomalous, labels 0/1, one ROC point per distinct score (``drop_intermediate=False``),
finite scores only, and a one-line ``ValueError`` when a rate would be 0/0 (one class only).
"""
from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def as_binary(labels, name: str = "labels") -> np.ndarray:
    """``labels`` as a 1-D bool array; values must be 0/1 (or bool)."""
    arr = np.asarray(labels).reshape(-1)
    if arr.dtype == bool:
        return arr
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} must contain only 0/1 (or boolean) values")
    return arr.astype(bool)


def as_scores(scores, n: int | None = None) -> np.ndarray:
    """``scores`` as a finite 1-D float array (optionally of length n)."""
    arr = np.asarray(scores, dtype=float).reshape(-1)
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"scores has length {arr.shape[0]}, labels has length {n}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("scores must be finite (no NaN/inf)")
    return arr


def _checked(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = as_binary(labels)
    s = as_scores(scores, y.size)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        only = "positive" if n_pos else "negative"
        raise ValueError(f"ROC AUC is undefined: only one class present in labels ({y.size} samples, all {only})")
    return y, s


def roc_curve(labels, scores):
    """(fpr, tpr, thresholds): one point per distinct score, preceded by (0, 0) at threshold inf.

    ``fpr[i]``/``tpr[i]`` are the rates when flagging ``score >= thresholds[i]``.
    """
    y, s = _checked(labels, scores)
    return skm.roc_curve(y, s, drop_intermediate=False)


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve (= P(anomaly scores higher than normal), ties count 1/2)."""
    y, s = _checked(labels, scores)
    return float(skm.roc_auc_score(y, s))


def pauc(labels, scores, max_fpr: float = 0.1) -> float:
    """McClish-standardised partial AUC over FPR in [0, max_fpr] (random 0.5, perfect 1.0).

    ``max_fpr == 1`` gives the full AUC, as scikit-learn does.
    """
    if not 0.0 < float(max_fpr) <= 1.0:
        raise ValueError(f"max_fpr must be in (0, 1], got {max_fpr!r}")
    y, s = _checked(labels, scores)
    return float(skm.roc_auc_score(y, s, max_fpr=None if max_fpr >= 1.0 else float(max_fpr)))
