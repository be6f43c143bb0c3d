"""Beat-level evaluation of a heart-signal model (WFDB records with beat annotations).

One window centred on each annotated beat (``beats``, samples) is scored once; ROC-AUC of the
abnormal beats (``beat_labels == 1``) against the normal ones, and recall / false alerts at
the model's calibrated threshold.
"""
from __future__ import annotations

from typing import Any

import numpy as np

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
