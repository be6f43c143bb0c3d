"""Training: normal recordings -> fitted front end, detector and calibrated threshold.

Calibration data never reaches the detector it calibrates. Two ways (``train.calibration``):

* **holdout** — whole recordings are held back when there are at least 5, otherwise the last
  ``holdout_fraction`` of each recording; the model trains on the rest.
* **crossfit** — for short normal history: each recording is cut into K contiguous blocks
  (K = ``train.crossfit_folds``, fewer when the data is too short); K fold models each train on
  all blocks but one and score the windows of the block they never saw; those out-of-fold
  scores set the standardisation and the threshold; the model that is kept trains on everything.
  Costs K + 1 trainings.

With ``train.seam_windows`` each held-back stretch (block) is also scored looped on itself, the
windows across the join of its end to its start: the click or level jump of a seam (and, with
``train.seam_joins`` J > 1, across J - 1 more joins of a random point of it to another). They only put
a floor under the threshold (it ends above the largest of them), never lower it, and stay out of
the standardisation and the alert-rate estimate.

``auto`` (default) uses holdout when the held-back part gives at least ``MIN_HOLDOUT_WINDOWS``
calibration windows and crossfit otherwise (with a warning). The shortest usable history is
:func:`min_history` samples/readings = ``2 × window + 16`` (two folds of ``window + 8``), less
than 3 windows' worth for any window of 16 or more. A series shorter than that trains on a
smaller window (``(n - 16) / 2`` readings, at least 16; a warning says so), so the documented
minimum for series is 48 readings; shorter data (or audio) is a one-line DataError.
"""
from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from streamad import weight_choice
from streamad.calibrate import Calibration, full_weights
from streamad.config import Config, ConfigError, escalated
from streamad.kinds import DataError, Recording, kind_of
from streamad.model import AnomalyModel, resolve_device
from streamad.models.base import Detector
from streamad.models.registry import DETECTORS, create
from streamad.progress import bar, loss_callback
from streamad.windows.lazy import AugmentedWindows, FramedWindows
from streamad.windows.synthetic import SyntheticWindows

__all__ = ["DataError", "Recording", "load_recordings", "min_history", "split_recordings", "train_model"]
log = logging.getLogger("streamad.train")

MIN_TRAIN_WINDOWS = 8
MIN_HOLDOUT_WINDOWS = 32  # fewer held-back windows than this: cross-fit instead (auto)


def load_recordings(cfg: Config, paths: Sequence[str | Path], **opts: Any) -> list[Recording]:
    recs = kind_of(cfg).load(cfg, paths, **opts)
    if not recs:
        raise DataError(f"no training data found in {', '.join(map(str, paths))}")
    return recs


def min_history(window: int) -> int:
    """Fewest samples / readings of normal history a model can be trained and calibrated on."""
    return 2 * (window + MIN_TRAIN_WINDOWS)


def split_recordings(recs: list[Recording], frac: float, min_len: int,
                     min_hold: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train signals, held-back signals) for holdout calibration; a held-back part keeps at least
    ``min_hold`` samples (default one window)."""
    if len(recs) >= 5:
        every = max(2, int(round(1 / frac)))
        hold = [r.signal for i, r in enumerate(recs) if i % every == every - 1]
        train = [r.signal for i, r in enumerate(recs) if i % every != every - 1]
        return train, hold
    train, hold = [], []
    for r in recs:
        n = len(r.signal)
        cut = min(int(n * (1 - frac)), n - (min_hold or min_len))  # the held-back part must hold its windows
        if cut < min_len:
            raise DataError(f"{r.name}: too short to train and calibrate "
                            f"({n} samples; need at least {2 * min_len})")
        train.append(r.signal[:cut])
        hold.append(r.signal[cut:])
    return train, hold


def _windows_each(signals: list[np.ndarray], win: int, hop: int) -> list[FramedWindows]:
    """The windows of each signal on its own (signals shorter than a window left out)."""
    return [w for w in (FramedWindows([s], win, hop) for s in signals) if len(w)]


def _calibration_hops(hop: int, train_hop: int) -> tuple[int, int]:
    """(hop, phases): held-back windows are cut at the denser training hop when it divides the
    scoring hop, for more samples of the normal score tail; threshold sequences are then read
    at every phase of the scoring hop."""
    stride = max(1, hop // train_hop) if hop % train_hop == 0 else 1
    return hop // stride, stride


def _folds(recs: list[Recording], k: int, blocks: int = 1, win: int = 1) -> list[list[np.ndarray]]:
    """Every recording cut into ``k * m`` contiguous blocks, dealt to the K folds in turn: folds[i] =
    blocks i, i + k, ... of each recording. ``m`` = ``blocks`` per fold, fewer for a recording whose
    blocks would be shorter than two windows (``win``); m = 1: K contiguous blocks."""
    out: list[list[np.ndarray]] = [[] for _ in range(k)]
    for r in recs:
        n = len(r.signal)
        m = max(1, min(blocks, n // (k * 2 * win)))
        for b in range(k * m):
            out[b % k].append(r.signal[n * b // (k * m): n * (b + 1) // (k * m)])
    return out


def _plan(cfg: Config, recs: list[Recording], win: int, hop: int, train_hop: int) -> tuple[str, int]:
    """('holdout', 0) or ('crossfit', K) for this data (see the module docstring)."""
    total = sum(len(r.signal) for r in recs)
    if all(len(r.signal) < win for r in recs):
        raise DataError(f"every recording is shorter than one window ({win} samples/readings)")
    mode = cfg.train.calibration
    if mode != "crossfit":
        try:
            train_sig, hold_sig = split_recordings(recs, cfg.train.holdout_fraction, win,
                                                   win + _calibration_hops(hop, train_hop)[0])
            enough = (len(FramedWindows(hold_sig, win, _calibration_hops(hop, train_hop)[0])) >= MIN_HOLDOUT_WINDOWS
                      and len(FramedWindows(train_sig, win, train_hop)) >= MIN_TRAIN_WINDOWS)
        except DataError:
            enough = False
        if mode == "holdout" or enough:
            return "holdout", 0
    longest = max(len(r.signal) for r in recs)
    k = max(2, min(cfg.train.crossfit_folds, longest // (win + MIN_TRAIN_WINDOWS)))
    if mode == "auto":
        log.warning("short normal history (%d samples/readings): calibrating by %d-fold cross-fitting; "
                    "the threshold rests on few windows, give more normal data when you can", total, k)
    return "crossfit", k


def _fit_window(cfg: Config, kind, recordings: list[Recording], probe):
    """A history shorter than ``min_history(window)``: series train on a smaller window that fits
    (down to ``kind.min_window``; the model keeps the window it was trained with)."""
    total, old = sum(len(r.signal) for r in recordings), probe.window
    if total >= min_history(old):
        return probe
    if kind.min_window is None or total < min_history(kind.min_window):
        need = min_history(old if kind.min_window is None else kind.min_window)
        raise DataError(f"only {total} samples/readings of normal history; need at least {need} "
                        f"(2 x window + {2 * MIN_TRAIN_WINDOWS}, window {old if kind.min_window is None else kind.min_window})")
    new = (total - 2 * MIN_TRAIN_WINDOWS) // 2
    kind.shrink_window(cfg, new)
    log.warning("short normal history (%d readings): window shrunk from %d to %d readings", total, old, new)
    probe = kind.frontend(cfg)
    kind.prepare(cfg, recordings, probe)
    return probe


def _detector_input(model: AnomalyModel, windows: np.ndarray) -> torch.Tensor:
    return torch.cat([model.patches(windows[i:i + 512]).cpu() for i in range(0, len(windows), 512)])


def _fit(cfg: Config, signals: list[np.ndarray], dev: torch.device, train_hop: int, out: Path | None,
         show_progress: bool, desc: str = "", labelled: np.ndarray | None = None) -> AnomalyModel:
    """Front end + detector fitted on the windows of ``signals`` (no calibration), plus the
    labelled-anomaly windows ``labelled`` (y = 1) for detectors that use them; the front-end
    statistics come from the normal windows only."""
    kind = kind_of(cfg)
    frontend = kind.frontend(cfg)
    win = frontend.window
    avail = sum(max(0, len(s) - win) for s in signals)
    hop = max(1, min(train_hop, avail // (2 * MIN_TRAIN_WINDOWS))) if avail else 1  # dense when short
    windows = FramedWindows(signals, win, hop)  # made batch by batch when read
    gains, mix = (cfg.audio.train_gains_db, cfg.audio.train_mix) if cfg.kind == "audio" else ([], 0)
    if (gains or mix) and len(windows):  # gain and mixed copies of the normal windows, made batch by batch
        windows = AugmentedWindows(windows, gains, mix, cfg.train.seed)
    if len(windows) < MIN_TRAIN_WINDOWS:
        raise DataError(f"only {len(windows)} training windows; need at least {MIN_TRAIN_WINDOWS} (more normal "
                        "data, or a shorter window)")
    try:
        frontend.fit(windows)
    except ValueError as e:
        raise DataError(str(e)) from None
    model = AnomalyModel(cfg, frontend, create(cfg.model.detector, cfg.model.params).to(dev)).to(dev)
    X, y = _detector_input(model, windows), None
    synthetic = _synthetic(cfg, model.detector, windows, frontend)
    extra = [w for w in (labelled, synthetic) if w is not None and len(w)]
    if extra:
        XA = torch.cat([_detector_input(model, w) for w in extra])
        y = torch.cat([torch.zeros(len(X), dtype=torch.int64), torch.ones(len(XA), dtype=torch.int64)])
        X = torch.cat([X, XA])
    ckpt = Path(out) / "checkpoint.pt" if out else None
    if ckpt:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
    with bar(0, f"train {model.detector.name}{desc}", "step", show_progress) as pb:
        model.detector.fit(X, y, seed=cfg.train.seed, progress=loss_callback(pb), checkpoint=ckpt)
    model.meta["train_windows"] = int(len(windows))
    model.meta["labelled_anomaly_windows"] = int(len(labelled)) if labelled is not None else 0  # recorded
    model.meta["synthetic_windows"] = int(len(synthetic)) if synthetic is not None else 0
    return model


MAX_SYNTHETIC = 16000


def _synthetic(cfg: Config, detector: Detector, windows: Any, frontend: Any) -> SyntheticWindows | None:
    """``audio.train_synthetic`` windows with a generic synthetic sound per normal window (at most
    MAX_SYNTHETIC), for a detector that uses labelled windows; None when off."""
    per = cfg.audio.train_synthetic if cfg.kind == "audio" else 0
    if not per:
        return None
    if detector.labels == "ignored":
        raise ConfigError(f"audio.train_synthetic: detector {detector.name!r} ignores labelled windows "
                          "(set it to 0, or use a detector that learns from them, e.g. frame_fullgmm with "
                          "model.params.exposure)")
    return SyntheticWindows(windows, max(1, min(MAX_SYNTHETIC, int(round(per * len(windows))))), frontend.rate,
                            cfg.train.seed, lead=frontend.lead)


def _seam_windows(sig: np.ndarray, win: int, hop: int, joins: int = 1, seed: int = 0) -> np.ndarray:
    """The windows across the join of ``sig``'s end to its start (``sig`` looped once), at ``hop``;
    with ``joins`` > 1 also across joins of ``sig`` cut at a random point to a random point of it."""
    if len(sig) < win + hop or hop >= win:
        return sig[:0]
    rng = np.random.default_rng([seed, len(sig), 0x5EA])
    cuts = [(len(sig), 0)] + [(int(rng.integers(win, len(sig) + 1)), int(rng.integers(0, len(sig) - win + 1)))
                              for _ in range(joins - 1)]
    out = []
    for end, start in cuts:
        joined = np.concatenate([sig[end - win:end], sig[start:start + win]])
        out += [joined[s:s + win] for s in range(hop, win, hop)]
    return np.stack(out)


def _calibrate(cfg: Config, scored: list[tuple[AnomalyModel, list[np.ndarray], list[np.ndarray]]],
               phases: int) -> Calibration:
    """Standardisation and threshold from each model's components on windows it never saw (the
    seam windows, when there are any, count for the threshold only)."""
    comps_seq = [m.components(h) for m, hold, _ in scored for h in hold]
    fold_of = [i for i, (_, hold, _) in enumerate(scored) for _ in hold]
    seam_seq = [m.components(h) for m, _, seams in scored for h in seams]
    comps = {k: np.concatenate([c[k] for c in comps_seq]) for k in comps_seq[0]}
    weights = cfg.model.score_weights or None
    sets = cfg.model.weight_sets()
    _check_weight_names(cfg, comps)  # the components this model has (its parameters decide some)
    fe = scored[0][0].frontend
    cal = Calibration.fit_components(
        comps, weights, hop_s=fe.hop / fe.rate, min_windows=cfg.alerts.min_windows,
        of_windows=cfg.alerts.of_windows, target_false_alerts_per_hour=cfg.alerts.target_false_alerts_per_hour)
    record: dict[str, Any] = {}  # hearing check and weight choice, kept with the calibration
    if cfg.kind == "audio" and (cfg.train.hearing_check or cfg.model.score_weights_choice):
        if cfg.model.score_weights_choice and cfg.audio.train_synthetic:
            log.warning("model.score_weights_choice with audio.train_synthetic: a component trained on synthetic "
                        "sounds (exposure) is ranked on sounds of the same kind, so the choice favours it")
        cands = [full_weights(w, list(comps)) for _, w in sets]
        added = weight_choice.synthetic_components([(m, hold) for m, hold, _ in scored], cfg.train.seed)
        best, aucs = weight_choice.choose(cands, comps, added, cal)
        cal.weights = cands[best]
        n = int(len(next(iter(added.values()))))
        record["hearing_check"] = {"synthetic_auc": round(aucs[best], 6), "synthetic_windows": n}
        if len(cands) > 1:
            record["weights_choice"] = {"candidates": cands, "synthetic_auc": [round(a, 6) for a in aucs],
                                        "chosen": best, "synthetic_windows": n}
            log.info("score weights: candidate %d of %d (synthetic-sound ROC-AUC %s)", best + 1, len(cands),
                     " / ".join(f"{a:.3f}" for a in aucs))
        weight_choice.report(aucs[best])
    cal.fit_threshold([cal.combine(c)[phase::phases] for c in comps_seq for phase in range(phases)])
    cal.holdout.update(record)  # after fit_threshold, which renews holdout
    seqs = [[cal.combine(c)[phase::phases] for c, f in zip(comps_seq, fold_of) if f == i for phase in range(phases)]
            for i in range(len(scored))] if len(scored) > 1 and cfg.train.crossfit_threshold == "median" else []
    if seqs:  # crossfit, median rule: one threshold per fold (same standardisation), their median
        per_fold = []
        for fold in seqs:
            part = copy.deepcopy(cal)
            try:
                part.fit_threshold(fold)
            except ValueError:  # too few windows in this fold: it has no threshold of its own
                continue
            per_fold.append(part.threshold)
        if per_fold:
            cal.holdout.update(pooled_threshold=cal.threshold, fold_thresholds=per_fold)
            cal.threshold = float(np.median(per_fold))
    if seam_seq:  # a seam is one event, not part of the normal rate: it only sets a floor
        cal.raise_threshold_above([cal.combine(c)[phase::phases] for c in seam_seq for phase in range(phases)], "seam")
    return cal


def _check_weight_names(cfg: Config, components: Any) -> None:
    """A one-line ConfigError for a score weight (``score_weights`` or an alternative) that names none
    of ``components``: before any fit those the detector can have, at calibration those the model has
    (its parameters decide some of them)."""
    for key, w in cfg.model.weight_sets():
        unknown = set(w) - set(components)
        if unknown:
            raise ConfigError(f"{key}.{sorted(unknown)[0]}: not a score component of {cfg.model.detector} "
                              f"(components: {', '.join(sorted(components))})")


def _check_detector(cfg: Config) -> None:
    """The detector's parameters and score weights: one-line errors before anything is fitted."""
    create(cfg.model.detector, cfg.model.params)
    declared = getattr(DETECTORS.get(cfg.model.detector), "components", ())
    if declared:
        _check_weight_names(cfg, declared)


def train_model(cfg: Config, recordings: list[Recording], out: str | Path | None = None,
                show_progress: bool = True, device: str | None = None,
                anomalies: list[Recording] | None = None) -> AnomalyModel:
    """``anomalies``: optional recordings whose every window is a labelled anomaly (y = 1)
    for semi-supervised / supervised detectors (outlier exposure); unsupervised detectors
    drop them. They never reach the front-end statistics or the calibration.

    With ``train.escalate_to`` (audio), a model whose hearing check is below ``train.escalate_below``
    is replaced by one trained on the same audio with the escalated config (config.escalated); the
    kept model's ``training.escalated_from`` says what it replaced and why."""
    esc = escalated(cfg)
    if esc is not None:
        try:
            _check_detector(esc)  # e.g. the CNN's weights: an error now, in every place, not only in hard ones
        except ConfigError as e:
            raise ConfigError(f"train.escalate_to: {e}") from None
    model = _train_one(cfg, recordings, out, show_progress, device, anomalies)
    hc = model.hearing_check
    if esc is not None and hc is not None and hc < cfg.train.escalate_below:
        log.warning("hearing check %.3f < train.escalate_below %.2f: training %s instead of %s for this place "
                    "(costlier per window; train.escalate_to)", hc, cfg.train.escalate_below, esc.model.detector,
                    cfg.model.detector)
        first = {"detector": model.name, "hearing_check_auc": hc, "escalate_below": cfg.train.escalate_below,
                 "threshold": model.threshold, "fit_wall_s": model.meta["training"]["fit_wall_s"]}
        model = _train_one(esc, recordings, out, show_progress, device, anomalies)
        model.meta["training"]["escalated_from"] = first
    if out:
        model.save(out, training=model.meta.pop("training"))
    return model


def _train_one(cfg: Config, recordings: list[Recording], out: str | Path | None, show_progress: bool,
               device: str | None, anomalies: list[Recording] | None) -> AnomalyModel:
    """One model, fitted and calibrated (not saved; ``out`` holds a detector's checkpoints)."""
    t0 = time.monotonic()
    cfg = copy.deepcopy(cfg)  # training settles channels and (short series) the window in its own copy
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    np.random.seed(cfg.train.seed)
    dev = resolve_device(device or cfg.model.device)
    _check_detector(cfg)  # its parameters: a one-line error now, not after the front end
    kind = kind_of(cfg)
    probe = kind.frontend(cfg)
    kind.prepare(cfg, recordings, probe)
    probe = _fit_window(cfg, kind, recordings, probe)
    win, hop, train_hop = probe.window, probe.hop, probe.train_hop(cfg)
    if probe.lead and cfg.model.detector in DETECTORS and not DETECTORS[cfg.model.detector].uses_context:
        log.warning("audio.context_s: detector %s does not use the context before a window; it only delays "
                    "each stream's first window by %g s", cfg.model.detector, cfg.audio.context_s)
    if cfg.train.seam_joins > 1 and not cfg.train.seam_windows:
        log.warning("train.seam_joins %d: ignored without train.seam_windows: true", cfg.train.seam_joins)
    mode, k = _plan(cfg, recordings, win, hop, train_hop)
    cal_hop, phases = _calibration_hops(hop, train_hop)
    out_p = Path(out) if out else None
    labelled = FramedWindows([r.signal for r in anomalies], win, train_hop) if anomalies else None
    if mode == "holdout":
        # at least 2 held-back windows (one short recording: 20 % of it can be under one window)
        train_sig, hold_sig = split_recordings(recordings, cfg.train.holdout_fraction, win, win + cal_hop)
        model = _fit(cfg, train_sig, dev, train_hop, out_p, show_progress, labelled=labelled)
        scored = [(model, _windows_each(hold_sig, win, cal_hop), hold_sig)]
    else:
        folds, scored = _folds(recordings, k, cfg.train.crossfit_blocks, win), []
        for i in range(k):
            rest = [s for j, f in enumerate(folds) if j != i for s in f if len(s)]
            fm = _fit(cfg, rest, dev, train_hop, None, show_progress, f" (fold {i + 1}/{k})", labelled)
            scored.append((fm, _windows_each(folds[i], win, cal_hop), folds[i]))
        train_sig, hold_sig = [r.signal for r in recordings], [s for f in folds for s in f]
        model = _fit(cfg, train_sig, dev, train_hop, out_p, show_progress, labelled=labelled)
    # the joins: each held-back stretch looped on itself (train.seam_windows), else none
    scored = [(m, hold, [w for w in (_seam_windows(s, win, cal_hop, cfg.train.seam_joins, cfg.train.seed)
                                     for s in sigs) if len(w)]
               if cfg.train.seam_windows else []) for m, hold, sigs in scored]
    if sum(len(h) for _, hold, _ in scored for h in hold) < 2:
        raise DataError("fewer than 2 held-back normal windows for calibration; give more normal data")
    fit_s = time.monotonic() - t0
    model.calibration = _calibrate(cfg, scored, phases)
    summary = {
        "recordings": len(recordings), "train_windows": model.meta.pop("train_windows"),
        "labelled_anomaly_windows": model.meta.pop("labelled_anomaly_windows"),
        "synthetic_windows": model.meta.pop("synthetic_windows"),
        "calibration": mode, "folds": k, "holdout_windows": int(sum(len(h) for _, hold, _ in scored for h in hold)),
        "holdout_hop": cal_hop, "train_seconds_of_data": float(sum(len(s) for s in train_sig) / probe.rate),
        "holdout_seconds_of_data": float(sum(len(s) for s in hold_sig) / probe.rate),
        "fit_wall_s": round(fit_s, 1), "device": str(dev), "seed": cfg.train.seed,
    }
    model.meta["training"] = summary
    return model
