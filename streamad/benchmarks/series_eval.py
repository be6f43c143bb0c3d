"""Series benchmarks: SKAB (leaderboard protocol) and MIT-BIH record 100 (beat-level AUC).

    python -m streamad.benchmarks.series_eval skab [--config configs/sensor.yaml] [--seed N] [--detector NAME]
    python -m streamad.benchmarks.series_eval ecg  [--config configs/heartrate.yaml] [--seed N] [--detector NAME]

SKAB (waico/SKAB leaderboard protocol): one model per file, trained on the file's first 400 rows
(assumed normal; the last 30 % of them calibrate the threshold), the whole file scored; TP/FP/TN/FN
of the rows summed over the 34 files of valve1, valve2 and other, F1 = TP / (TP + (FP + FN) / 2),
FAR, MAR. Reported under two row rules: ``skab`` (the leaderboard notebooks' mapping of window
scores to rows, for comparison with the leaderboard) and ``cover`` (a row alerts when any window
covering it alerts; what the daemon does).

ECG: MIT-BIH record 100. Training: the first half of the record with +-1 window cut around each
abnormal beat; test: every beat of the second half, a beat scored by the window centred on it;
ROC-AUC of abnormal (A, V, ...) vs normal beats.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from streamad.config import load
from streamad.evaluation.ecg import evaluate_ecg_beats
from streamad.evaluation.series import evaluate_series
from streamad.io.files import default_data_dir
from streamad.kinds import kind_of
from streamad.metrics import prf
from streamad.progress import bar
from streamad.train import Recording, train_model


def _cfg(a):
    cfg = load(a.config)
    cfg.train.seed = a.seed
    cfg.train.threads = 1
    if a.detector:
        cfg.model.detector, cfg.model.params, cfg.model.score_weights = a.detector, {}, {}
    return cfg


def skab(a) -> dict:
    cfg = _cfg(a)
    root = a.data / "series" / "skab" / "data"
    files = [f for sub in ("valve1", "valve2", "other") for f in sorted((root / sub).glob("*.csv"),
                                                                         key=lambda p: int(p.stem))]
    recs = kind_of(cfg).load(cfg, files, time_column="datetime", label_column="anomaly")
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
    return {"detector": cfg.model.detector, "seed": a.seed, "train_segments": len(segs), "fit_s": round(fit, 1),
            **{k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in r.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", choices=("skab", "ecg"))
    p.add_argument("--config", default=None)
    p.add_argument("--data", type=Path, default=default_data_dir())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--detector", default=None)
    a = p.parse_args(argv)
    a.config = a.config or ("configs/sensor.yaml" if a.which == "skab" else "configs/heartrate.yaml")
    res = skab(a) if a.which == "skab" else ecg(a)
    print(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
