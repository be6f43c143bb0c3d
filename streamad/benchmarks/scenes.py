"""Per-scene audio benchmark (issue 7): one model per acoustic scene, events mixed in.

    python -m streamad.benchmarks.audio_eval --protocol scenes [--quick] [--detectors default,gmm64]

Protocol (every rule here is fixed before any experiment):

* scenes: every recording under ``audio/scenes/<source>/`` (51, 7-180 s, 16 kHz). A model is
  trained on the first ``train_frac`` (55 %) of the recording with the normal training pipeline
  (``streamad.train.train_model``, calibrated as the preset's ``train.calibration`` says: holdout =
  the last 20 % of that part held back, crossfit = out-of-fold scores of 3 contiguous blocks); the
  remaining 45 % is the held-out test part. ``--history-s S`` (a study of how much normal history
  is needed, not the benchmark's setting) trains on the last S seconds of that first part only, so
  the test part stays the same.
* dev / held-out split: a scene or event file belongs to ``dev`` when the SHA-1 of its file name
  is even (first 8 hex digits), else to ``held-out`` (26 / 25 scenes, 85 / 68 events). Settings
  are chosen on dev only; a scene is only mixed with events of its own split.
* events: ``audio/events/**`` and ``audio/glass-sfx`` trimmed to their active part (<= 4 s).
  The held-out part is cut into slots of ~8 s (at least one); each slot gets one event at a
  random position inside it (an event is shortened to fit its slot, keeping 0.1 s free); copies
  of the held-out part are used until the scene has ``min_events`` events. The same events and
  positions are mixed at every EBR (-6 / 0 / +6 dB, ``streamad.evaluation.mixing.mix_event``).
* window metrics: windows at a quarter of the scoring hop (0.125 s). Positives: windows of the
  mixtures that overlap an event by >= 0.1 s; negatives: every window of the pure held-out part.
  ROC-AUC and pAUC (FPR <= 0.1, McClish) per EBR; the table shows their mean over EBRs.
* event P/R/F1 at the calibrated threshold: windows at the scoring hop, the daemon's alert rule
  (``AlertRule.decide``: k-of-n and cooldown), an alert segment overlapping no event is a false
  positive (``metrics.event_prf``); tp/fp/fn summed over the scene's events per EBR.
* false alerts: alerts on the pure held-out part, and on a long stream made by looping the
  held-out part end-to-start without cross-fade (``loop_s``, default one hour), so loop seams and
  level jumps appear; reported as alerts per hour.
"""
from __future__ import annotations

import hashlib
import math
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from streamad import metrics
from streamad.alerts import AlertRule
from streamad.io.files import list_audio, load_audio
from streamad.evaluation.mixing import mix_event, trim_event, window_labels
from streamad.scoring import window_times
from streamad.windows.base import frame_windows

SR = 16000
EBRS = (-6.0, 0.0, 6.0)
TRAIN_FRAC = 0.55
SLOT_S = 8.0
MAX_EVENT_S = 4.0


def split_of(name: str) -> str:
    """'dev' or 'held-out', fixed by the SHA-1 of the file name."""
    return "dev" if int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) % 2 == 0 else "held-out"


@dataclass
class Scene:
    name: str
    split: str
    signal: np.ndarray
    cut: int = 0
    start: int = 0  # the training part is signal[start:cut] (start > 0 only with a history limit)
    plan: list[list[tuple[int, int, int]]] = field(default_factory=list)  # copies of [(event, slot start, slot end)]
    mix_seed: int = 0

    @property
    def train(self) -> np.ndarray:
        return self.signal[self.start: self.cut]

    @property
    def test(self) -> np.ndarray:
        return self.signal[self.cut:]


def load_scenes(data: Path, names: list[str] | None = None, split: str = "all") -> list[Scene]:
    files = list_audio([data / "audio" / "scenes"])
    out = []
    for f in files:
        if names and f.stem not in names:
            continue
        sp = split_of(f.name)
        if split != "all" and sp != split:
            continue
        out.append(Scene(f.stem, sp, load_audio(f, SR)))
    return out


def load_events(data: Path) -> dict[str, list[tuple[str, np.ndarray]]]:
    """split -> [(name, trimmed event)] from audio/events and audio/glass-sfx."""
    files = list_audio([data / "audio" / "events", data / "audio" / "glass-sfx"])
    out: dict[str, list[tuple[str, np.ndarray]]] = {"dev": [], "held-out": []}
    for f in files:
        ev = trim_event(load_audio(f, SR), SR, MAX_EVENT_S)
        if len(ev) > SR // 50:
            out[split_of(f.name)].append((f.stem, ev))
    return out


def plan_events(scene: Scene, n_events: int, min_events: int, seed: int, train_frac: float = TRAIN_FRAC,
                history_s: float | None = None) -> None:
    """Fix the train/test cut and the event placements (same for every detector and EBR);
    ``history_s``: train on the last that many seconds before the cut only."""
    scene.cut = int(len(scene.signal) * train_frac)
    scene.start = max(0, scene.cut - int(history_s * SR)) if history_s else 0
    n = len(scene.test)
    rng = np.random.default_rng([seed, zlib.crc32(scene.name.encode())])
    slots = max(1, int(n / (SLOT_S * SR)))
    bounds = np.linspace(0, n, slots + 1).astype(int)
    order = rng.permutation(n_events)
    scene.plan, k = [], 0
    while k < min_events:
        copy = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            copy.append((int(order[k % n_events]), int(a), int(b)))
            k += 1
        scene.plan.append(copy)
    scene.mix_seed = int(rng.integers(2**31))  # positions inside the slots, drawn at mix time


def mixes(scene: Scene, events: list[tuple[str, np.ndarray]], ebr: float) -> list[tuple[np.ndarray, list]]:
    """The scene's held-out part with its planned events at one EBR: [(signal, [(t0, t1)])]."""
    rng = np.random.default_rng(scene.mix_seed)
    out = []
    for copy in scene.plan:
        sig, ivs = scene.test.astype(np.float32), []
        for e, a, b in copy:
            ev = events[e][1][: max(1, b - a - SR // 10)]
            start = a + int(rng.integers(0, max(1, b - a - len(ev))))
            sig = mix_event(sig, ev, start, ebr)
            ivs.append((start / SR, (start + len(ev)) / SR))
        out.append((sig, ivs))
    return out


def score_at(model, sig: np.ndarray, hop: int, batch: int = 256) -> np.ndarray:
    W = frame_windows(sig, model.frontend.window, hop)
    if not len(W):
        return np.zeros(0)
    return np.concatenate([model.score(W[i:i + batch])[0] for i in range(0, len(W), batch)])


def score_looped(model, sig: np.ndarray, seconds: float, chunk: int = 256) -> np.ndarray:
    """Scores of a stream that repeats ``sig`` end-to-start for ``seconds``, at the scoring hop."""
    fe = model.frontend
    total = int(seconds * SR)
    n_win = 1 + (total - fe.window) // fe.hop
    out, ar = [], np.arange(fe.window)
    for i0 in range(0, n_win, chunk):
        i = np.arange(i0, min(n_win, i0 + chunk))
        idx = (i[:, None] * fe.hop + ar[None, :]) % len(sig)
        out.append(model.score(sig[idx])[0])
    return np.concatenate(out)


def _alerts(model, scores: np.ndarray):
    st, en = window_times(model, np.arange(len(scores)) * model.frontend.hop)
    d = AlertRule.for_model(model).decide(scores, st, en)
    return st, en, d.trig, d.opens


def evaluate_scene(model, scene: Scene, events: list, loop_s: float, ebrs=EBRS) -> dict[str, Any]:
    fe = model.frontend
    div = 4 if fe.hop % 4 == 0 else 1
    fine = fe.hop // div
    neg = score_at(model, scene.test, fine)
    res: dict[str, Any] = {"per_ebr": {}, "curves": {}}
    for ebr in ebrs:
        pos, tp, fp, fn, ev_max = [], 0, 0, 0, []
        for sig, ivs in mixes(scene, events, ebr):
            s = score_at(model, sig, fine)
            lab = window_labels(*window_times(model, np.arange(len(s)) * fine), ivs)
            pos.append(s[lab == 1])
            a_st, a_en, trig, _ = _alerts(model, s[::div])
            e = metrics.event_prf(a_st, a_en, trig, ivs)
            for t0, t1 in ivs:  # best window per event at the scoring hop (threshold studies)
                hit = (a_st < t1) & (a_en > t0)
                ev_max.append(round(float(s[::div][hit].max()), 3) if hit.any() else None)
            tp, fp, fn = tp + e["tp"], fp + e["fp"], fn + e["fn"]
        pos = np.concatenate(pos)
        y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        s = np.r_[pos, neg]
        p = tp / (tp + fp) if tp + fp else 1.0
        r = tp / (tp + fn) if tp + fn else 1.0
        res["per_ebr"][f"{ebr:g}"] = {
            "auc": metrics.roc_auc(y, s), "pauc": metrics.pauc(y, s, 0.1), "precision": p, "recall": r,
            "f1": 2 * p * r / (p + r) if p + r else 0.0, "events": tp + fn, "pos_windows": int(len(pos)),
            "event_max": ev_max}
        res["curves"][ebr] = (pos, neg)
    per = res["per_ebr"].values()
    for k in ("auc", "pauc", "f1"):
        res[f"mean_{k}"] = float(np.mean([v[k] for v in per]))
    res["neg_windows"] = int(len(neg))
    _, _, _, opens = _alerts(model, neg[::div])
    res["fa_pure"] = _fa(int(opens.sum()), len(scene.test) / SR)
    looped = score_looped(model, scene.test, loop_s)
    _, _, trig, opens = _alerts(model, looped)
    res["fa_loop"] = {**_fa(int(opens.sum()), loop_s), "alert_time_frac": float(trig.mean())}
    res["max_normal_over_threshold"] = float(max(neg.max(), looped.max()) - model.threshold)
    res["pure_max"], res["loop_max"] = float(neg[::div].max()), float(looped.max())
    res["calibration"] = dict(model.calibration.holdout)
    return res


def _fa(n: int, secs: float) -> dict[str, float]:
    return {"alerts": n, "seconds": round(secs, 2), "per_hour": n / (secs / 3600) if secs else 0.0}


def run_scene(cfg, scene: Scene, events: list, loop_s: float) -> tuple[dict[str, Any], Any]:
    """Train one model on the scene's first part and evaluate it; (result row, model)."""
    from streamad.train import Recording, train_model

    t0 = time.monotonic()
    model = train_model(cfg, [Recording(scene.name, scene.train)], None, show_progress=False)
    train_s = time.monotonic() - t0
    t1 = time.monotonic()
    r = evaluate_scene(model, scene, events, loop_s)
    r.update(scene=scene.name, split=scene.split, train_s=round(train_s, 2), eval_s=round(time.monotonic() - t1, 2),
             train_seconds=round(len(scene.train) / SR, 2), test_seconds=round(len(scene.test) / SR, 2),
             threshold=float(model.threshold), events_n=sum(len(c) for c in scene.plan),
             hearing_check=model.hearing_check,  # training's synthetic-sound AUC (None: not computed)
             detector=model.detector.name,
             escalated_from=model.meta["training"].get("escalated_from"))  # train.escalate_to took over: from what
    return r, model


def poisson_interval(n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Garwood) interval for the mean of a Poisson count n: how far a false-alert rate made of
    a few alerts can be trusted (3 alerts in 15 minutes: 2.5 to 35 per hour)."""
    from scipy.special import gammaincinv

    a = (1 - level) / 2
    return (float(gammaincinv(n, a)) if n > 0 else 0.0), float(gammaincinv(n + 1, 1 - a))


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean figures over scenes (one preset)."""
    if not rows:
        return {}
    auc = np.array([r["mean_auc"] for r in rows])
    out = {"scenes": len(rows), "mean_auc": float(auc.mean()), "min_auc": float(auc.min()),
           "worst_scene": rows[int(auc.argmin())]["scene"], "scenes_below_0.90": int((auc < 0.90).sum()),
           "mean_pauc": float(np.mean([r["mean_pauc"] for r in rows])),
           "mean_f1": float(np.mean([r["mean_f1"] for r in rows])),
           "mean_train_s": float(np.mean([r["train_s"] for r in rows]))}
    for ebr in ("-6", "0", "6"):
        out[f"auc_{ebr}"] = float(np.mean([r["per_ebr"][ebr]["auc"] for r in rows]))
        out[f"f1_{ebr}"] = float(np.mean([r["per_ebr"][ebr]["f1"] for r in rows]))
    for k in ("fa_pure", "fa_loop"):
        n = sum(r[k]["alerts"] for r in rows)
        h = sum(r[k]["seconds"] for r in rows) / 3600
        out[k + "_per_hour"] = n / h if h else 0.0
        out[k + "_alerts"] = int(n)
        out[k + "_scenes_over_1h"] = int(sum(r[k]["per_hour"] > 1.0 for r in rows))
    # a 95 % interval for the pure parts only: the looped hour's alerts repeat the same windows once per
    # pass of a loop, so they are not independent counts
    h = sum(r["fa_pure"]["seconds"] for r in rows) / 3600
    lo, hi = poisson_interval(out["fa_pure_alerts"])
    out["fa_pure_per_hour_95"] = [lo / h, hi / h] if h else [0.0, 0.0]
    # an alert that never closes counts once: the share of the looped hour spent in alert shows it
    out["fa_loop_alert_time"] = float(np.mean([r["fa_loop"].get("alert_time_frac", 0.0) for r in rows]))
    return out


def nan_safe(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x
