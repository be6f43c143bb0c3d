"""Threshold metrics: one precision/recall/F1 rule, applied to events, adjusted points and points.

* :func:`prf` — the one P/R/F1 (+ FAR/MAR) computation every caller uses;
* :func:`event_prf` — alerted windows merged into segments vs labelled events;
* :func:`point_adjusted_prf` — Xu et al. 2018 ("Donut"): a detected segment counts whole;
* :func:`pointwise_prf` — SKAB's outlier protocol (counts summed over files).
"""
from __future__ import annotations

import numpy as np

from streamad.metrics.roc import as_binary


def prf(tp: int, fp: int, fn: int, tn: int | None = None) -> dict:
    """Precision, recall, F1 (and FAR, MAR when ``tn`` is given) from counts.

    precision = TP/(TP+FP) (1 without detections); recall = TP/(TP+FN) (1 with nothing to
    find); F1 = 2TP/(2TP+FP+FN) (1 when all three are 0), which equals SKAB's
    TP/(TP+(FP+FN)/2); FAR = FP/(FP+TN) (0 without negatives); MAR = FN/(FN+TP) (0 without
    positives).
    """
    tp, fp, fn = int(tp), int(fp), int(fn)
    out = {"precision": tp / (tp + fp) if tp + fp else 1.0,
           "recall": tp / (tp + fn) if tp + fn else 1.0,
           "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 1.0,
           "tp": tp, "fp": fp, "fn": fn}
    if tn is not None:
        out.update(tn=int(tn), far=fp / (fp + tn) if fp + tn else 0.0, mar=fn / (fn + tp) if fn + tp else 0.0)
    return out


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (start, end) index pairs of the runs of True in ``mask``."""
    m = np.asarray(mask, dtype=bool).reshape(-1)
    if m.size == 0:
        return []
    d = np.diff(np.r_[0, m.astype(np.int8), 0])
    return list(zip(np.nonzero(d == 1)[0].tolist(), (np.nonzero(d == -1)[0] - 1).tolist()))


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
    """Closed-interval overlap with a (capped) minimum overlap length."""
    inter = min(seg[1], ev[1]) - max(seg[0], ev[0])
    if inter < 0:
        return False
    return inter >= min(float(min_overlap), ev[1] - ev[0], seg[1] - seg[0])


def event_prf(window_starts, window_ends, alerts, events, min_overlap: float = 0.0) -> dict:
    """Event-level precision / recall / F1 for windowed alerts.

    Alerted windows (sorted by start) merge into *detected segments*: an alerted window joins
    the current segment if the window before it was alerted too or if it overlaps/touches the
    segment. An event and a segment match when their closed intervals intersect by at least
    ``min(min_overlap, event length, segment length)`` seconds. ``tp`` = events matched by a
    segment, ``fn`` = the other events, ``fp`` = segments matching no event (false alerts).
    Precision is counted over segments (``tp_segments / n_detections``), recall over events.

    Returns the counts, ``precision, recall, f1``, ``n_events``, ``n_detections``,
    ``tp_segments`` and ``segments`` (merged (start, end) tuples).
    """
    starts = np.asarray(window_starts, dtype=float).reshape(-1)
    ends = np.asarray(window_ends, dtype=float).reshape(-1)
    flags = np.asarray(alerts).reshape(-1).astype(bool)
    if not starts.size == ends.size == flags.size:
        raise ValueError("window_starts, window_ends and alerts must have the same length")
    if np.any(ends < starts):
        raise ValueError("every window must have end >= start")
    evs = [(float(a), float(b)) for a, b in events]
    if any(b < a for a, b in evs):
        raise ValueError("every event must have end >= start")
    if min_overlap < 0:
        raise ValueError("min_overlap must be >= 0")
    segments = _merge_alerted_windows(starts, ends, flags)
    tp = sum(any(_overlaps(seg, ev, min_overlap) for seg in segments) for ev in evs)
    tp_seg = sum(any(_overlaps(seg, ev, min_overlap) for ev in evs) for seg in segments)
    n_det = len(segments)
    # precision is counted over segments (one segment may cover two events), recall over events
    precision = prf(tp_seg, n_det - tp_seg, 0)["precision"]
    recall = prf(tp, 0, len(evs) - tp)["recall"]
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"tp": tp, "fp": n_det - tp_seg, "fn": len(evs) - tp, "precision": float(precision),
            "recall": float(recall), "f1": float(f1), "n_events": len(evs), "n_detections": n_det,
            "tp_segments": tp_seg, "segments": segments}


def _file_pairs(labels, preds) -> list[tuple]:
    """[(labels, preds)] per file: lists of per-file arrays are kept apart, arrays are one file."""
    def is_list(x):
        return isinstance(x, (list, tuple)) and len(x) > 0 and all(np.ndim(e) >= 1 for e in x)

    if is_list(labels) or is_list(preds):
        if not (is_list(labels) and is_list(preds)) or len(labels) != len(preds):
            raise ValueError("labels and preds must list the same number of files")
        pairs = list(zip(labels, preds))
    else:
        pairs = [(labels, preds)]
    out = []
    for lab, pred in pairs:
        y, p = as_binary(lab, "labels"), as_binary(pred, "preds")
        if y.size != p.size:
            raise ValueError(f"labels has length {y.size}, preds has length {p.size}")
        out.append((y, p))
    return out


def point_adjusted_prf(labels, preds) -> dict:
    """Point-adjusted P/R/F1 (Xu et al., 2018): a segment with any predicted point counts whole.

    Every maximal run of ``labels == 1`` is one segment; if any of its points is predicted,
    all of them count as predicted; predictions outside segments stay. Lists of per-file
    arrays are adjusted per file (segments never span files) and the counts summed.
    """
    tp = fp = fn = 0
    for y, p in _file_pairs(labels, preds):
        adj = p.copy()
        for s, e in runs(y):
            if p[s:e + 1].any():
                adj[s:e + 1] = True
        tp += int(np.sum(adj & y))
        fp += int(np.sum(adj & ~y))
        fn += int(np.sum(~adj & y))
    return prf(tp, fp, fn)


def pointwise_prf(labels, preds) -> dict:
    """Point-wise P/R/F1/FAR/MAR, counts summed over files (SKAB outlier-detection leaderboard).

    SKAB (waico/SKAB ``chp_score(..., metric="binary")``) pools TP/FP/TN/FN over all files and
    reports F1 = TP/(TP + (FN+FP)/2), FAR = FP/(FP+TN), MAR = FN/(FN+TP) in percent, rounded
    to 2 decimals; here FAR/MAR are fractions and nothing is rounded. SKAB v0.9 leaderboard:
    Conv-AE 0.79 (FAR 13.69 %, MAR 17.77 %) best; Isolation forest 0.40; Null detector 0.
    """
    tp = fp = tn = fn = 0
    for y, p in _file_pairs(labels, preds):
        tp += int(np.sum(p & y))
        fp += int(np.sum(p & ~y))
        tn += int(np.sum(~p & ~y))
        fn += int(np.sum(~p & y))
    return prf(tp, fp, fn, tn)
