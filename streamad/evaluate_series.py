"""Evaluation of a trained series model on labelled series (SKAB-, NAB- and ECG-style).

Protocol
--------
* Windows: every full window of ``model.frontend.window`` readings starting at
  rows ``0, hop, 2 hop, ...`` of each series (``hop`` defaults to the model's
  ``series.hop``, i.e. what the daemon scores), scored with ``model.score``.
* Alert statistic: the daemon's rule, the k-th largest score of the last n
  windows (``alerts.min_windows`` of ``alerts.of_windows``, see
  :func:`streamad.calibrate.smooth`); a window alerts when it is
  ``> model.threshold``.
* Window -> row mapping (``row_rule``):

  - ``"cover"`` (default): a row's score is the **largest score of the windows
    that cover it** (contain it), so a row is alerted when any alerted window
    contains it, which is what the daemon's alert for that window asserts.
    Rows after the last full window take the last window's score.
  - ``"end"`` (causal): a row's score is the score of the latest window ending
    at or before it, i.e. what a streaming detector knows at that row's time;
    rows before the first window end take the first window's score.
  - ``"center"``: the window whose centre is nearest to the row.
  - ``"cover_min"``: the smallest score of the windows covering the row, i.e.
    a row is alerted only when every window containing it alerted.
  - ``"skab"``: SKAB's reference notebooks (Conv-AE, LSTM-AE, ...), kept for
    comparisons with the SKAB leaderboard: row i is alerted only when every
    window starting in ``[i - window + 1, i - 1]`` alerted, and only rows
    ``window - 1 .. T - 2 * window + 1`` can be alerted at all (the notebooks'
    loop bounds; the first ``window - 1`` and last ``2 * window - 2`` rows of
    every file are never flagged, which favours SKAB files whose anomaly ends
    well before the file does). Rows that cannot be alerted get a score below
    every window score.

  Row alerts use the same mapping applied to the smoothed statistic.
* Window labels (window-level ROC-AUC): a window is anomalous when **any** of
  its rows is labelled anomalous. The row-level ROC-AUC uses the mapped row
  scores against the row labels.
* Threshold metrics on rows, counts summed over all files (micro-pooling):
  point-adjusted P/R/F1 (:func:`streamad.metrics.point_adjusted_prf`) and the
  SKAB point-wise F1/FAR/MAR (:func:`streamad.metrics.pointwise_prf`).
* NAB: :func:`streamad.metrics.nab_score` for the standard, low-FP and low-FN
  profiles. NAB rewards the first detection in a window around each anomaly and
  charges every detection row outside one, so it is scored on what the daemon
  emits, alert *events* (``nab_mode="events"``, default): walking the windows
  in order, a window over the threshold opens an event unless an alerted
  window ended less than ``alerts.cooldown_s`` before it (such windows extend
  the open event, as in the daemon); the event is placed on the last row of
  its first window (the time the alert can be sent) with anomaly score
  ``sigmoid(statistic - threshold)`` (> 0.5), all other rows score 0.
  ``nab_mode="scores"`` uses ``sigmoid(statistic - threshold)`` on every row
  instead (the row statistic mapped by ``row_rule``). NAB optimises its own
  threshold over all files. NAB windows (10 % of the file length divided by
  the number of anomalies, NAB's rule) are centred on the **onset** (first
  row) of each labelled run (``nab_anomaly="onset"``, for labels that mark a
  whole anomalous period, as SKAB's do) or on its middle
  (``nab_anomaly="middle"``, for labels that are NAB windows already).

Beat-level ECG evaluation (:func:`evaluate_ecg_beats`): one window centred on
each annotated beat (``data.beats``, samples), scored once; ROC-AUC of the
abnormal beats (``beat_labels == 1``) against the normal ones.
"""
from __future__ import annotations

import csv
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from streamad.calibrate import smooth
from streamad.metrics import nab_score, pauc, point_adjusted_prf, pointwise_prf, roc_auc
from streamad.progress import bar

if TYPE_CHECKING:  # pragma: no cover
    from streamad.io.seriesfiles import SeriesData
    from streamad.pipeline import AnomalyModel

ROW_RULES = ("cover", "end", "center", "cover_min", "skab")
NAB_PROFILE_NAMES = {"standard": "standard", "low_fp": "reward_low_FP_rate", "low_fn": "reward_low_FN_rate"}


def _values(data: Any) -> np.ndarray:
    v = np.asarray(data.values, dtype=np.float32)
    return v[:, None] if v.ndim == 1 else v


def window_starts(n: int, window: int, hop: int) -> np.ndarray:
    """Start rows of all full windows of a series of n readings."""
    if n < window:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n - window + 1, hop, dtype=np.int64)


def score_windows(model: "AnomalyModel", values: np.ndarray, starts: np.ndarray, batch: int = 512,
                  pbar: Any = None) -> np.ndarray:
    """Scores of the windows ``values[s:s + window]`` for each start s."""
    win = model.frontend.window
    v = np.asarray(values, dtype=np.float32)
    v = v[:, None] if v.ndim == 1 else v
    view = np.lib.stride_tricks.sliding_window_view(v, win, axis=0)  # (T-win+1, C, win)
    out = []
    for i in range(0, len(starts), batch):
        chunk = np.ascontiguousarray(view[starts[i:i + batch]].transpose(0, 2, 1))
        s, _ = model.score(chunk)
        out.append(np.asarray(s, dtype=np.float64))
        if pbar is not None:
            pbar.update(len(chunk))
    return np.concatenate(out) if out else np.zeros(0)


def rows_from_windows(win_scores: np.ndarray, starts: np.ndarray, window: int, n: int,
                      rule: str = "cover") -> np.ndarray:
    """Map window scores to the n rows (see the module docstring for the rules)."""
    if rule not in ROW_RULES:
        raise ValueError(f"row_rule must be one of {', '.join(ROW_RULES)}, got {rule!r}")
    s = np.asarray(win_scores, dtype=np.float64)
    if len(s) == 0:
        return np.full(n, -np.inf)
    rows = np.arange(n)
    ends = starts + window - 1
    if rule == "end":
        k = np.searchsorted(ends, rows, side="right") - 1
        return s[np.clip(k, 0, len(s) - 1)]
    if rule == "center":
        centres = starts + (window - 1) / 2.0
        k = np.clip(np.searchsorted(centres, rows), 0, len(s) - 1)
        prev = np.clip(k - 1, 0, len(s) - 1)
        k = np.where(np.abs(centres[prev] - rows) <= np.abs(centres[k] - rows), prev, k)
        return s[k]
    if rule == "cover_min":
        return -_cover_max(-s, starts, window, n)
    if rule == "skab":
        low = float(s.min()) - 1.0
        out = np.full(n, low)
        for i in range(window - 1, n - 2 * window + 2):
            a, b = np.searchsorted(starts, [i - window + 1, i])  # windows starting in [i-W+1, i-1]
            if b > a:
                out[i] = s[a:b].min()
        return out
    return _cover_max(s, starts, window, n)


def _cover_max(s: np.ndarray, starts: np.ndarray, window: int, n: int) -> np.ndarray:
    """Largest score of the windows covering each row (uncovered rows: latest window before)."""
    rows = np.arange(n)
    out = np.full(n, -np.inf)
    hop = int(starts[1] - starts[0]) if len(starts) > 1 else window
    if hop >= 1 and len(starts) > 1 and np.all(np.diff(starts) == hop) and hop <= window:
        # windows covering row r: starts in [r - window + 1, r]; sliding max over the window index
        first = np.clip(np.ceil((rows - window + 1 - starts[0]) / hop).astype(np.int64), 0, len(s) - 1)
        last = np.clip(np.floor((rows - starts[0]) / hop).astype(np.int64), -1, len(s) - 1)
        span = int(math.ceil(window / hop))
        pad = np.concatenate([s, np.full(span, -np.inf)])
        view = np.lib.stride_tricks.sliding_window_view(pad, span)  # view[i] = s[i:i+span]
        ok = last >= first
        cnt = last - first + 1
        # max of s[first:last+1]; cnt <= span, mask the tail beyond cnt
        vals = view[np.clip(first, 0, len(s) - 1)]
        mask = np.arange(span)[None, :] < cnt[:, None]
        out[ok] = np.where(mask, vals, -np.inf).max(axis=1)[ok]
    else:
        for st, sc in zip(starts, s):
            seg = out[st:st + window]
            np.maximum(seg, sc, out=seg)
    uncovered = ~np.isfinite(out)
    if uncovered.any():  # rows after the last full window (or between windows when hop > window)
        k = np.clip(np.searchsorted(starts, rows[uncovered], side="right") - 1, 0, len(s) - 1)
        out[uncovered] = s[k]
    return out


def _logistic(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.clip(x, -500, 500)))


def alert_events(window_stat: np.ndarray, starts: np.ndarray, window: int, threshold: float,
                 cooldown: int) -> list[tuple[int, float]]:
    """(row, statistic) of each alert event: see ``nab_mode="events"`` in the module docstring."""
    events: list[tuple[int, float]] = []
    last_end = None  # last row of the latest alerted window
    for st, v in zip(starts, window_stat):
        if not v > threshold:
            continue
        end = int(st) + window - 1
        if last_end is None or end - last_end > cooldown:
            events.append((end, float(v)))
        last_end = end
    return events


def nab_row_scores(model: "AnomalyModel", r: dict[str, np.ndarray], n: int, mode: str = "events") -> np.ndarray:
    """Per-row NAB anomaly scores in [0, 1] from :func:`series_row_scores` output."""
    thr = model.threshold
    if mode == "scores":
        return _logistic(r["row_stat"] - thr)
    if mode != "events":
        raise ValueError(f"nab_mode must be 'events' or 'scores', got {mode!r}")
    out = np.zeros(n)
    fe = model.frontend
    cooldown = int(round(model.cfg.alerts.cooldown_s * fe.rate))
    for row, v in alert_events(r["window_stat"], r["starts"], fe.window, thr, cooldown):
        out[min(row, n - 1)] = _logistic(np.array(v - thr))
    return out


def nab_labels(y: np.ndarray, anomaly: str = "onset") -> np.ndarray:
    """Labels handed to :func:`streamad.metrics.nab_score` (each run of 1s is one anomaly)."""
    y = np.asarray(y).astype(bool)
    if anomaly == "middle":
        return y.astype(np.int8)
    if anomaly != "onset":
        raise ValueError(f"nab_anomaly must be 'onset' or 'middle', got {anomaly!r}")
    on = y & ~np.r_[False, y[:-1]]
    return on.astype(np.int8)


def series_row_scores(model: "AnomalyModel", data: Any, hop: int | None = None, row_rule: str = "cover",
                      pbar: Any = None) -> dict[str, np.ndarray]:
    """Window and row scores of one series: starts, window scores, smoothed, row scores/statistic."""
    values = _values(data)
    n, win = len(values), model.frontend.window
    hop = int(hop or model.frontend.hop)
    starts = window_starts(n, win, hop)
    ws = score_windows(model, values, starts, pbar=pbar)
    cal = model.calibration
    k, m = (cal.min_windows, cal.of_windows) if cal is not None else (1, 1)
    sm = smooth(ws, k, m) if len(ws) else ws
    return {"starts": starts, "window_scores": ws, "window_stat": sm,
            "row_scores": rows_from_windows(ws, starts, win, n, row_rule),
            "row_stat": rows_from_windows(sm, starts, win, n, row_rule)}


def evaluate_series(model: "AnomalyModel", datas: Sequence["SeriesData"], progress: bool = True,
                    hop: int | None = None, row_rule: str = "cover", nab: bool = True,
                    nab_mode: str = "events", nab_anomaly: str = "onset") -> dict[str, Any]:
    """Score every window of every labelled series; return pooled metrics (see module docstring)."""
    labelled = [d for d in datas if getattr(d, "labels", None) is not None]
    if not labelled:
        raise ValueError("no labelled series to evaluate (need a label column)")
    win, thr = model.frontend.window, model.threshold
    hop = int(hop or model.frontend.hop)
    total = sum(len(window_starts(len(d.values), win, hop)) for d in labelled)
    row_y, row_s, row_a, win_y, win_s, per_file, nab_files = [], [], [], [], [], [], []
    with bar(total, "score series", "win", progress) as pb:
        for d in labelled:
            y = np.asarray(d.labels).astype(bool).reshape(-1)
            r = series_row_scores(model, d, hop, row_rule, pbar=pb)
            starts, ws = r["starts"], r["window_scores"]
            if len(ws) == 0:
                per_file.append({"name": d.name, "rows": int(len(y)), "windows": 0, "skipped": "shorter than a window"})
                continue
            cum = np.concatenate([[0], np.cumsum(y)])
            wy = (cum[starts + win] - cum[starts]) > 0
            alerts = r["row_stat"] > thr
            row_y.append(y)
            row_s.append(r["row_scores"])
            row_a.append(alerts)
            win_y.append(wy)
            win_s.append(ws)
            if nab:
                nab_files.append((nab_row_scores(model, r, len(y), nab_mode), nab_labels(y, nab_anomaly)))
            pw = pointwise_prf(y, alerts)
            per_file.append({"name": d.name, "rows": int(len(y)), "anomalous_rows": int(y.sum()),
                             "windows": int(len(ws)), "alerted_rows": int(alerts.sum()),
                             "f1": pw["f1"], "far": pw["far"], "mar": pw["mar"],
                             **{k: pw[k] for k in ("tp", "fp", "tn", "fn")}})
    if not row_y:
        raise ValueError("every labelled series is shorter than one window")
    out: dict[str, Any] = {
        "files": len(row_y), "rows": int(sum(len(y) for y in row_y)),
        "anomalous_rows": int(sum(int(y.sum()) for y in row_y)),
        "windows": int(sum(len(s) for s in win_s)), "window": win, "hop": hop, "row_rule": row_rule,
        "threshold": float(thr), "window_label": "any row anomalous",
    }
    ally, alls = np.concatenate(row_y), np.concatenate(row_s)
    wy, wsc = np.concatenate(win_y), np.concatenate(win_s)
    out["row_auc"] = _safe(roc_auc, ally, alls)
    out["row_pauc_0.1"] = _safe(pauc, ally, alls)
    out["window_auc"] = _safe(roc_auc, wy, wsc)
    out["point_adjusted"] = point_adjusted_prf(row_y, row_a)
    out["pointwise"] = pointwise_prf(row_y, row_a)
    if nab:
        out["nab"] = {}
        for short, prof in NAB_PROFILE_NAMES.items():
            res = nab_score(nab_files, profile=prof)
            out["nab"][short] = {"score": res["score"], "threshold": res["threshold"], "counts": res["counts"]}
        out["nab"]["mode"], out["nab"]["anomaly"] = nab_mode, nab_anomaly
    out["per_file"] = per_file
    return out


def _safe(fn, y: np.ndarray, s: np.ndarray) -> float | None:
    try:
        return float(fn(y, s))
    except ValueError:  # one class only
        return None


def _timestamps(d: Any, n: int) -> list[str]:
    labels = getattr(d, "time_labels", None)
    if labels is not None and len(labels) == n:
        return [str(t) for t in labels]
    times = getattr(d, "times", None)
    if times is not None and len(times) == n:
        return [datetime.fromtimestamp(float(t), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S") for t in times]
    return [str(i) for i in range(n)]


def write_nab_csvs(model: "AnomalyModel", datas: Sequence["SeriesData"], out_dir: str | Path,
                   hop: int | None = None, row_rule: str = "cover", progress: bool = True,
                   nab_mode: str = "events") -> list[Path]:
    """One NAB results CSV per series: ``timestamp,value,anomaly_score,label``.

    ``value`` is the first channel's reading, ``anomaly_score`` in [0, 1] as
    scored by :func:`evaluate_series` (``nab_mode="events"``: ``sigmoid(statistic
    - threshold)`` on the rows where an alert event is raised, 0 elsewhere;
    ``"scores"``: on every row, 0.5 at the alert threshold), ``label`` the row
    label as given (0 when the series has none). Files are named
    ``<detector>_<parent folder>_<file stem>.csv``; returns their paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    win = model.frontend.window
    h = int(hop or model.frontend.hop)
    total = sum(len(window_starts(len(d.values), win, h)) for d in datas)
    paths = []
    with bar(total, "NAB csv", "win", progress) as pb:
        for d in datas:
            values = _values(d)
            n = len(values)
            r = series_row_scores(model, d, h, row_rule, pbar=pb)
            score = nab_row_scores(model, r, n, nab_mode) if n >= win else np.zeros(n)
            labels = getattr(d, "labels", None)
            lab = np.zeros(n, dtype=np.int8) if labels is None else np.asarray(labels).astype(np.int8)
            parts = Path(str(d.name)).with_suffix("").parts[-2:]  # parent folder + stem: valve1/3.csv -> valve1_3
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", "_".join(parts)).strip("_")
            p = out / f"{model.name}_{name or 'series'}.csv"
            with p.open("w", newline="") as fh:
                wr = csv.writer(fh)
                wr.writerow(["timestamp", "value", "anomaly_score", "label"])
                for t, v, s, y in zip(_timestamps(d, n), values[:, 0], score, lab):
                    wr.writerow([t, f"{float(v):.6g}", f"{float(s):.6f}", int(y)])
            paths.append(p)
    return paths


def evaluate_ecg_beats(model: "AnomalyModel", data: "SeriesData", start: int = 0, end: int | None = None,
                       progress: bool = True, return_scores: bool = False) -> dict[str, Any]:
    """Beat-level ROC-AUC: abnormal vs normal beats with sample index in [start, end).

    A beat's score is the score of the window of ``model.frontend.window``
    samples centred on it (start ``beat - window // 2``); beats whose window
    does not fit in the record are skipped and counted. ``return_scores`` adds
    the numpy arrays ``beat_samples``, ``scores`` and ``labels`` to the result
    (the rest of it is JSON-able).
    """
    beats = getattr(data, "beats", None)
    blabels = getattr(data, "beat_labels", None)
    if beats is None or blabels is None:
        raise ValueError(f"{data.name}: no beat annotations (beats / beat_labels)")
    values = _values(data)
    n, win = len(values), model.frontend.window
    beats = np.asarray(beats, dtype=np.int64)
    blabels = np.asarray(blabels).astype(bool)
    end = n if end is None else end
    sel = (beats >= start) & (beats < end)
    b, y = beats[sel], blabels[sel]
    ws = b - win // 2
    fits = (ws >= 0) & (ws + win <= n)
    b, y, ws = b[fits], y[fits], ws[fits]
    with bar(len(ws), "score beats", "beat", progress) as pb:
        scores = score_windows(model, values, ws, pbar=pb)
    thr = model.threshold
    out: dict[str, Any] = {
        "name": data.name, "beats": int(len(b)), "abnormal": int(y.sum()), "normal": int((~y).sum()),
        "skipped": int((~fits).sum()), "range": [int(start), int(end)], "window": win,
        "auc": _safe(roc_auc, y, scores), "pauc_0.1": _safe(pauc, y, scores), "threshold": float(thr),
        "recall_at_threshold": float((scores[y] > thr).mean()) if y.any() else None,
        "false_alert_rate_at_threshold": float((scores[~y] > thr).mean()) if (~y).any() else None,
    }
    if return_scores:
        out["beat_samples"], out["scores"], out["labels"] = b, scores, y.astype(np.int8)
    return out
