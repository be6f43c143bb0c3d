"""Series benchmarks: SKAB (leaderboard and short-history protocols) and MIT-BIH record 100.

    python -m streamad.benchmarks.series_eval skab  [--config configs/sensor.yaml] [--seed N] [--detector NAME]
    python -m streamad.benchmarks.series_eval short [--train-fraction 0.15] [--config configs/sensor.yaml]
    python -m streamad.benchmarks.series_eval ecg   [--config configs/heartrate.yaml] [--seed N] [--out DIR]

``skab`` (waico/SKAB leaderboard protocol): one model per file, trained on the file's first 400
rows (assumed normal), the whole file scored; TP/FP/TN/FN of the rows summed over the 34 files of
valve1, valve2 and other, F1 = TP / (TP + (FP + FN) / 2), FAR, MAR. Reported under two row
rules: ``skab`` (the leaderboard notebooks' mapping of window scores to rows) and ``cover`` (a row
alerts when any window covering it alerts; what the daemon does).

``short`` (NAB's probation as training, on machine metrics): one model per file trained on its
first 15 % (SKAB: 160-185 rows, under 3 windows of 60), calibrated by cross-fitting; the rest of
the file scored; point (row) ROC-AUC per file and its mean, and how many files were refused.

``ecg``: MIT-BIH record 100. Training: the first half of the record with +-1 window cut around
each abnormal beat; test: the second half. Beat-level ROC-AUC (one window centred on each beat)
and what the daemon would do on the stream: the recall of abnormal beats against false alerts
per hour as the threshold moves (PNG), and the point at the calibrated threshold (counting rules:
:func:`streamad.evaluation.ecg.beat_alert_tradeoff`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from streamad.config import load
from streamad.evaluation.ecg import beat_alert_tradeoff, evaluate_ecg_beats
from streamad.evaluation.series import evaluate_series
from streamad.io.files import default_data_dir
from streamad.kinds import kind_of
from streamad.metrics import prf
from streamad.progress import bar
from streamad.train import DataError, Recording, train_model


def _cfg(a):
    cfg = load(a.config)
    cfg.train.seed = a.seed
    cfg.train.threads = 1
    if a.detector:
        cfg.model.detector, cfg.model.params, cfg.model.score_weights = a.detector, {}, {}
    return cfg


def _skab_files(a, cfg):
    root = a.data / "series" / "skab" / "data"
    files = [f for sub in ("valve1", "valve2", "other") for f in sorted((root / sub).glob("*.csv"),
                                                                         key=lambda p: int(p.stem))]
    return kind_of(cfg).load(cfg, files, time_column="datetime", label_column="anomaly")


def skab(a) -> dict:
    cfg = _cfg(a)
    recs = _skab_files(a, cfg)
    counts = {r: dict(tp=0, fp=0, tn=0, fn=0) for r in ("skab", "cover")}
    t0 = time.monotonic()
    with bar(len(recs), "skab", "file") as pb:
        for rec in recs:
            m = train_model(cfg, [Recording(rec.name, rec.signal[:400], rec.channels)], show_progress=False)
            for rule in counts:
                pf = evaluate_series(m, [rec], progress=False, row_rule=rule, nab=False)["per_file"][0]
                for k in counts[rule]:
                    counts[rule][k] += pf[k]
            pb.update(1)
    out = {"files": len(recs), "detector": cfg.model.detector, "seed": a.seed,
           "wall_s": round(time.monotonic() - t0, 1), "rules": {}}
    for rule, c in counts.items():
        m = prf(c["tp"], c["fp"], c["fn"], c["tn"])
        out["rules"][rule] = {"f1": round(m["f1"], 3), "far": round(m["far"], 4), "mar": round(m["mar"], 4), **c}
    return out


def short(a) -> dict:
    cfg = _cfg(a)
    recs = _skab_files(a, cfg)
    per_file, refused, t0 = [], [], time.monotonic()
    with bar(len(recs), "short history", "file") as pb:
        for rec in recs:
            n = int(round(a.train_fraction * len(rec.signal)))
            try:
                m = train_model(cfg, [Recording(rec.name, rec.signal[:n], rec.channels)], show_progress=False)
            except DataError as e:
                refused.append({"file": rec.name, "rows": n, "error": str(e)})
                pb.update(1)
                continue
            test = Recording(rec.name, rec.signal[n:], rec.channels, _rows(rec.source, n))
            res = evaluate_series(m, [test], progress=False, nab=False)
            per_file.append({"file": rec.name, "train_rows": n, "calibration": m.meta["training"]["calibration"],
                             "row_auc": res["row_auc"]})
            pb.update(1)
    aucs = [p["row_auc"] for p in per_file if p["row_auc"] is not None]
    return {"files": len(recs), "train_fraction": a.train_fraction, "refused": refused,
            "mean_row_auc": round(float(np.mean(aucs)), 4) if aucs else None, "files_with_auc": len(aucs),
            "wall_s": round(time.monotonic() - t0, 1), "per_file": per_file}


def _rows(d, start: int):
    """The series record from row ``start`` on (labels and times cut the same way)."""
    from dataclasses import replace

    return replace(d, values=d.values[start:], times=d.times[start:], time_labels=d.time_labels[start:],
                   labels=None if d.labels is None else d.labels[start:])


def ecg(a) -> dict:
    cfg = _cfg(a)
    rec = kind_of(cfg).load(cfg, [a.data / "ecg" / "mitbih" / "100.hea"])[0]
    d = rec.source
    W, half = cfg.series.window, len(rec.signal) // 2
    segs, lo = [], 0
    for b in d.beats[(d.beat_labels == 1) & (d.beats < half)]:
        if b - W - lo > 2 * W:
            segs.append((lo, b - W))
        lo = b + W
    if half - lo > 2 * W:
        segs.append((lo, half))
    t0 = time.monotonic()
    m = train_model(cfg, [Recording(f"seg{i}", rec.signal[s:e], rec.channels) for i, (s, e) in enumerate(segs)],
                    show_progress=True)
    fit = time.monotonic() - t0
    r = evaluate_ecg_beats(m, rec, start=half)
    trade = beat_alert_tradeoff(m, rec, start=half)
    out = {"detector": cfg.model.detector, "seed": a.seed, "train_segments": len(segs), "fit_s": round(fit, 1),
           **{k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in r.items()},
           "stream_alerts": trade}
    if a.out:
        out["tradeoff_png"] = _plot_tradeoff(trade, Path(a.out) / f"ecg_tradeoff_seed{a.seed}.png")
    return out


def _plot_tradeoff(t: dict, path: Path) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.2), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    c = t["curve"]
    # false alerts are not monotone in the threshold (a lower one can merge two alerts into one):
    # the line is the best recall at most that many false alerts, the dots every threshold tried
    fa = sorted({p["false_alerts_per_hour"] for p in c})
    best = [max(p["recall"] for p in c if p["false_alerts_per_hour"] <= f) for f in fa]
    ax.step(fa, best, where="post", label="best recall at <= x false alerts/h")
    ax.plot([p["false_alerts_per_hour"] for p in c], [p["recall"] for p in c], ".", color="C0", alpha=0.35,
            label="thresholds tried")
    cal = t["calibrated"]
    ax.plot([cal["false_alerts_per_hour"]], [cal["recall"]], "o", color="C3", label="calibrated threshold")
    ax.set_xlabel(f"false alerts per hour ({t['hours'] * 60:.0f} min of ECG: 1 false alert = {1 / t['hours']:.0f}/h)")
    ax.set_ylabel(f"abnormal beats alerted (of {t['abnormal_beats']})")
    ax.set_title("MIT-BIH 100, second half: beat alerts vs false alerts")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path))
    return str(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", choices=("skab", "short", "ecg"))
    p.add_argument("--config", default=None)
    p.add_argument("--data", type=Path, default=default_data_dir())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--detector", default=None)
    p.add_argument("--train-fraction", type=float, default=0.15, help="short: leading fraction of each file to train on")
    p.add_argument("--out", default=None, help="ecg: where the trade-off PNG goes")
    a = p.parse_args(argv)
    a.config = a.config or ("configs/heartrate.yaml" if a.which == "ecg" else "configs/sensor.yaml")
    res = {"skab": skab, "short": short, "ecg": ecg}[a.which](a)
    print(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
