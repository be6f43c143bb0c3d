"""Beat-level evaluation of a heart-signal model (WFDB records with beat annotations).

One window centred on each annotated beat (``beats``, samples) is scored once; ROC-AUC of the
abnormal beats (``beat_labels == 1``) against the normal ones, and recall / false alerts at
the model's calibrated threshold.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from streamad.alerts import AlertRule
from streamad.evaluation.series import _safe
from streamad.kinds import Recording
from streamad.metrics import pauc, roc_auc
from streamad.model import AnomalyModel
from streamad.progress import bar
from streamad.scoring import score_recording


def evaluate_ecg_beats(model: AnomalyModel, rec: Recording, start: int = 0, end: int | None = None,
                       progress: bool = True, return_scores: bool = False) -> dict[str, Any]:
    """Beat-level ROC-AUC: abnormal vs normal beats with sample index in [start, end).

    A beat's score is the score of the window of ``model.frontend.window`` samples centred on
    it (start ``beat - window // 2``); beats whose window does not fit are skipped and counted.
    ``return_scores`` adds the arrays ``beat_samples``, ``scores`` and ``labels``.
    """
    d = rec.source
    if getattr(d, "beats", None) is None or getattr(d, "beat_labels", None) is None:
        raise ValueError(f"{rec.name}: no beat annotations (beats / beat_labels)")
    n, win = len(rec.signal), model.frontend.window
    beats, labels = np.asarray(d.beats, dtype=np.int64), np.asarray(d.beat_labels).astype(bool)
    end = n if end is None else end
    sel = (beats >= start) & (beats < end)
    b, y = beats[sel], labels[sel]
    ws = b - win // 2
    fits = (ws >= 0) & (ws + win <= n)
    b, y, ws = b[fits], y[fits], ws[fits]
    with bar(len(ws), "score beats", "beat", progress) as pb:
        scores = score_recording(model, rec.signal, starts=ws, pbar=pb).scores
    thr = model.threshold
    out: dict[str, Any] = {
        "name": rec.name, "beats": int(len(b)), "abnormal": int(y.sum()), "normal": int((~y).sum()),
        "skipped": int((~fits).sum()), "range": [int(start), int(end)], "window": win,
        "auc": _safe(roc_auc, y, scores), "pauc_0.1": _safe(pauc, y, scores), "threshold": float(thr),
        "recall_at_threshold": float((scores[y] > thr).mean()) if y.any() else None,
        "false_alert_rate_at_threshold": float((scores[~y] > thr).mean()) if (~y).any() else None,
    }
    if return_scores:
        out["beat_samples"], out["scores"], out["labels"] = b, scores, y.astype(np.int8)
    return out


def beat_alert_tradeoff(model: AnomalyModel, rec: Recording, start: int = 0, end: int | None = None,
                        n_thresholds: int = 60, near_s: float = 0.75) -> dict[str, Any]:
    """What the daemon would do on the stream [start, end): alerts vs abnormal beats.

    Every window on the model's grid (as the daemon cuts them) is scored and the alert rule
    (k-of-n + cooldown) applied at a range of thresholds. With ``near`` = min(window / 2,
    ``near_s``): an abnormal beat is *found* when a triggering window's centre lies within
    ``near`` of it; an alert is *false* when no abnormal beat lies within ``near`` of its opening
    window's centre. (With 1.5 s windows that is "the opening window holds an abnormal beat";
    longer windows are not credited for an abnormal beat somewhere in their span.) The looser
    counts are kept as ``recall_span`` (the event's span, opening window start .. last triggering
    window end, covers the beat) and ``false_alerts_window`` (the opening window holds no
    abnormal beat). Returns the curve (threshold, recall, false alerts, false alerts per hour)
    and the point at the calibrated threshold.
    """
    d = rec.source
    end = len(rec.signal) if end is None else end
    r = score_recording(model, rec.signal[start:end])
    st, en = r.times(model)
    mid = (np.asarray(st) + np.asarray(en)) / 2.0
    near = min((en[0] - st[0]) / 2.0 if len(st) else near_s, near_s)
    abn = np.asarray(d.beats)[np.asarray(d.beat_labels).astype(bool)]
    ab_t = (abn[(abn >= start) & (abn < end)] - start) / float(d.rate_hz)
    hours = (end - start) / float(d.rate_hz) / 3600.0
    base = AlertRule.for_model(model)

    def point(thr: float) -> dict[str, float]:
        rule = AlertRule(float(thr), base.min_windows, base.of_windows, base.cooldown_s)
        dec = rule.decide(r.scores, st, en)
        ev, trig_mid = dec.events, mid[dec.trig]
        found = sum(bool(np.any(np.abs(trig_mid - t) <= near)) for t in ab_t)
        false = sum(not np.any(np.abs(ab_t - mid[e.first]) <= near) for e in ev)
        span = sum(any(e.start <= t <= e.end for e in ev) for t in ab_t)
        false_w = sum(not any(st[e.first] <= t <= en[e.first] for t in ab_t) for e in ev)
        n = len(ab_t)
        return {"threshold": float(thr), "recall": found / n if n else float("nan"),
                "false_alerts": int(false), "false_alerts_per_hour": false / hours if hours else float("nan"),
                "recall_span": span / n if n else float("nan"), "false_alerts_window": int(false_w)}

    qs = np.quantile(r.scores, np.linspace(0.9, 1.0, n_thresholds)) if len(r.scores) else []
    return {"abnormal_beats": int(len(ab_t)), "hours": hours, "windows": int(len(r.scores)), "near_s": float(near),
            "curve": [point(t) for t in sorted(set(np.round(qs, 4)), reverse=True)],
            "calibrated": point(model.threshold)}
