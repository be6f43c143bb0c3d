"""Evaluation of a series model on labelled series (SKAB-, NAB-style row labels).

* Windows: every full window at the model's hop (what the daemon scores), scored by
  :func:`streamad.scoring.score_recording`; alerts by :class:`streamad.alerts.AlertRule`
  (the daemon's rule) on window times ``index / rate``.
* Window -> row mapping (``row_rule``), applied to the window scores and to the alert
  statistic (k-th largest of the last n scores):

  - ``cover`` (default): a row takes the **largest** score of the windows containing it, so
    a row alerts when any alerted window contains it (what the daemon's alert asserts); rows
    after the last full window take the last window's score;
  - ``cover_min``: the smallest score of the windows containing it (every one must alert);
  - ``end`` (causal): the latest window ending at or before the row (first window before);
  - ``center``: the window whose centre is nearest;
  - ``skab``: SKAB's reference notebooks (for leaderboard comparisons): row i alerts only when
    every window starting in ``[i - window + 1, i - 1]`` alerted, and only rows
    ``window - 1 .. T - 2 window + 1`` can alert at all (the notebooks' loop bounds).
* Window labels: a window is anomalous when any of its rows is. Row ROC-AUC uses the mapped
  row scores; threshold metrics (point-adjusted, SKAB point-wise) use the mapped statistic,
  counts summed over files.
* NAB: scored on what the daemon emits, alert *events*: each event is placed on the last row
  of its opening window with score ``sigmoid(statistic - threshold)`` (> 0.5), other rows 0;
  NAB windows are centred on the onset of each labelled run (labels mark whole anomalous
  periods, as SKAB's do); NAB optimises its own threshold.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy.ndimage import maximum_filter1d

from streamad.alerts import AlertRule, smooth
from streamad.kinds import Recording
from streamad.metrics import nab_score, pauc, point_adjusted_prf, pointwise_prf, roc_auc
from streamad.model import AnomalyModel
from streamad.progress import bar
from streamad.scoring import score_recording
from streamad.windows.base import window_starts

ROW_RULES = ("cover", "end", "center", "cover_min", "skab")
NAB_PROFILE_NAMES = {"standard": "standard", "low_fp": "reward_low_FP_rate", "low_fn": "reward_low_FN_rate"}


def rows_from_windows(win_scores: np.ndarray, starts: np.ndarray, window: int, n: int,
                      rule: str = "cover") -> np.ndarray:
    """Map window scores to the n rows (see the module docstring for the rules)."""
    if rule not in ROW_RULES:
        raise ValueError(f"row_rule must be one of {', '.join(ROW_RULES)}, got {rule!r}")
    s = np.asarray(win_scores, dtype=np.float64)
    if len(s) == 0:
        return np.full(n, -np.inf)
    rows = np.arange(n)
    if rule == "end":
        k = np.searchsorted(starts + window - 1, rows, side="right") - 1
        return s[np.clip(k, 0, len(s) - 1)]
    if rule == "center":
        centres = starts + (window - 1) / 2.0
        k = np.clip(np.searchsorted(centres, rows), 0, len(s) - 1)
        prev = np.clip(k - 1, 0, len(s) - 1)
        return s[np.where(np.abs(centres[prev] - rows) <= np.abs(centres[k] - rows), prev, k)]
    if rule == "cover_min":
        return -_cover_max(-s, starts, window, n)
    if rule == "skab":
        out = np.full(n, float(s.min()) - 1.0)  # rows the notebooks never flag: below every score
        for i in range(window - 1, n - 2 * window + 2):
            a, b = np.searchsorted(starts, [i - window + 1, i])  # windows starting in [i-W+1, i-1]
            if b > a:
                out[i] = s[a:b].min()
        return out
    return _cover_max(s, starts, window, n)


def _cover_max(s: np.ndarray, starts: np.ndarray, window: int, n: int) -> np.ndarray:
    """Largest score of the windows covering each row (uncovered rows: latest window before)."""
    at_start = np.full(n, -np.inf)
    np.maximum.at(at_start, starts, s)
    # windows covering row r start in [r - window + 1, r]: a trailing maximum over `window` rows
    out = maximum_filter1d(at_start, size=window, origin=(window - 1) // 2, mode="constant", cval=-np.inf)
    uncovered = ~np.isfinite(out)
    if uncovered.any():  # rows after the last full window (or between windows when hop > window)
        k = np.clip(np.searchsorted(starts, np.flatnonzero(uncovered), side="right") - 1, 0, len(s) - 1)
        out[uncovered] = s[k]
    return out


def _logistic(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.clip(x, -500, 500)))


def series_row_scores(model: AnomalyModel, rec: Recording, row_rule: str = "cover",
                      pbar: Any = None) -> dict[str, Any]:
    """Window scores, alert statistic and decision, and their row mappings, of one series."""
    n, win = len(rec.signal), model.frontend.window
    r = score_recording(model, rec.signal, pbar=pbar)
    rule = AlertRule.for_model(model)
    st, en = r.times(model)
    stat = smooth(r.scores, rule.min_windows, rule.of_windows)
    return {"starts": r.starts, "window_scores": r.scores, "window_stat": stat,
            "decision": rule.decide(r.scores, st, en),
            "row_scores": rows_from_windows(r.scores, r.starts, win, n, row_rule),
            "row_stat": rows_from_windows(stat, r.starts, win, n, row_rule)}


def nab_row_scores(model: AnomalyModel, r: dict[str, Any], n: int) -> np.ndarray:
    """Per-row NAB scores: ``sigmoid(statistic - threshold)`` on the row where each alert event
    can be sent (the last row of its opening window), 0 elsewhere."""
    out = np.zeros(n)
    thr, win = model.threshold, model.frontend.window
    for i in np.flatnonzero(r["decision"].opens):
        out[min(int(r["starts"][i]) + win - 1, n - 1)] = _logistic(np.array(r["window_stat"][i] - thr))
    return out


def nab_labels(y: np.ndarray) -> np.ndarray:
    """Onset rows of each labelled run (the anomaly points NAB centres its windows on)."""
    y = np.asarray(y).astype(bool)
    return (y & ~np.r_[False, y[:-1]]).astype(np.int8)


def _safe(fn, y: np.ndarray, s: np.ndarray) -> float | None:
    try:
        return float(fn(y, s))
    except ValueError:  # one class only
        return None


def evaluate_series(model: AnomalyModel, recs: Sequence[Recording], progress: bool = True,
                    row_rule: str = "cover", nab: bool = True) -> dict[str, Any]:
    """Score every window of every labelled series; pooled metrics (see the module docstring)."""
    labelled = [r for r in recs if getattr(r.source, "labels", None) is not None]
    if not labelled:
        raise ValueError("no labelled series to evaluate (need a label column)")
    win, thr = model.frontend.window, model.threshold
    total = sum(len(window_starts(len(r.signal), win, model.frontend.hop)) for r in labelled)
    acc: dict[str, list] = {k: [] for k in ("y", "s", "a", "wy", "ws", "nab")}
    per_file = []
    with bar(total, "score series", "win", progress) as pb:
        for rec in labelled:
            y = np.asarray(rec.source.labels).astype(bool).reshape(-1)
            r = series_row_scores(model, rec, row_rule, pbar=pb)
            if len(r["window_scores"]) == 0:
                per_file.append({"name": rec.name, "rows": int(len(y)), "windows": 0,
                                 "skipped": "shorter than a window"})
                continue
            cum = np.concatenate([[0], np.cumsum(y)])
            alerts = r["row_stat"] > thr
            for k, v in (("y", y), ("s", r["row_scores"]), ("a", alerts), ("ws", r["window_scores"]),
                         ("wy", (cum[r["starts"] + win] - cum[r["starts"]]) > 0)):
                acc[k].append(v)
            if nab:
                acc["nab"].append((nab_row_scores(model, r, len(y)), nab_labels(y)))
            per_file.append({"name": rec.name, "rows": int(len(y)), "anomalous_rows": int(y.sum()),
                             "windows": int(len(r["window_scores"])), "alerted_rows": int(alerts.sum()),
                             **pointwise_prf(y, alerts)})
    if not acc["y"]:
        raise ValueError("every labelled series is shorter than one window")
    return _pooled(acc, per_file, win, model, row_rule, nab)


def _pooled(acc: dict[str, list], per_file: list, win: int, model: AnomalyModel, row_rule: str,
            nab: bool) -> dict[str, Any]:
    ally, alls = np.concatenate(acc["y"]), np.concatenate(acc["s"])
    wy, ws = np.concatenate(acc["wy"]), np.concatenate(acc["ws"])
    out: dict[str, Any] = {
        "files": len(acc["y"]), "rows": int(ally.size), "anomalous_rows": int(ally.sum()),
        "windows": int(ws.size), "window": win, "hop": model.frontend.hop, "row_rule": row_rule,
        "threshold": float(model.threshold), "window_label": "any row anomalous",
        "row_auc": _safe(roc_auc, ally, alls), "row_pauc_0.1": _safe(pauc, ally, alls),
        "window_auc": _safe(roc_auc, wy, ws),
        "point_adjusted": point_adjusted_prf(acc["y"], acc["a"]), "pointwise": pointwise_prf(acc["y"], acc["a"]),
    }
    if nab:
        out["nab"] = {short: {k: v for k, v in nab_score(acc["nab"], profile=prof).items()
                              if k in ("score", "threshold", "counts")}
                      for short, prof in NAB_PROFILE_NAMES.items()}
    out["per_file"] = per_file
    return out


def write_nab_csvs(model: AnomalyModel, recs: Sequence[Recording], out_dir: str | Path,
                   row_rule: str = "cover", progress: bool = True) -> list[Path]:
    """One NAB results CSV per series: ``timestamp,value,anomaly_score,label``.

    ``value`` is the first channel, ``anomaly_score`` the NAB row score of
    :func:`nab_row_scores`, ``label`` the row label (0 without labels). Files are named
    ``<detector>_<parent folder>_<file stem>.csv``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    win, paths = model.frontend.window, []
    total = sum(len(window_starts(len(r.signal), win, model.frontend.hop)) for r in recs)
    with bar(total, "NAB csv", "win", progress) as pb:
        for rec in recs:
            n, d = len(rec.signal), rec.source
            score = nab_row_scores(model, series_row_scores(model, rec, row_rule, pb), n) if n >= win else np.zeros(n)
            lab = np.zeros(n, np.int8) if d.labels is None else np.asarray(d.labels).astype(np.int8)
            parts = Path(str(rec.name)).with_suffix("").parts[-2:]  # valve1/3.csv -> valve1_3
            p = out / f"{model.name}_{re.sub(r'[^A-Za-z0-9._-]+', '_', '_'.join(parts)).strip('_') or 'series'}.csv"
            with p.open("w", newline="") as fh:
                wr = csv.writer(fh)
                wr.writerow(["timestamp", "value", "anomaly_score", "label"])
                for t, v, s, y in zip(d.time_labels, rec.signal[:, 0], score, lab):
                    wr.writerow([t, f"{float(v):.6g}", f"{float(s):.6f}", int(y)])
            paths.append(p)
    return paths
