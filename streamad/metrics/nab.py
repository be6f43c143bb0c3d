"""Numenta Anomaly Benchmark (NAB) scoring, re-implemented from NAB's published rules.

Given NAB's own windows (``labels/combined_windows.json``, as row-index pairs) and a fixed
threshold, :func:`nab_file_score` / :func:`nab_score` reproduce NAB's sweeper. When windows
are built from anomaly points (:func:`nab_windows`), NAB's labeler rules apply: each anomaly
gets a window of ``int(window_frac * n / k)`` rows centred on it, a *first* window starting in
the probationary period is deleted, and only then are overlapping windows merged.

Counts are named by what they count: ``windows_detected`` / ``windows_missed`` are windows,
``fp_rows`` / ``tn_rows`` are rows.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from streamad.metrics.events import runs
from streamad.metrics.roc import as_binary, as_scores

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


def nab_windows(timestamps, anomaly_times_or_labels, window_frac: float = 0.1,
                probation_frac: float | None = None) -> list[tuple[int, int]]:
    """NAB anomaly windows (inclusive row-index pairs), following NAB's labeler.

    With ``n`` rows and ``k`` anomalies each window has ``L = int(window_frac * n / k)`` rows
    and spans ``[max(c - L//2, 0), min(c + L//2, n - 1)]`` around the anomaly row ``c``
    (``applyWindows``). With ``probation_frac`` given, a first window that starts inside the
    probationary period is deleted, and only then are overlapping windows merged
    (``checkWindows``).

    ``anomaly_times_or_labels``: per-row 0/1 labels of length ``n`` (each run of 1s is one
    anomaly centred on its middle row ``(first + last) // 2``), or anomaly timestamps, each
    mapped to the first row with ``timestamp >= t``.
    """
    ts = np.asarray(timestamps).reshape(-1)
    n = int(ts.size)
    a = np.asarray(anomaly_times_or_labels).reshape(-1)
    if n == 0:
        return []
    if a.size == n and (a.dtype == bool or np.all((a == 0) | (a == 1))):
        centres = [(s + e) // 2 for s, e in runs(a.astype(bool))]
    else:
        idx = np.searchsorted(ts, a, side="left")
        centres = sorted(set(np.clip(idx, 0, n - 1).tolist()))
    if not centres:
        return []
    half = int(window_frac * n / len(centres)) // 2
    wins = [(max(c - half, 0), min(c + half, n - 1)) for c in centres]
    if probation_frac is not None and wins[0][0] < _probation_length(n, probation_frac):
        wins = wins[1:]
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
    (raw_score, counts) where counts has ``windows_detected``, ``windows_missed``,
    ``fp_rows`` (detections outside every window), ``tn_rows`` (quiet rows outside windows),
    ``n_windows`` (scored windows) and ``probation`` (probationary rows).
    """
    s = as_scores(scores)
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
    counts = {"windows_detected": tp, "windows_missed": fn, "fp_rows": int(fp_mask.sum()),
              "tn_rows": int(((win_id == -1) & ~det).sum()), "n_windows": len(scorable_windows),
              "probation": plen}
    return float(raw), counts


def _prepare(files, windows, weights: dict, probation_frac: float, window_frac: float):
    """Per file (scores, windows), the (score, raw-score increment) pairs of every row, and the
    number of scorable windows."""
    prepared, cand_s, cand_inc, n_windows = [], [], [], 0
    fn_w = float(weights["fnWeight"])
    for i, (scores, labels) in enumerate(files):
        s = as_scores(scores)
        n = s.size
        if windows is not None:
            wins = _normalise_windows(windows[i], n)
        else:
            y = as_binary(labels)
            if y.size != n:
                raise ValueError(f"scores has length {n}, labels has length {y.size}")
            wins = nab_windows(np.arange(n), y, window_frac, probation_frac)
        prepared.append((s, wins))
        win_id, sweep, _ = _nab_row_table(n, wins, weights, _probation_length(n, probation_frac))
        fp_rows = win_id == -1  # false-positive rows add their sweep score
        cand_s.append(s[fp_rows])
        cand_inc.append(sweep[fp_rows])
        # a window is worth the running max of its rows' TP scores, rows entering by score
        for w in np.unique(win_id[win_id >= 0]):
            rows = np.nonzero(win_id == w)[0]
            order = np.argsort(-s[rows], kind="mergesort")
            run = np.maximum.accumulate(sweep[rows][order])
            cand_s.append(s[rows][order])
            cand_inc.append(run - np.r_[-fn_w, run[:-1]])
            n_windows += 1
    return prepared, cand_s, cand_inc, n_windows


def _best_threshold(prepared, cand_s, cand_inc, null: float) -> float:
    """Exact optimum over every distinct score (ties to the highest); 'no detections' first."""
    max_score = max([float(np.max(s)) for s, _ in prepared if s.size] or [0.0])
    best_thr, best_raw = max(1.1, float(np.nextafter(max_score, np.inf))), null
    sc = np.concatenate(cand_s) if cand_s else np.zeros(0)
    if sc.size:
        inc = np.concatenate(cand_inc)
        order = np.argsort(-sc, kind="mergesort")
        sc_o, totals = sc[order], null + np.cumsum(inc[order])
        last = np.r_[np.nonzero(np.diff(sc_o))[0], sc_o.size - 1]
        k = int(np.argmax(totals[last]))
        if totals[last][k] > best_raw + 1e-12:
            best_thr = float(sc_o[last[k]])
    return best_thr


def nab_score(files, profile="standard", probation_frac: float = 0.15, window_frac: float = 0.1,
              windows=None, threshold: float | None = None) -> dict:
    """Normalised NAB score of a detector over a corpus of files.

    ``files``: per file ``(scores, labels)`` — anomaly scores (NAB expects [0, 1]) and per-row
    0/1 labels from which windows are built by :func:`nab_windows` (NAB's labeler rules).
    ``windows``: NAB's own windows instead, one list of inclusive (start_row, end_row) pairs per
    file (labels are then ignored and may be None). ``threshold``: score at this fixed
    threshold instead of NAB's optimisation.

    Optimisation (as NAB's sweeper): one threshold for all files; every distinct score is a
    candidate (detection = ``score >= threshold``) plus "no detections" (``max(1.1, above the
    largest score)``); the best summed raw score wins, ties to the highest threshold.
    ``null`` = the raw score of a detector that never fires (``-fnWeight`` per scored window),
    ``perfect`` = ``tpWeight`` per scored window, ``score = 100 (raw - null) / (perfect -
    null)`` (NaN without scorable windows).

    Returns ``score, threshold, raw, null, perfect`` and ``counts`` (summed
    :func:`nab_file_score` counts at the threshold).
    """
    files = list(files)
    if windows is not None and len(windows) != len(files):
        raise ValueError("windows must give one list of windows per file")
    weights = _profile(profile)
    prepared, cand_s, cand_inc, n_windows = _prepare(files, windows, weights, probation_frac, window_frac)
    raw, counts, thr = 0.0, {}, threshold
    null, perfect = -float(weights["fnWeight"]) * n_windows, float(weights["tpWeight"]) * n_windows
    if thr is None:
        thr = _best_threshold(prepared, cand_s, cand_inc, null)
    for s, wins in prepared:  # exactly at the chosen threshold (also gives the counts)
        r, c = nab_file_score(s, wins, thr, weights, probation_frac)
        raw += r
        for key, v in c.items():
            if key != "probation":
                counts[key] = counts.get(key, 0) + v
    score = 100.0 * (raw - null) / (perfect - null) if perfect - null > 0 else float("nan")
    return {"score": float(score), "threshold": float(thr), "raw": float(raw), "null": float(null),
            "perfect": float(perfect), "counts": counts}
