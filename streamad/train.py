"""Training: normal recordings -> fitted front end, detector and calibrated threshold.

Held-back normal data (whole recordings when there are at least 5, otherwise the
last part of each recording) never reaches the detector; it sets the score
standardisation and the alert threshold.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from streamad.calibrate import Calibration
from streamad.config import Config
from streamad.models.registry import create
from streamad.pipeline import AnomalyModel, make_frontend, resolve_device
from streamad.progress import bar, loss_callback
from streamad.windows.audio import frame_windows


class DataError(ValueError):
    """Not enough or unusable training data; one-line message."""


@dataclass
class Recording:
    name: str
    signal: np.ndarray  # audio: (samples,); series: (readings, channels)
    channels: list[str] | None = None  # series only


def load_recordings(cfg: Config, paths: Sequence[str | Path], **series_opts: Any) -> list[Recording]:
    if cfg.kind == "audio":
        from streamad.io.files import list_audio, load_audio

        files = list_audio(list(paths))
        if not files:
            raise DataError(f"no audio files found in {', '.join(map(str, paths))}")
        return [Recording(str(f), load_audio(f, cfg.audio.sample_rate)) for f in files]
    from streamad.io.seriesfiles import fill_missing, load_series_files

    if cfg.series.channels and not series_opts.get("value_columns"):
        series_opts["channels"] = cfg.series.channels
    datas = load_series_files(list(paths), **series_opts)
    if not datas:
        raise DataError(f"no series files found in {', '.join(map(str, paths))}")
    first = datas[0].channels
    for d in datas[1:]:
        if d.channels != first:
            raise DataError(f"{d.name}: channels {d.channels} differ from {datas[0].name}'s {first}")
    return [Recording(d.name, fill_missing(d.values), d.channels) for d in datas]


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
        cut = int(n * (1 - frac))
        cut = min(cut, n - min_len)  # the held-back part must hold at least one window
        if cut < min_len:
            raise DataError(f"{r.name}: too short to train and calibrate "
                            f"({n} samples; need at least {2 * min_len})")
        train.append(r.signal[:cut])
        hold.append(r.signal[cut:])
    return train, hold


def _detector_input(model: AnomalyModel, windows: np.ndarray) -> torch.Tensor:
    return torch.cat([model.patches(windows[i:i + 512]).cpu() for i in range(0, len(windows), 512)])


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
    if cfg.kind == "series" and recordings and recordings[0].channels:
        cfg.series.channels = list(recordings[0].channels)
    frontend = make_frontend(cfg)
    win, hop, train_hop = frontend.window, frontend.hop, frontend.train_hop(cfg)
    train_sig, hold_sig = split_recordings(recordings, cfg.train.holdout_fraction, win)
    if hasattr(frontend, "fit_channels"):
        try:
            frontend.fit_channels(train_sig)
        except ValueError as e:
            raise DataError(str(e)) from None
    Xw = [frame_windows(s, win, train_hop) for s in train_sig]
    Xw = np.concatenate([x for x in Xw if len(x)]) if any(len(x) for x in Xw) else np.zeros((0,))
    # Held-back windows are cut at the (denser) training hop: more samples of the normal
    # score distribution for its tail; threshold sequences are then read at every phase
    # of the scoring hop.
    stride = max(1, hop // train_hop) if hop % train_hop == 0 else 1
    cal_hop = hop // stride
    hold_w = [frame_windows(s, win, cal_hop) for s in hold_sig]
    hold_w = [h for h in hold_w if len(h)]
    if len(Xw) < 8:
        raise DataError(f"only {len(Xw)} training windows; need at least 8 (more normal data, "
                        "or a shorter window)")
    if sum(len(h) for h in hold_w) < 2:
        raise DataError("fewer than 2 held-back normal windows for calibration; give more normal data")
    try:
        frontend.fit(Xw)
    except ValueError as e:
        raise DataError(str(e)) from None
    detector = create(cfg.model.detector, cfg.model.params).to(dev)
    model = AnomalyModel(cfg, frontend, detector)
    model.to(dev)
    X = _detector_input(model, Xw)
    y = None
    if anomalies:
        Aw = [w for w in (frame_windows(r.signal, win, train_hop) for r in anomalies) if len(w)]
        if Aw:
            XA = _detector_input(model, np.concatenate(Aw))
            X = torch.cat([X, XA])
            y = torch.cat([torch.zeros(len(X) - len(XA), dtype=torch.int64), torch.ones(len(XA), dtype=torch.int64)])
    ckpt = Path(out) / "checkpoint.pt" if out else None
    if ckpt:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
    with bar(0, f"train {detector.name}", "step", show_progress) as pb:
        detector.fit(X, y, seed=cfg.train.seed, progress=loss_callback(pb), checkpoint=ckpt)
    fit_s = time.monotonic() - t0
    comps_seq = [model.components(h) for h in hold_w]
    comps = {k: np.concatenate([c[k] for c in comps_seq]) for k in comps_seq[0]}
    weights = cfg.model.score_weights or None
    if weights:
        unknown = set(weights) - set(comps)
        if unknown:
            from streamad.config import ConfigError

            raise ConfigError(f"model.score_weights.{sorted(unknown)[0]}: not a score component of "
                              f"{detector.name} (components: {', '.join(sorted(comps))})")
    cal = Calibration.fit_components(
        comps, weights, hop_s=hop / frontend.rate, min_windows=cfg.alerts.min_windows,
        of_windows=cfg.alerts.of_windows, target_false_alerts_per_hour=cfg.alerts.target_false_alerts_per_hour)
    cal.fit_threshold([cal.combine(c)[phase::stride] for c in comps_seq for phase in range(stride)])
    model.calibration = cal
    summary = {
        "recordings": len(recordings), "train_windows": int(len(Xw)),
        "labelled_anomaly_windows": int(y.sum()) if y is not None else 0,
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
