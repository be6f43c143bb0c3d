"""Evaluation metrics for streaming anomaly detection.

Pure numpy (matplotlib is imported lazily, only inside :func:`plot_roc`).

Contents
--------
Score-based (threshold-free) metrics
    :func:`roc_curve`, :func:`roc_auc`, :func:`pauc`, :func:`pauc_raw`
Event / segment metrics
    :func:`event_prf`, :func:`point_adjusted_prf`
Point-wise metrics (SKAB outlier-detection protocol)
    :func:`pointwise_prf`
Numenta Anomaly Benchmark (NAB) scoring
    :data:`NAB_PROFILES`, :func:`nab_windows`, :func:`nab_file_score`,
    :func:`nab_score`
Plotting
    :func:`plot_roc`

Zero-division conventions (used consistently by every precision/recall
function in this module):

* precision = 1.0 when nothing was flagged (no false alarms were raised);
* recall    = 1.0 when there is nothing to find;
* f1        = 2PR/(P+R), which equals 2TP/(2TP+FP+FN); it is 0.0 when
  P+R == 0 and 1.0 when there is nothing to find *and* nothing was flagged.

So "no detections, some anomalies" gives (P, R, F1) = (1, 0, 0) and
"some detections, no anomalies" gives (0, 1, 0).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "roc_curve",
    "roc_auc",
    "pauc",
    "pauc_raw",
    "event_prf",
    "point_adjusted_prf",
    "pointwise_prf",
    "NAB_PROFILES",
    "nab_windows",
    "nab_file_score",
    "nab_score",
    "plot_roc",
]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def _as_binary(labels, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 1-D bool array; values must be 0/1 (or bool)."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    if arr.dtype == bool:
        return arr
    if arr.size and not np.all((arr == 0) | (arr == 1)):
        raise ValueError(f"{name} must contain only 0/1 (or boolean) values")
    return arr.astype(bool)


def _as_scores(scores, n: int | None = None) -> np.ndarray:
    """Return ``scores`` as a finite 1-D float array (optionally of length n)."""
    arr = np.asarray(scores, dtype=float).reshape(-1)
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"scores has length {arr.shape[0]}, labels has length {n}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("scores must be finite (no NaN/inf)")
    return arr


def _is_file_list(x) -> bool:
    """True for a non-empty list/tuple whose items are 1-D arrays (one per file)."""
    return isinstance(x, (list, tuple)) and len(x) > 0 and all(np.ndim(e) >= 1 for e in x)


def _pooled(x) -> np.ndarray:
    """Concatenate a list/tuple of 1-D arrays (one per file); pass arrays through."""
    if _is_file_list(x):
        return np.concatenate([np.asarray(e).reshape(-1) for e in x])
    return np.asarray(x).reshape(-1)


def _prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    """Precision, recall, F1 with this module's zero-division conventions."""
    precision = tp / (tp + fp) if (tp + fp) > 0 else 1.0
    recall = tp / (tp + fn) if (tp + fn) > 0 else 1.0
    denom = 2 * tp + fp + fn
    f1 = (2 * tp / denom) if denom > 0 else 1.0
    return float(precision), float(recall), float(f1)


def _trapz(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoidal integral of y(x) (x assumed non-decreasing)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size < 2:
        return 0.0
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) * 0.5))


# ---------------------------------------------------------------------------
# ROC / AUC / partial AUC
# ---------------------------------------------------------------------------
def _check_two_classes(y: np.ndarray) -> tuple[int, int]:
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        only = "positive" if n_neg == 0 else "negative"
        raise ValueError(
            f"ROC AUC is undefined: only one class present in labels "
            f"({y.size} samples, all {only})"
        )
    return n_pos, n_neg


def roc_curve(labels, scores):
    """Receiver operating characteristic curve.

    Higher scores mean "more anomalous"; ``labels`` are 0/1 (1 = anomaly).
    Ties are handled like ``sklearn.metrics.roc_curve(...,
    drop_intermediate=False)``: there is exactly one ROC point per *distinct*
    score value (all samples sharing a score enter together, producing a
    diagonal segment), preceded by the origin (0, 0).

    Parameters
    ----------
    labels : array-like of 0/1 or bool, shape (n,)
    scores : array-like of float, shape (n,)

    Returns
    -------
    fpr, tpr, thresholds : np.ndarray
        ``fpr[i]``/``tpr[i]`` are the rates when predicting positive for
        ``score >= thresholds[i]``. ``thresholds`` is strictly decreasing and
        ``thresholds[0] = inf`` (the "flag nothing" point at (0, 0)).

    Raises
    ------
    ValueError
        If only one class is present (a rate would be 0/0) or inputs are bad.
    """
    y = _as_binary(labels)
    s = _as_scores(scores, y.size)
    n_pos, n_neg = _check_two_classes(y)
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = y[order]
    # last index of each run of equal scores
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], s_sorted.size - 1]
    tps = np.cumsum(y_sorted)[last]
    fps = (last + 1) - tps
    tpr = np.r_[0.0, tps / n_pos]
    fpr = np.r_[0.0, fps / n_neg]
    thresholds = np.r_[np.inf, s_sorted[last]]
    return fpr, tpr, thresholds


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve.

    Computed from average ranks, i.e. the Mann-Whitney U statistic divided by
    ``n_pos * n_neg``: the probability that a random anomaly scores higher
    than a random normal sample, with ties counting 0.5.  This is identical
    to the trapezoidal area under :func:`roc_curve`.

    Raises
    ------
    ValueError
        If only one class is present in ``labels``.
    """
    y = _as_binary(labels)
    s = _as_scores(scores, y.size)
    n_pos, n_neg = _check_two_classes(y)
    # average (mid) ranks, 1-based
    _, inv, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # rank of last member of each tie group
    mid = ends - (counts - 1) / 2.0
    ranks = mid[inv.reshape(-1)]
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _partial_area(labels, scores, max_fpr: float) -> float:
    """Un-normalised ROC area over FPR in [0, max_fpr] (linear interp at max_fpr)."""
    if not (0.0 < float(max_fpr) <= 1.0):
        raise ValueError(f"max_fpr must be in (0, 1], got {max_fpr!r}")
    fpr, tpr, _ = roc_curve(labels, scores)
    if max_fpr >= 1.0:
        return _trapz(fpr, tpr)
    # same construction as sklearn's _binary_roc_auc_score
    stop = int(np.searchsorted(fpr, max_fpr, side="right"))
    x_interp = [fpr[stop - 1], fpr[stop]]
    y_interp = [tpr[stop - 1], tpr[stop]]
    tpr_c = np.append(tpr[:stop], np.interp(max_fpr, x_interp, y_interp))
    fpr_c = np.append(fpr[:stop], max_fpr)
    return _trapz(fpr_c, tpr_c)


def pauc(labels, scores, max_fpr: float = 0.1) -> float:
    """Standardised partial AUC over FPR in [0, max_fpr] (McClish correction).

    Identical to ``sklearn.metrics.roc_auc_score(labels, scores,
    max_fpr=max_fpr)``: the ROC curve (one point per distinct score) is cut at
    ``max_fpr`` with linear interpolation of TPR, the area ``A`` under it is
    computed with the trapezoid rule, and then standardised::

        min_area = max_fpr**2 / 2      # chance diagonal
        max_area = max_fpr             # perfect detector
        pauc     = 0.5 * (1 + (A - min_area) / (max_area - min_area))

    so a random detector scores 0.5 and a perfect one 1.0 (a worse-than-random
    detector can go below 0.5).  ``max_fpr == 1`` returns the full AUC, as
    sklearn does.

    Raises
    ------
    ValueError
        If only one class is present or ``max_fpr`` is not in (0, 1].
    """
    area = _partial_area(labels, scores, max_fpr)
    if max_fpr >= 1.0:
        return float(area)
    min_area = 0.5 * max_fpr**2
    max_area = float(max_fpr)
    return float(0.5 * (1.0 + (area - min_area) / (max_area - min_area)))


def pauc_raw(labels, scores, max_fpr: float = 0.1) -> float:
    """Raw partial AUC divided by ``max_fpr`` (DCASE-2020 Task 2 definition).

    Area under the ROC curve for FPR in [0, max_fpr] (linear interpolation at
    ``max_fpr``, trapezoid rule) divided by ``max_fpr`` so that the result lies
    in [0, 1]; a random detector scores ``max_fpr / 2``, a perfect one 1.0.
    """
    return float(_partial_area(labels, scores, max_fpr) / float(max_fpr))


# ---------------------------------------------------------------------------
# event-level metrics
# ---------------------------------------------------------------------------
def _merge_alerted_windows(starts: np.ndarray, ends: np.ndarray, alerts: np.ndarray):
    """Merge alerted windows into detected segments [(start, end), ...]."""
    order = np.lexsort((ends, starts))
    starts, ends, alerts = starts[order], ends[order], alerts[order]
    segments: list[list[float]] = []
    prev_alerted = False
    for s, e, a in zip(starts, ends, alerts):
        if a:
            if segments and (prev_alerted or s <= segments[-1][1]):
                segments[-1][1] = max(segments[-1][1], e)
            else:
                segments.append([float(s), float(e)])
        prev_alerted = bool(a)
    return [(s, e) for s, e in segments]


def _overlaps(seg, ev, min_overlap: float) -> bool:
    """Closed-interval overlap test with a (capped) minimum overlap length."""
    s0, s1 = seg
    e0, e1 = ev
    inter = min(s1, e1) - max(s0, e0)
    if inter < 0:
        return False
    required = min(float(min_overlap), e1 - e0, s1 - s0)
    return inter >= required


def event_prf(window_starts, window_ends, alerts, events, min_overlap: float = 0.0) -> dict:
    """Event-level precision / recall / F1 for windowed alerts.

    Protocol
    --------
    1. Windows ``[window_starts[i], window_ends[i]]`` (seconds) are sorted by
       start.  Alerted windows are merged into *detected segments*: an alerted
       window joins the current segment if the window directly before it (in
       start order) was also alerted, or if it overlaps/touches the segment
       (``start <= segment_end``).  A segment spans the min start to the max
       end of its windows.
    2. An event ``(start, end)`` and a segment overlap when their closed
       intervals intersect with an intersection length of at least
       ``min(min_overlap, event length, segment length)`` seconds (capping
       keeps point events, ``start == end``, detectable).  With the default
       ``min_overlap=0`` merely touching intervals count.
    3. ``tp`` = events overlapped by at least one segment (detected events);
       ``fn = n_events - tp``; ``tp_segments`` = segments overlapping at least
       one event; ``fp = n_detections - tp_segments`` (false alerts).
    4. ``precision = tp_segments / n_detections`` (1.0 if there are no
       detections); ``recall = tp / n_events`` (1.0 if there are no events);
       ``f1 = 2PR/(P+R)`` (0.0 if P+R == 0).  Hence no events and no
       detections gives P = R = F1 = 1.

    Returns
    -------
    dict with keys ``tp, fp, fn, precision, recall, f1, n_events,
    n_detections`` plus ``tp_segments`` and ``segments`` (list of merged
    (start, end) tuples).
    """
    starts = np.asarray(window_starts, dtype=float).reshape(-1)
    ends = np.asarray(window_ends, dtype=float).reshape(-1)
    flags = np.asarray(alerts).reshape(-1).astype(bool)
    if not (starts.size == ends.size == flags.size):
        raise ValueError("window_starts, window_ends and alerts must have the same length")
    if np.any(ends < starts):
        raise ValueError("every window must have end >= start")
    evs = [(float(a), float(b)) for a, b in events]
    if any(b < a for a, b in evs):
        raise ValueError("every event must have end >= start")
    if min_overlap < 0:
        raise ValueError("min_overlap must be >= 0")

    segments = _merge_alerted_windows(starts, ends, flags)
    hit_event = [any(_overlaps(seg, ev, min_overlap) for seg in segments) for ev in evs]
    hit_seg = [any(_overlaps(seg, ev, min_overlap) for ev in evs) for seg in segments]

    n_events = len(evs)
    n_det = len(segments)
    tp = int(sum(hit_event))
    tp_seg = int(sum(hit_seg))
    fp = n_det - tp_seg
    fn = n_events - tp
    precision = tp_seg / n_det if n_det else 1.0
    recall = tp / n_events if n_events else 1.0
    f1 = 2 * precision * recall / (precision + recall) if (precision + recall) > 0 else 0.0
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "n_events": n_events,
        "n_detections": n_det,
        "tp_segments": tp_seg,
        "segments": segments,
    }


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (start, end) index pairs of the runs of True in ``mask``."""
    m = np.asarray(mask, dtype=bool).reshape(-1)
    if m.size == 0:
        return []
    d = np.diff(np.r_[0, m.astype(np.int8), 0])
    starts = np.nonzero(d == 1)[0]
    ends = np.nonzero(d == -1)[0] - 1
    return list(zip(starts.tolist(), ends.tolist()))


def point_adjusted_prf(labels, preds) -> dict:
    """Point-adjusted precision / recall / F1 (Xu et al., 2018 "Donut" protocol).

    Every maximal run of consecutive ``labels == 1`` is one anomaly segment.
    If any point of a segment is predicted (``preds == 1``), every point of
    that segment is counted as predicted; predictions outside segments are
    left unchanged.  Precision/recall/F1 are then computed point-wise on the
    adjusted predictions (zero-division conventions as in the module
    docstring).  ``labels``/``preds`` may also be lists of per-file 1-D
    arrays: each file is adjusted on its own (segments never span files) and
    the counts are summed (micro-pooling).

    Returns
    -------
    dict with ``precision, recall, f1`` plus counts ``tp, fp, fn``.
    """
    if _is_file_list(labels) or _is_file_list(preds):
        pairs = list(zip(labels, preds))
        if len(pairs) != len(labels) or len(pairs) != len(preds):
            raise ValueError("labels and preds must list the same number of files")
    else:
        pairs = [(labels, preds)]
    tp = fp = fn = 0
    for lab, pred in pairs:
        y = _as_binary(lab, "labels")
        p = _as_binary(pred, "preds")
        if y.size != p.size:
            raise ValueError(f"labels has length {y.size}, preds has length {p.size}")
        adj = p.copy()
        for s, e in _runs(y):
            if p[s : e + 1].any():
                adj[s : e + 1] = True
        tp += int(np.sum(adj & y))
        fp += int(np.sum(adj & ~y))
        fn += int(np.sum(~adj & y))
    precision, recall, f1 = _prf(tp, fp, fn)
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def pointwise_prf(labels, preds) -> dict:
    """Point-wise precision / recall / F1 / FAR / MAR (SKAB outlier protocol).

    This follows the SKAB leaderboard for the *outlier detection* problem
    (``chp_score(true, prediction, metric="binary")`` in SKAB's
    ``core/metrics.py``, imported from the TSAD library):

    * every row is one sample; the confusion counts ``TP, TN, FP, FN`` are
      computed per row (``true == 1`` vs ``prediction == 1``) and **summed
      over all data files** (micro-pooling) before any ratio is taken;
    * ``F1  = TP / (TP + (FN + FP) / 2)``  (= 2PR/(P+R));
    * ``FAR = FP / (FP + TN)`` (false alarm rate);
    * ``MAR = FN / (FN + TP)`` (missed alarm rate);
    * SKAB reports FAR and MAR in percent and rounds F1/FAR/MAR to 2 decimals.

    Here ``far``/``mar`` are returned as *fractions* in [0, 1] and nothing is
    rounded (multiply by 100 and round to 2 decimals to compare with the SKAB
    tables).  To reproduce the pooling, pass ``labels`` and ``preds`` as lists
    of per-file 1-D arrays: they are concatenated, which is exactly summing
    the per-file counts.  Zero-division: precision 1.0 with no predicted
    positives, recall 1.0 with no positives, F1 1.0 when TP=FP=FN=0, FAR 0.0
    with no negatives, MAR 0.0 with no positives.

    SKAB v0.9 outlier-detection leaderboard (waico/SKAB README, sorted by F1;
    out-of-the-box algorithms): Perfect detector 1.00; **Conv-AE 0.79**
    (best; FAR 13.69 %, MAR 17.77 %); MSET 0.73; LSTM-AE 0.68;
    T-squared+Q (PCA-based) 0.67; Vanilla LSTM 0.64; MSCRED 0.64;
    LSTM-VAE 0.56; T-squared 0.56; Vanilla AE 0.45; Isolation forest 0.40
    (lowest FAR, 6.86 %); Null detector 0.

    Returns
    -------
    dict with ``precision, recall, f1, far, mar`` plus counts
    ``tp, fp, tn, fn``.
    """
    y = _as_binary(_pooled(labels), "labels")
    p = _as_binary(_pooled(preds), "preds")
    if y.size != p.size:
        raise ValueError(f"labels has length {y.size}, preds has length {p.size}")
    tp = int(np.sum(p & y))
    fp = int(np.sum(p & ~y))
    tn = int(np.sum(~p & ~y))
    fn = int(np.sum(~p & y))
    precision, recall, f1 = _prf(tp, fp, fn)
    far = fp / (fp + tn) if (fp + tn) > 0 else 0.0
    mar = fn / (fn + tp) if (fn + tp) > 0 else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "far": float(far),
        "mar": float(mar),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


# ---------------------------------------------------------------------------
# NAB
# ---------------------------------------------------------------------------
#: NAB application profiles (numenta/NAB ``config/profiles.json``).
NAB_PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0, "tnWeight": 1.0},
    "reward_low_FP_rate": {"tpWeight": 1.0, "fpWeight": 0.22, "fnWeight": 1.0, "tnWeight": 1.0},
    "reward_low_FN_rate": {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 2.0, "tnWeight": 1.0},
}


def _profile(profile) -> dict:
    if isinstance(profile, str):
        try:
            return NAB_PROFILES[profile]
        except KeyError:
            raise ValueError(
                f"unknown NAB profile {profile!r}; choose one of {sorted(NAB_PROFILES)}"
            ) from None
    if isinstance(profile, Mapping):
        missing = {"tpWeight", "fpWeight", "fnWeight"} - set(profile)
        if missing:
            raise ValueError(f"NAB profile is missing weights: {sorted(missing)}")
        return dict(profile)
    raise TypeError("profile must be a profile name or a dict of weights")


def _scaled_sigmoid(pos: np.ndarray) -> np.ndarray:
    """NAB's scaled sigmoid 2/(1+exp(5*pos)) - 1, clamped to -1 for pos > 3."""
    pos = np.asarray(pos, dtype=float)
    with np.errstate(over="ignore"):
        val = 2.0 / (1.0 + np.exp(5.0 * pos)) - 1.0
    return np.where(pos > 3.0, -1.0, val)


def _probation_length(n: int, probation_frac: float) -> int:
    """NAB probationary length: min(floor(frac * n), frac * 5000) rows."""
    return int(math.ceil(min(math.floor(probation_frac * n), probation_frac * 5000)))


def _normalise_windows(windows, n: int) -> list[tuple[int, int]]:
    """Sort, clip to [0, n-1] and merge overlapping/touching index windows."""
    ws = sorted((max(0, int(a)), min(n - 1, int(b))) for a, b in windows)
    out: list[list[int]] = []
    for a, b in ws:
        if b < a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def nab_windows(timestamps, anomaly_times_or_labels, window_frac: float = 0.1) -> list[tuple[int, int]]:
    """Build NAB anomaly windows (inclusive row-index pairs).

    Follows NAB's ``LabelCombiner.applyWindows``/``checkWindows``: with ``n``
    rows and ``k`` anomalies, each window has length
    ``L = int(window_frac * n / k)`` rows and spans
    ``[max(c - L//2, 0), min(c + L//2, n - 1)]`` around the anomaly centre
    ``c``; windows that overlap are merged.  (NAB additionally deletes a first
    window that starts inside the probationary period; :func:`nab_score` does
    that, this function does not.)

    Parameters
    ----------
    timestamps : array-like, shape (n,)
        Row timestamps (any sortable type) or just row positions.
    anomaly_times_or_labels : array-like
        Either per-row 0/1 labels of length ``n`` (each maximal run of 1s is
        one anomaly whose centre is its middle row ``(first + last) // 2``),
        or a sequence of anomaly timestamps, each mapped to the first row with
        ``timestamp >= t`` (clipped to the last row).  An array of length
        ``n`` whose values are all 0/1 is interpreted as labels.
    window_frac : float
        Total window length as a fraction of the series (NAB: 0.1).

    Returns
    -------
    list of (start_idx, end_idx) tuples, inclusive, sorted.
    """
    ts = np.asarray(timestamps).reshape(-1)
    n = int(ts.size)
    a = np.asarray(anomaly_times_or_labels).reshape(-1)
    if n == 0:
        return []
    is_labels = a.size == n and (a.dtype == bool or np.all((a == 0) | (a == 1)))
    if is_labels:
        centres = [(s + e) // 2 for s, e in _runs(a.astype(bool))]
    else:
        if a.size == 0:
            return []
        idx = np.searchsorted(ts, a, side="left")
        centres = sorted(set(np.clip(idx, 0, n - 1).tolist()))
    k = len(centres)
    if k == 0:
        return []
    length = int(window_frac * n / k)
    half = length // 2
    wins = [(max(c - half, 0), min(c + half, n - 1)) for c in centres]
    return _normalise_windows(wins, n)


def _nab_row_table(n: int, windows, weights: dict, probation_len: int):
    """Per-row NAB sweep scores.

    Returns (win_id, sweep, windows) where ``win_id[i]`` is the window index
    of row i (-1: outside every window, -2: probationary row) and
    ``sweep[i]`` is the score the row would earn if it were the (first)
    detection: weighted TP score inside a window, weighted (negative) FP score
    outside.
    """
    wins = _normalise_windows(windows, n)
    tp_w, fp_w = float(weights["tpWeight"]), float(weights["fpWeight"])
    max_tp = float(_scaled_sigmoid(-1.0))
    idx = np.arange(n)
    win_id = np.full(n, -1, dtype=np.int64)
    sweep = np.zeros(n, dtype=float)
    for w, (a, b) in enumerate(wins):
        width = b - a + 1
        rows = idx[a : b + 1]
        win_id[a : b + 1] = w
        pos = -(b - rows + 1) / width  # -1 at the window start, -1/width at its end
        sweep[a : b + 1] = _scaled_sigmoid(pos) * tp_w / max_tp
    outside = win_id == -1
    if outside.any():
        rights = np.array([b for _, b in wins], dtype=np.int64)
        widths = np.array([b - a + 1 for a, b in wins], dtype=float)
        rows = idx[outside]
        k = np.searchsorted(rights, rows, side="left") - 1  # last window ending before row
        val = np.full(rows.size, -1.0)
        has_prev = k >= 0
        if has_prev.any():
            kk = k[has_prev]
            denom = widths[kk] - 1.0
            with np.errstate(divide="ignore", invalid="ignore"):
                pos = np.where(denom > 0, (rows[has_prev] - rights[kk]) / denom, np.inf)
            val[has_prev] = _scaled_sigmoid(pos)
        sweep[outside] = val * fp_w
    win_id[:probation_len] = -2
    return win_id, sweep, wins


def nab_file_score(scores, windows, threshold, profile="standard", probation_frac: float = 0.15):
    """Raw NAB score of one data file at one threshold.

    Rules (numenta/NAB ``nab/sweeper.py``, re-implemented):

    * a row is a detection when ``score >= threshold``;
    * the first ``min(floor(probation_frac * n), probation_frac * 5000)`` rows
      are the probationary period: detections there are ignored entirely, and
      a window with no row after it is not scored at all;
    * inside a window ``[a, b]`` (width ``w = b - a + 1``) a detection at row
      ``i`` is worth ``tpWeight * S(-(b - i + 1) / w) / S(-1)`` with the scaled
      sigmoid ``S(x) = 2 / (1 + exp(5x)) - 1`` (``S(x) = -1`` for ``x > 3``);
      so the window's first row earns exactly ``tpWeight`` and later rows
      less.  Only the best (= earliest) detection of a window counts; further
      detections in the same window cost nothing;
    * a window without a detection costs ``-fnWeight``;
    * every detection outside all windows is a false positive worth
      ``fpWeight * S((i - b_prev) / (w_prev - 1))`` relative to the closest
      preceding window (``-fpWeight`` when there is no preceding window, or
      when that window has width 1);
    * true negatives score 0.

    Overlapping windows are merged first; windows are clipped to the series.

    Parameters
    ----------
    scores : array-like, shape (n,)
        Anomaly scores (NAB uses [0, 1]).
    windows : sequence of (start_idx, end_idx)
        Inclusive row-index windows, e.g. from :func:`nab_windows`.
    threshold : float
    profile : str or dict
        A key of :data:`NAB_PROFILES` or a dict with ``tpWeight``,
        ``fpWeight``, ``fnWeight``.
    probation_frac : float

    Returns
    -------
    (raw_score, counts) where counts has ``tp`` (windows detected), ``fn``
    (windows missed), ``fp`` (false-positive detection rows), ``tn``
    (non-detected rows outside windows), ``n_windows`` (scored windows) and
    ``probation`` (number of probationary rows).
    """
    s = _as_scores(scores)
    weights = _profile(profile)
    n = s.size
    plen = _probation_length(n, probation_frac)
    win_id, sweep, wins = _nab_row_table(n, windows, weights, plen)
    det = s >= threshold
    scorable_windows = sorted(set(win_id[win_id >= 0].tolist()))
    raw = 0.0
    tp = fn = 0
    for w in scorable_windows:
        hit = (win_id == w) & det
        if hit.any():
            raw += float(sweep[hit].max())
            tp += 1
        else:
            raw -= float(weights["fnWeight"])
            fn += 1
    fp_mask = (win_id == -1) & det
    raw += float(sweep[fp_mask].sum())
    counts = {
        "tp": tp,
        "fn": fn,
        "fp": int(fp_mask.sum()),
        "tn": int(((win_id == -1) & ~det).sum()),
        "n_windows": len(scorable_windows),
        "probation": plen,
    }
    return float(raw), counts


def _drop_probation_windows(wins, n: int, probation_frac: float):
    """NAB labeler rule: delete the first window if it starts inside probation."""
    plen = _probation_length(n, probation_frac)
    if wins and wins[0][0] < plen:
        return list(wins[1:])
    return list(wins)


def nab_score(files, profile="standard", probation_frac: float = 0.15, window_frac: float = 0.1) -> dict:
    """Normalised NAB score of a detector over a corpus of files.

    Parameters
    ----------
    files : sequence of (scores, labels)
        Per file: anomaly scores (NAB expects [0, 1]) and per-row 0/1 labels
        (each run of 1s is one anomaly; windows come from :func:`nab_windows`
        with ``window_frac``).  As in NAB's labeler, a first window starting
        inside the probationary period is deleted.
    profile : str or dict
        A key of :data:`NAB_PROFILES` or a dict of weights.

    Protocol
    --------
    * One threshold is shared by all files.  It is optimised exactly (not on
      a grid): every distinct score value in the corpus is a candidate
      (detection = ``score >= threshold``), plus "no detections"
      (threshold ``max(1.1, nextafter(max score))``, as NAB starts at 1.1);
      the threshold maximising the summed raw score (:func:`nab_file_score`)
      wins, ties going to the highest threshold.
    * ``null`` = raw corpus score of a detector that never fires
      (``-fnWeight`` per scored window); ``perfect`` = ``tpWeight`` per scored
      window (one detection at the first row of every window).
    * ``score = 100 * (raw - null) / (perfect - null)`` (NaN when the corpus
      has no scorable window, since the normalisation is then undefined).

    Returns
    -------
    dict with ``score, threshold, raw, null, perfect`` and ``counts`` (summed
    :func:`nab_file_score` counts at the chosen threshold).
    """
    weights = _profile(profile)
    fn_w, tp_w = float(weights["fnWeight"]), float(weights["tpWeight"])
    all_scores, all_incr = [], []
    n_windows_total = 0
    prepared = []
    for scores, labels in files:
        s = _as_scores(scores)
        y = _as_binary(labels)
        if y.size != s.size:
            raise ValueError(f"scores has length {s.size}, labels has length {y.size}")
        n = s.size
        wins = _drop_probation_windows(nab_windows(np.arange(n), y, window_frac), n, probation_frac)
        prepared.append((s, wins))
        plen = _probation_length(n, probation_frac)
        win_id, sweep, _ = _nab_row_table(n, wins, weights, plen)
        # false-positive rows: additive contribution
        fp_rows = win_id == -1
        all_scores.append(s[fp_rows])
        all_incr.append(sweep[fp_rows])
        # window rows: the window's value is the running max of TP scores over
        # rows entering in decreasing-score order; record the increments.
        for w in np.unique(win_id[win_id >= 0]):
            rows = np.nonzero(win_id == w)[0]
            order = np.argsort(-s[rows], kind="mergesort")
            run = np.maximum.accumulate(sweep[rows][order])
            prev = np.r_[-fn_w, run[:-1]]
            all_scores.append(s[rows][order])
            all_incr.append(run - prev)
            n_windows_total += 1

    null = -fn_w * n_windows_total
    perfect = tp_w * n_windows_total
    sc = np.concatenate(all_scores) if all_scores else np.zeros(0)
    inc = np.concatenate(all_incr) if all_incr else np.zeros(0)
    max_score = max([float(np.max(p[0])) for p in prepared if p[0].size] or [0.0])
    best_thr = max(1.1, float(np.nextafter(max_score, np.inf)))
    best_raw = null
    if sc.size:
        order = np.argsort(-sc, kind="mergesort")
        sc_o, totals = sc[order], null + np.cumsum(inc[order])
        last = np.r_[np.nonzero(np.diff(sc_o))[0], sc_o.size - 1]
        cand_raw = totals[last]
        k = int(np.argmax(cand_raw))
        if cand_raw[k] > best_raw + 1e-12:
            best_raw = float(cand_raw[k])
            best_thr = float(sc_o[last[k]])

    # recompute exactly at the chosen threshold (also gives the counts)
    raw = 0.0
    counts = {"tp": 0, "fn": 0, "fp": 0, "tn": 0, "n_windows": 0}
    for s, wins in prepared:
        r, c = nab_file_score(s, wins, best_thr, weights, probation_frac)
        raw += r
        for key in counts:
            counts[key] += c[key]
    if perfect - null > 0:
        score = 100.0 * (raw - null) / (perfect - null)
    else:
        score = float("nan")
    return {
        "score": float(score),
        "threshold": float(best_thr),
        "raw": float(raw),
        "null": float(null),
        "perfect": float(perfect),
        "counts": counts,
    }


# ---------------------------------------------------------------------------
# plotting
# ---------------------------------------------------------------------------
def plot_roc(curves: Mapping[str, Sequence], path, title: str = "ROC curves") -> str:
    """Plot one or more ROC curves to a PNG file.

    Parameters
    ----------
    curves : dict name -> (fpr, tpr, auc)
        ``auc`` may be None to omit it from the legend.
    path : str or path-like
        Output PNG path (parent directories are created).
    title : str

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend
    change), importing matplotlib only when called.  Returns ``str(path)``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 5.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1, label="chance")
    for name, curve in curves.items():
        fpr, tpr = np.asarray(curve[0], float), np.asarray(curve[1], float)
        auc = curve[2] if len(curve) > 2 else None
        label = f"{name} (AUC={auc:.3f})" if auc is not None else str(name)
        ax.plot(fpr, tpr, linewidth=1.5, label=label)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    fig.savefig(path, format="png")
    return path
