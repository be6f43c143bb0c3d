"""``streamad eval`` for audio: how well a saved model separates events from normal sound.

Protocol (DCASE 2017 Task 2 style): for every EBR and every held-out normal recording, one
event recording (trimmed to its active part, at most ``max_event_s``) is mixed in at a random
position; every window is scored.

* segment metrics: ROC-AUC and pAUC (FPR <= 0.1, McClish-standardised) over windows; a window
  is positive when it overlaps the event by >= 0.1 s, negative when it does not overlap at all
  (windows with a smaller overlap are left out);
* event metrics at the calibrated threshold with the daemon's alert rule (k-of-n + cooldown):
  an event is found when an alert segment overlaps it; an alert segment overlapping no event
  is a false alert;
* false alerts per hour on the pure normal recordings.

PNGs: ROC curves per EBR, and for the top-scoring windows the input patch, the model's
reconstruction and the residual |x - G(x)|.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from streamad import metrics
from streamad.alerts import AlertRule
from streamad.evaluation.mixing import mix_event, trim_event, window_labels
from streamad.evidence import plot_residual
from streamad.io.files import InputError, list_audio, load_audio
from streamad.model import AnomalyModel
from streamad.progress import bar
from streamad.scoring import score_recording
from streamad.windows.base import windows_at


def false_alerts(model: AnomalyModel, signals: list[np.ndarray]) -> dict[str, float]:
    """Alerts (events opened) on pure normal recordings, per hour of audio."""
    rule, n_alerts, secs, max_score = AlertRule.for_model(model), 0, 0.0, -math.inf
    for sig in signals:
        r = score_recording(model, sig)
        if len(r.scores):
            n_alerts += len(rule.decide(r.scores, *r.times(model)).events)
            max_score = max(max_score, float(r.scores.max()))
        secs += len(sig) / model.frontend.sr
    return {"false_alerts": n_alerts, "hours": secs / 3600, "per_hour": n_alerts / (secs / 3600) if secs else 0.0,
            "max_normal_score": max_score}


def _load(model: AnomalyModel, normal, events, max_event_s: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    sr, win = model.frontend.sr, model.frontend.window
    normal_files, event_files = list_audio([normal]), list_audio([events])
    if not normal_files or not event_files:
        raise InputError(f"eval: no audio in {normal if not normal_files else events}")
    backgrounds = [b for b in (load_audio(f, sr) for f in normal_files) if len(b) >= win + 1]
    evs = [e for e in (trim_event(load_audio(f, sr), sr, max_event_s) for f in event_files) if len(e) > sr // 50]
    if not backgrounds:
        raise InputError("eval: every normal recording is shorter than one window")
    return backgrounds, evs


def _one_ebr(model: AnomalyModel, backgrounds, evs, ebr: float, rng, top: list, pb) -> tuple[dict, tuple]:
    """Mix one event into every background at ``ebr``; segment and event metrics."""
    sr, rule = model.frontend.sr, AlertRule.for_model(model)
    S, L, tp, fp, fn = [], [], 0, 0, 0
    for bi, bg in enumerate(backgrounds):
        ev = evs[rng.integers(len(evs))][: max(1, len(bg) - sr // 10)]
        start = int(rng.integers(0, max(1, len(bg) - len(ev))))
        mix = mix_event(bg, ev, start, ebr)
        r = score_recording(model, mix)
        st, en = r.times(model)
        ev_iv = (start / sr, (start + len(ev)) / sr)
        lab = window_labels(st, en, [ev_iv])
        S.append(r.scores[lab >= 0])
        L.append(lab[lab >= 0])
        e = metrics.event_prf(st, en, rule.decide(r.scores, st, en).trig, [ev_iv])
        tp, fp, fn = tp + e["tp"], fp + e["fp"], fn + e["fn"]
        j = int(np.argmax(r.scores))
        top.append((float(r.scores[j]), ebr, bi, windows_at(mix, model.frontend.window, r.starts[j:j + 1])[0],
                    float(st[j])))
        pb.update(1)
    S, L = np.concatenate(S), np.concatenate(L)
    auc = metrics.roc_auc(L, S)
    fpr, tpr, _ = metrics.roc_curve(L, S)
    res = {"auc": auc, "pauc": metrics.pauc(L, S, 0.1), **metrics.prf(tp, fp, fn), "events": tp + fn,
           "windows": int(len(S)), "positive_windows": int(L.sum())}
    return res, (fpr, tpr, auc)


def eval_audio(model_dir: str | Path | None, normal: str | Path, events: str | Path, ebrs=(-6.0, 0.0, 6.0),
               seed: int = 0, out: str | Path | None = "eval-out", device: str = "cpu", top_alerts: int = 3,
               max_event_s: float = 4.0, model: AnomalyModel | None = None, progress: bool = True) -> dict[str, Any]:
    model = model or AnomalyModel.load(model_dir, device=device)
    if model.cfg.kind != "audio":
        raise InputError(f"{model_dir}: an audio evaluation needs an audio model (this one is {model.cfg.kind})")
    backgrounds, evs = _load(model, normal, events, max_event_s)
    rng = np.random.default_rng(seed)
    res: dict[str, Any] = {"model": model.version, "detector": model.name, "threshold": model.threshold,
                           "normal_files": len(backgrounds), "event_files": len(evs), "per_ebr": {}}
    curves, top = {}, []
    with bar(len(ebrs) * len(backgrounds), "eval", "mix", progress) as pb:
        for ebr in ebrs:
            res["per_ebr"][f"{ebr:g}"], curves[f"EBR {ebr:+g} dB"] = _one_ebr(model, backgrounds, evs, ebr, rng, top, pb)
    for key, name in (("mean_auc", "auc"), ("mean_pauc", "pauc"), ("mean_f1", "f1")):
        res[key] = float(np.mean([v[name] for v in res["per_ebr"].values()]))
    res["pure_normal"] = false_alerts(model, backgrounds)
    res["window_s"] = (model.frontend.window - model.frontend.lead) / model.frontend.sr
    if out:
        out = Path(out)
        res["roc_png"] = metrics.plot_roc(curves, out / "roc.png", f"{model.name} {model.version}")
        top.sort(key=lambda t: -t[0])
        res["residual_pngs"] = [plot_residual(model, w, out / f"alert_{i + 1}.png",
                                              f"score {s:.1f} (EBR {e:+g} dB, mix {b}, t={t:.1f}s)")
                                for i, (s, e, b, w, t) in enumerate(top[:top_alerts])]
    return res
