"""Training: normal recordings -> fitted front end, detector and calibrated threshold.

Held-back normal data (whole recordings when there are at least 5, otherwise the last part
of each recording) never reaches the detector; it sets the score standardisation and the
alert threshold.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from streamad.calibrate import Calibration
from streamad.config import Config, ConfigError
from streamad.kinds import DataError, Recording, kind_of
from streamad.model import AnomalyModel, resolve_device
from streamad.models.registry import create
from streamad.progress import bar, loss_callback
from streamad.windows.base import frame_windows

__all__ = ["DataError", "Recording", "load_recordings", "split_recordings", "train_model"]


def load_recordings(cfg: Config, paths: Sequence[str | Path], **opts: Any) -> list[Recording]:
    recs = kind_of(cfg).load(cfg, paths, **opts)
    if not recs:
        raise DataError(f"no training data found in {', '.join(map(str, paths))}")
    return recs


def split_recordings(recs: list[Recording], frac: float, min_len: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train signals, held-back signals)."""
    if len(recs) >= 5:
        every = max(2, int(round(1 / frac)))
        hold = [r.signal for i, r in enumerate(recs) if i % every == every - 1]
        train = [r.signal for i, r in enumerate(recs) if i % every != every - 1]
        return train, hold
    train, hold = [], []
    for r in recs:
        n = len(r.signal)
        cut = min(int(n * (1 - frac)), n - min_len)  # the held-back part must hold at least one window
        if cut < min_len:
            raise DataError(f"{r.name}: too short to train and calibrate "
                            f"({n} samples; need at least {2 * min_len})")
        train.append(r.signal[:cut])
        hold.append(r.signal[cut:])
    return train, hold


def _concat_windows(signals: list[np.ndarray], window: int, hop: int) -> np.ndarray:
    parts = [w for w in (frame_windows(s, window, hop) for s in signals) if len(w)]
    return np.concatenate(parts) if parts else np.zeros((0,))


def _calibration_hops(hop: int, train_hop: int) -> tuple[int, int]:
    """(hop, phases): held-back windows are cut at the denser training hop when it divides the
    scoring hop, for more samples of the normal score tail; threshold sequences are then read
    at every phase of the scoring hop."""
    stride = max(1, hop // train_hop) if hop % train_hop == 0 else 1
    return hop // stride, stride


def _detector_input(model: AnomalyModel, windows: np.ndarray) -> torch.Tensor:
    return torch.cat([model.patches(windows[i:i + 512]).cpu() for i in range(0, len(windows), 512)])


def _fit_detector(cfg: Config, model: AnomalyModel, windows: np.ndarray, out: Path | None,
                  show_progress: bool, anomalies: np.ndarray | None = None) -> int:
    """Fit the detector on the training windows (plus labelled-anomaly windows, y = 1);
    returns the number of labelled-anomaly windows."""
    X, y = _detector_input(model, windows), None
    if anomalies is not None and len(anomalies):
        XA = _detector_input(model, anomalies)
        y = torch.cat([torch.zeros(len(X), dtype=torch.int64), torch.ones(len(XA), dtype=torch.int64)])
        X = torch.cat([X, XA])
    ckpt = Path(out) / "checkpoint.pt" if out else None
    if ckpt:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
    with bar(0, f"train {model.detector.name}", "step", show_progress) as pb:
        model.detector.fit(X, y, seed=cfg.train.seed, progress=loss_callback(pb), checkpoint=ckpt)
    return int(y.sum()) if y is not None else 0


def _calibrate(cfg: Config, model: AnomalyModel, hold_w: list[np.ndarray], phases: int) -> Calibration:
    comps_seq = [model.components(h) for h in hold_w]
    comps = {k: np.concatenate([c[k] for c in comps_seq]) for k in comps_seq[0]}
    weights = cfg.model.score_weights or None
    unknown = set(weights or {}) - set(comps)
    if unknown:
        raise ConfigError(f"model.score_weights.{sorted(unknown)[0]}: not a score component of "
                          f"{model.name} (components: {', '.join(sorted(comps))})")
    fe = model.frontend
    cal = Calibration.fit_components(
        comps, weights, hop_s=fe.hop / fe.rate, min_windows=cfg.alerts.min_windows,
        of_windows=cfg.alerts.of_windows, target_false_alerts_per_hour=cfg.alerts.target_false_alerts_per_hour)
    cal.fit_threshold([cal.combine(c)[phase::phases] for c in comps_seq for phase in range(phases)])
    return cal


def train_model(cfg: Config, recordings: list[Recording], out: str | Path | None = None,
                show_progress: bool = True, device: str | None = None,
                anomalies: list[Recording] | None = None) -> AnomalyModel:
    """``anomalies``: optional recordings whose every window is a labelled anomaly (y = 1)
    for semi-supervised / supervised detectors (outlier exposure); unsupervised detectors
    drop them. They never reach the front-end statistics or the calibration."""
    t0 = time.monotonic()
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)
    np.random.seed(cfg.train.seed)
    dev = resolve_device(device or cfg.model.device)
    kind = kind_of(cfg)
    frontend = kind.frontend(cfg)
    kind.prepare(cfg, recordings, frontend)
    win, hop, train_hop = frontend.window, frontend.hop, frontend.train_hop(cfg)
    train_sig, hold_sig = split_recordings(recordings, cfg.train.holdout_fraction, win)
    windows = _concat_windows(train_sig, win, train_hop)
    cal_hop, phases = _calibration_hops(hop, train_hop)
    hold_w = [h for h in (frame_windows(s, win, cal_hop) for s in hold_sig) if len(h)]
    if len(windows) < 8:
        raise DataError(f"only {len(windows)} training windows; need at least 8 (more normal data, "
                        "or a shorter window)")
    if sum(len(h) for h in hold_w) < 2:
        raise DataError("fewer than 2 held-back normal windows for calibration; give more normal data")
    try:
        frontend.fit(windows)
    except ValueError as e:
        raise DataError(str(e)) from None
    model = AnomalyModel(cfg, frontend, create(cfg.model.detector, cfg.model.params).to(dev)).to(dev)
    labelled = _concat_windows([r.signal for r in anomalies], win, train_hop) if anomalies else None
    n_labelled = _fit_detector(cfg, model, windows, Path(out) if out else None, show_progress, labelled)
    fit_s = time.monotonic() - t0
    model.calibration = _calibrate(cfg, model, hold_w, phases)
    summary = {
        "recordings": len(recordings), "train_windows": int(len(windows)), "labelled_anomaly_windows": n_labelled,
        "holdout_windows": int(sum(len(h) for h in hold_w)), "holdout_hop": cal_hop,
        "train_seconds_of_data": float(sum(len(s) for s in train_sig) / frontend.rate),
        "holdout_seconds_of_data": float(sum(len(s) for s in hold_sig) / frontend.rate),
        "fit_wall_s": round(fit_s, 1), "device": str(dev), "seed": cfg.train.seed,
    }
    if out:
        model.save(out, training=summary)
    else:
        model.meta["training"] = summary
    return model
