"""Evaluation metrics for streaming anomaly detection, one subject per module.

* :mod:`.roc`    — threshold-free: ROC curve, ROC-AUC, standardised partial AUC (scikit-learn);
* :mod:`.events` — threshold metrics: one P/R/F1 rule, event-level, point-adjusted and
  point-wise (SKAB) precision / recall / F1 / FAR / MAR;
* :mod:`.nab`    — the Numenta Anomaly Benchmark scorer;
* :mod:`.plots`  — ROC curves as PNG.

Zero-division conventions (every precision/recall function here): precision = 1 when nothing
was flagged, recall = 1 when there is nothing to find, F1 = 2TP / (2TP + FP + FN) with 1 when
TP = FP = FN = 0. So "no detections, some anomalies" is (1, 0, 0) and "some detections, no
anomalies" is (0, 1, 0).
"""
from streamad.metrics.events import event_prf, point_adjusted_prf, pointwise_prf, prf
from streamad.metrics.nab import NAB_PROFILES, nab_file_score, nab_score, nab_windows
from streamad.metrics.plots import plot_roc
from streamad.metrics.roc import pauc, roc_auc, roc_curve

__all__ = ["roc_curve", "roc_auc", "pauc", "prf", "event_prf", "point_adjusted_prf", "pointwise_prf",
           "NAB_PROFILES", "nab_windows", "nab_file_score", "nab_score", "plot_roc"]
