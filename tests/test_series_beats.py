"""The series "beats" representation (streamad.windows.series_beats): beat finding and features
on synthetic heart-like signals (plumbing), and on MIT-BIH record 100 (detection)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from streamad.config import ConfigError, SeriesConfig, load
from streamad.windows.series import SeriesFrontend
from streamad.windows.series_beats import FEATURES, find_beats, qrs_energy
from tests.conftest import DATA, ROOT

RATE = 360.0
MITBIH = DATA / "ecg" / "mitbih" / "100.hea"


def _ecg(beats_s: list[float], seconds: float, seed: int = 0, leads: int = 2) -> np.ndarray:
    """A heart-like signal: a narrow QRS and a broad T wave per beat, baseline wander, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = np.zeros((len(t), leads))
    for b in beats_s:
        qrs = np.exp(-0.5 * ((t - b) / 0.012) ** 2)
        tw = 0.3 * np.exp(-0.5 * ((t - b - 0.25) / 0.05) ** 2)
        x += (qrs + tw)[:, None] * (1.0 + 0.5 * np.arange(leads))[None, :]
    x += 0.1 * np.sin(2 * np.pi * 0.2 * t)[:, None] + 0.02 * rng.standard_normal(x.shape)
    return x.astype(np.float32)


def _regular(seconds: float, rr: float = 0.8, start: float = 0.3) -> list[float]:
    return list(np.arange(start, seconds, rr))


def _front(window_s: float = 5.0) -> SeriesFrontend:
    w = int(window_s * RATE)
    return SeriesFrontend(SeriesConfig(representation="beats", rate_hz=RATE, window=w, hop=w // 10))


def _windows(x: np.ndarray, w: int, hop: int) -> np.ndarray:
    return np.stack([x[s:s + w] for s in range(0, len(x) - w + 1, hop)])


def test_find_beats_locates_every_beat():
    beats = _regular(10.0, rr=0.73)
    x = _ecg(beats, 10.0)
    p = find_beats(qrs_energy(x[None].astype(np.float64), RATE)[0], RATE) / RATE
    assert len(p) == len(beats)
    assert np.max(np.abs(p - np.array(beats))) < 0.02


def test_shapes_names_and_state_round_trip():
    f = _front()
    x = _ecg(_regular(120.0), 120.0)
    f.fit(_windows(x, f.window, 45))
    y = f.transform(torch.from_numpy(_windows(x[:20 * 360], f.window, 180)))
    assert y.shape == (len(range(0, 20 * 360 - f.window + 1, 180)), len(FEATURES)) and y.dtype == torch.float32
    assert f.feature_names == FEATURES and f.describe()["features"] == list(FEATURES)
    g = _front()
    g.load_state(f.state())
    assert torch.equal(g.transform(torch.from_numpy(x[None, :f.window])), f.transform(torch.from_numpy(x[None, :f.window])))
    broken = {k: v for k, v in f.state().items() if k != "beat_template"}
    with pytest.raises(ValueError, match="beat_template"):
        _front().load_state(broken)


def test_early_beat_flat_line_and_missing_readings_stand_out():
    f = _front()
    f.fit(_windows(_ecg(_regular(120.0), 120.0), f.window, 45))
    beats = _regular(10.0)
    early = list(beats)
    early[3] -= 0.25  # the beat nearest the centre of the window [0, 5) s (2.7 s) comes 250 ms early
    normal_f = f.transform(torch.from_numpy(_ecg(beats, 5.0, seed=1)[None]))[0]
    early_f = f.transform(torch.from_numpy(_ecg(early, 5.0, seed=1)[None]))[0]
    i = FEATURES.index("rr_before")
    assert abs(float(normal_f[i])) < 3 and float(early_f[i]) < -5
    flat = f.transform(torch.zeros(1, f.window, 2))[0]
    holes = _ecg(beats, 5.0)
    holes[100:400] = np.nan
    gappy = f.transform(torch.from_numpy(holes[None]))[0]
    assert torch.isfinite(flat).all() and torch.isfinite(gappy).all()
    assert float(flat.abs().max()) > 10  # no beat at all maps far from every normal window


def test_short_window_and_untrained_signal_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="at least 2 s"):
        SeriesFrontend(SeriesConfig(representation="beats", rate_hz=RATE, window=500, hop=50))
    f = _front()
    with pytest.raises(ValueError, match="no heart beats"):
        f.fit(np.zeros((5, f.window, 1), dtype=np.float32))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("kind: series\nseries: {representation: beat}\n")
    with pytest.raises(ConfigError, match="series.representation"):
        load(cfg)


def test_mitbih_premature_beats_score_above_normal_beats(tmp_path):
    """Record 100: trained on 480-770 s (no abnormal beat) with the shipped ECG config; every
    abnormal beat of 800-1000 s scores above the 98th percentile of that stretch's normal beats.
    An alert's evidence PNG shows the features (the detector sees vectors, not patches)."""
    from streamad.evidence import plot_residual
    from streamad.kinds import kind_of
    from streamad.scoring import score_recording
    from streamad.train import Recording, train_model

    cfg = load(ROOT / "configs" / "heartrate.yaml")
    assert cfg.series.representation == "beats"
    cfg.train.threads = 1
    rec = kind_of(cfg).load(cfg, [MITBIH])[0]
    m = train_model(cfg, [Recording("normal", rec.signal[480 * 360:770 * 360], rec.channels)], show_progress=False)
    d, w = rec.source, cfg.series.window
    sel = (d.beats > 800 * 360) & (d.beats < 1000 * 360)
    starts, lab = d.beats[sel] - w // 2, d.beat_labels[sel].astype(bool)
    s = score_recording(m, rec.signal, starts=starts).scores
    assert lab.sum() >= 5
    assert s[lab].min() > np.quantile(s[~lab], 0.98), (s[lab], np.quantile(s[~lab], 0.98))
    png = plot_residual(m, rec.signal[starts[lab][0]:starts[lab][0] + w], tmp_path / "alert.png", "bed-3")
    assert (tmp_path / "alert.png").stat().st_size > 1000 and png == str(tmp_path / "alert.png")
