"""``streamad eval``: how well a saved model separates events from normal sound.

Audio protocol (DCASE 2017 Task 2 style): for every EBR and every held-out normal
recording, one event recording (trimmed to its active part, at most
``max_event_s``) is mixed in at a random position; every window is scored.

* segment metrics: ROC-AUC and pAUC (FPR <= 0.1, McClish-standardised like
  sklearn) over windows; a window is positive when it overlaps the event by
  >= 0.1 s, negative when it does not overlap at all (windows with a smaller
  overlap are left out);
* event metrics at the calibrated threshold with the daemon's alert rule
  (k-of-n + cooldown): an event is found when an alert segment overlaps it; an
  alert segment overlapping no event is a false alert;
* false alerts per hour on the pure normal recordings.

PNGs: ROC curves per EBR, and for the top-scoring windows the input patch, the
model's reconstruction and the residual |x - G(x)|.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamad import metrics
from streamad.alerts import decide
from streamad.io.files import InputError, list_audio, load_audio
from streamad.mixing import mix_event, trim_event, window_labels
from streamad.pipeline import AnomalyModel
from streamad.progress import bar
from streamad.windows.audio import frame_windows


def _score_signal(model: AnomalyModel, sig: np.ndarray):
    fe = model.frontend
    W = frame_windows(sig, fe.window, fe.hop)
    scores, _ = model.score(W)
    starts = np.arange(len(W)) * fe.hop / fe.sr
    return W, scores, starts, starts + fe.window / fe.sr


def false_alerts(model: AnomalyModel, signals: list[np.ndarray]) -> dict[str, float]:
    cal, n_alerts, secs, max_score = model.calibration, 0, 0.0, -math.inf
    for sig in signals:
        _, scores, st, en = _score_signal(model, sig)
        if len(scores):
            _, opens = decide(scores, st, en, model.threshold, cal.min_windows, cal.of_windows,
                              model.cfg.alerts.cooldown_s)
            n_alerts += int(opens.sum())
            max_score = max(max_score, float(scores.max()))
        secs += len(sig) / model.frontend.sr
    return {"false_alerts": n_alerts, "hours": secs / 3600, "per_hour": n_alerts / (secs / 3600) if secs else 0.0,
            "max_normal_score": max_score}


def eval_audio(model_dir: str | Path, normal: str | Path, events: str | Path, ebrs=(-6.0, 0.0, 6.0),
               seed: int = 0, out: str | Path | None = "eval-out", device: str = "cpu", top_alerts: int = 3,
               max_event_s: float = 4.0, model: AnomalyModel | None = None, progress: bool = True) -> dict[str, Any]:
    model = model or AnomalyModel.load(model_dir, device=device)
    if model.cfg.kind != "audio":
        raise InputError(f"{model_dir}: an audio evaluation needs an audio model (this one is {model.cfg.kind})")
    sr = model.frontend.sr
    normal_files, event_files = list_audio([normal]), list_audio([events])
    if not normal_files or not event_files:
        raise InputError(f"eval: no audio in {normal if not normal_files else events}")
    backgrounds = [load_audio(f, sr) for f in normal_files]
    evs = [e for e in (trim_event(load_audio(f, sr), sr, max_event_s) for f in event_files) if len(e) > sr // 50]
    win_s = model.frontend.window / sr
    backgrounds = [b for b in backgrounds if len(b) >= model.frontend.window + 1]
    if not backgrounds:
        raise InputError("eval: every normal recording is shorter than one window")
    cal = model.calibration
    rng = np.random.default_rng(seed)
    res: dict[str, Any] = {"model": model.version, "detector": model.name, "threshold": model.threshold,
                           "normal_files": len(backgrounds), "event_files": len(evs), "per_ebr": {}}
    curves, top = {}, []
    with bar(len(ebrs) * len(backgrounds), "eval", "mix", progress) as pb:
        for ebr in ebrs:
            S, L, tp, fp, fn = [], [], 0, 0, 0
            for bi, bg in enumerate(backgrounds):
                ev = evs[rng.integers(len(evs))]
                ev = ev[: max(1, len(bg) - sr // 10)]
                start = int(rng.integers(0, max(1, len(bg) - len(ev))))
                mix = mix_event(bg, ev, start, ebr)
                W, scores, st, en = _score_signal(model, mix)
                ev_iv = (start / sr, (start + len(ev)) / sr)
                lab = window_labels(st, en, [ev_iv])
                S.append(scores[lab >= 0])
                L.append(lab[lab >= 0])
                trig, _ = decide(scores, st, en, model.threshold, cal.min_windows, cal.of_windows,
                                 model.cfg.alerts.cooldown_s)
                e = metrics.event_prf(st, en, trig, [ev_iv])
                tp, fp, fn = tp + e["tp"], fp + e["fp"], fn + e["fn"]
                j = int(np.argmax(scores))
                top.append((float(scores[j]), ebr, bi, W[j], float(st[j])))
                pb.update(1)
            S, L = np.concatenate(S), np.concatenate(L)
            p = tp / (tp + fp) if tp + fp else 1.0
            r = tp / (tp + fn) if tp + fn else 1.0
            f1 = 2 * p * r / (p + r) if p + r else 0.0
            auc = metrics.roc_auc(L, S)
            fpr, tpr, _ = metrics.roc_curve(L, S)
            curves[f"EBR {ebr:+g} dB"] = (fpr, tpr, auc)
            res["per_ebr"][f"{ebr:g}"] = {"auc": auc, "pauc": metrics.pauc(L, S, 0.1), "precision": p,
                                         "recall": r, "f1": f1, "events": tp + fn, "windows": int(len(S)),
                                         "positive_windows": int(L.sum())}
    per = res["per_ebr"].values()
    res["mean_auc"] = float(np.mean([v["auc"] for v in per]))
    res["mean_pauc"] = float(np.mean([v["pauc"] for v in per]))
    res["mean_f1"] = float(np.mean([v["f1"] for v in per]))
    res["pure_normal"] = false_alerts(model, backgrounds)
    res["window_s"] = win_s
    if out:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        res["roc_png"] = metrics.plot_roc(curves, out / "roc.png", f"{model.name} {model.version}")
        top.sort(key=lambda t: -t[0])
        res["residual_pngs"] = [plot_residual(model, w, out / f"alert_{i + 1}.png",
                                              f"score {s:.1f} (EBR {e:+g} dB, mix {b}, t={t:.1f}s)")
                                for i, (s, e, b, w, t) in enumerate(top[:top_alerts])]
    return res


def plot_residual(model: AnomalyModel, window: np.ndarray, path: str | Path, title: str) -> str:
    """Input patch, reconstruction and residual of one window as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = model.patches(window[None])
    if x.dim() != 4:  # a waveform detector: show the window itself
        x = model.frontend.transform(torch.from_numpy(np.asarray(window[None], dtype=np.float32)))
    rec = model.detector.reconstruct(x) if x.dim() == 4 and model.detector.input != "waveform" else None
    panels = [("input (standardised log-mel)", x[0, 0].cpu().numpy())]
    if rec is not None:
        r = rec[0, 0].numpy()
        panels += [("reconstruction G(x)", r), ("residual |x - G(x)|", np.abs(panels[0][1] - r))]
    fig = Figure(figsize=(4 * len(panels), 3.6))
    FigureCanvasAgg(fig)
    for i, (name, img) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        im = ax.imshow(img, origin="lower", aspect="auto", cmap="magma" if "residual" in name else "viridis")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("frame")
        ax.set_ylabel("mel band")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(str(path), dpi=90)
    return str(path)


def eval_series_cli(model_dir: str | Path, files: list[str], out: str | Path | None = None,
                    nab_out: str | Path | None = None, device: str = "cpu", time_column: str | None = None,
                    value_columns: list[str] | None = None, label_column: str | None = None,
                    row_rule: str = "cover", beats_from_s: float = 0.0) -> dict[str, Any]:
    """Labelled CSV series (row labels) and/or WFDB records (beat annotations)."""
    from streamad.evaluate_series import evaluate_ecg_beats, evaluate_series, write_nab_csvs
    from streamad.io.seriesfiles import load_series_files

    model = AnomalyModel.load(model_dir, device=device)
    if model.cfg.kind != "series":
        raise InputError(f"{model_dir}: --series needs a series model (this one is {model.cfg.kind})")
    datas = load_series_files(files, time_column=time_column, value_columns=value_columns,
                              label_column=label_column, channels=model.cfg.series.channels)
    res: dict[str, Any] = {"model": model.version, "detector": model.name, "threshold": model.threshold}
    labelled = [d for d in datas if d.labels is not None]
    if labelled:
        res["series"] = evaluate_series(model, labelled, row_rule=row_rule)
        if nab_out:
            res["nab_csvs"] = [str(p) for p in write_nab_csvs(model, labelled, nab_out, row_rule=row_rule)]
    beats = [d for d in datas if d.beats is not None]
    if beats:
        res["beats"] = {d.name: evaluate_ecg_beats(model, d, start=int(beats_from_s * d.rate_hz)) for d in beats}
    if not labelled and not beats:
        raise InputError("eval: no labels in these series (give --label-column, or WFDB records with .atr beats)")
    return res
