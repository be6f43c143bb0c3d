"""Series front end (streamad.windows.series) and series evaluation helpers."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from streamad.config import SeriesConfig, from_dict
from streamad.windows.base import Window, stack_windows
from streamad.windows.series import SOFT_KNEE, SeriesFrontend


def _front(rep: str = "patch", window: int = 32, hop: int = 8, **kw) -> SeriesFrontend:
    return SeriesFrontend(SeriesConfig(representation=rep, window=window, hop=hop, **kw))


def _windows(n: int, window: int, c: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(window)[None, :, None] + rng.integers(0, 100, (n, 1, 1))
    x = np.sin(2 * np.pi * t / 11.0 + np.arange(c)[None, None, :]) + 0.1 * rng.standard_normal((n, window, c))
    return (x * (1 + np.arange(c)) + 10 * np.arange(c)).astype(np.float32)


@pytest.mark.parametrize("rep", ["patch", "spectrogram"])
@pytest.mark.parametrize("window,c", [(32, 1), (64, 8), (20, 3), (250, 2), (48, 40)])
def test_shapes(rep, window, c):
    f = _front(rep, window, min(window, 8))
    x = _windows(12, window, c)
    f.fit(x)
    y = f.transform(torch.from_numpy(x))
    assert y.shape == (12, 1, 32, 32)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()


def test_single_channel_2d_input_and_rate():
    f = _front("patch", 40, 10, rate_hz=4.0)
    x = _windows(6, 40, 1)
    f.fit(x[:, :, 0])
    assert f.rate == 4.0
    assert torch.equal(f.transform(torch.from_numpy(x[:, :, 0])), f.transform(torch.from_numpy(x)))


def test_normalisation_round_trip():
    rng = np.random.default_rng(1)
    center, scale = np.array([5.0, -200.0, 0.01]), np.array([2.0, 30.0, 0.001])
    x = (center + scale * rng.standard_normal((400, 32, 3))).astype(np.float32)
    f = _front("patch")
    f.fit(x)
    assert np.all(np.abs(f.center.numpy() - center) < 0.05 * scale)
    np.testing.assert_allclose(f.scale.numpy(), scale, rtol=0.05)
    # a window sitting at centre + k * scale on every channel maps to k everywhere (below the knee)
    k = np.array([1.5, -2.0, 3.0])
    w = np.broadcast_to(f.center.numpy() + k * f.scale.numpy(), (1, 32, 3)).astype(np.float32)
    y = f.transform(torch.from_numpy(np.ascontiguousarray(w)))[0, 0]
    rows = [r * 3 // 32 for r in range(32)]
    np.testing.assert_allclose(y.numpy(), np.repeat(k[rows][:, None], 32, axis=1), atol=1e-4)
    # beyond the knee values are compressed but still monotonic
    big = np.broadcast_to(f.center.numpy() + 50 * f.scale.numpy(), (1, 32, 3)).astype(np.float32)
    yb = f.transform(torch.from_numpy(np.ascontiguousarray(big)))
    assert SOFT_KNEE < float(yb.min()) < 50


@pytest.mark.parametrize("rep", ["patch", "spectrogram"])
def test_state_save_load_identical(rep):
    x = _windows(30, 50, 2)
    f = _front(rep, 50, 10)
    f.fit(x)
    buf = io.BytesIO()
    torch.save(f.state(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    g = _front(rep, 50, 10)
    g.load_state(state)
    xt = torch.from_numpy(_windows(7, 50, 2, seed=3))
    assert torch.equal(f.transform(xt), g.transform(xt))
    assert g.describe()["representation"] == rep
    assert g.describe()["n_channels"] == 2


@pytest.mark.parametrize("rep", ["patch", "spectrogram"])
def test_deterministic(rep):
    x = _windows(20, 64, 3)
    outs = []
    for _ in range(2):
        f = _front(rep, 64, 16)
        f.fit(x)
        outs.append(f.transform(torch.from_numpy(x)))
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(outs[0], f.transform(torch.from_numpy(x)))


@pytest.mark.parametrize("rep", ["patch", "spectrogram"])
def test_constant_channel_safe(rep):
    x = _windows(40, 32, 3)
    x[:, :, 1] = 7.25  # constant in training
    x[:, :, 2] = 0.0  # constant zero
    f = _front(rep, 32, 8)
    f.fit(x)
    assert torch.all(f.scale > 0)
    y = f.transform(torch.from_numpy(x))
    assert torch.isfinite(y).all()
    test = x[:5].copy()
    test[:, 10:, 1] = 7.5  # the constant channel moves later
    test[:, :, 2] = 1e6
    test[0, 3, 0] = np.nan
    test[1, 4, 0] = np.inf
    yt = f.transform(torch.from_numpy(test))
    assert torch.isfinite(yt).all()
    assert float(yt.abs().max()) < 1e3
    if rep == "patch":  # the change of the formerly constant channel is visible
        assert float((yt - y[:5]).abs().max()) > 1.0


def test_channel_checks_and_hops():
    f = _front("patch", 32, 8, channels=["a", "b"])
    with pytest.raises(ValueError):
        f.fit_channels([np.zeros((100, 3), np.float32)])
    f.fit_channels([np.zeros((100, 2), np.float32), np.ones((50, 2), np.float32)])
    with pytest.raises(ValueError):
        f.fit(np.zeros((4, 32, 3), np.float32))
    f.fit(_windows(10, 32, 2))
    with pytest.raises(ValueError):
        f.transform(torch.zeros(2, 32, 3))
    with pytest.raises(ValueError):
        f.transform(torch.zeros(2, 31, 2))
    cfg = from_dict({"kind": "series", "series": {"rate_hz": 10.0, "window": 64, "hop": 16},
                     "train": {"train_hop_s": 0.5}})
    assert SeriesFrontend(cfg.series).train_hop(cfg) == 5
    cfg = from_dict({"kind": "series", "series": {"rate_hz": 1.0, "window": 64, "hop": 16}})
    assert SeriesFrontend(cfg.series).train_hop(cfg) == 1


def test_stack_windows():
    ws = [Window("s", 0.0, 4.0, np.arange(8, dtype=np.float64).reshape(4, 2)),
          Window("s", 2.0, 6.0, np.arange(8, 16, dtype=np.float64).reshape(4, 2))]
    out = stack_windows(ws)
    assert out.shape == (2, 4, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1], np.arange(8, 16).reshape(4, 2))


# -- evaluation helpers ---------------------------------------------------------------


def test_rows_from_windows_rules():
    from streamad.evaluation.series import rows_from_windows
    from streamad.windows.base import window_starts

    rng = np.random.default_rng(0)
    for n, w, h in [(100, 10, 1), (100, 10, 3), (57, 8, 8), (40, 5, 7)]:
        st = window_starts(n, w, h)
        s = rng.normal(size=len(st))
        ref = np.full(n, -np.inf)
        for a, v in zip(st, s):
            ref[a:a + w] = np.maximum(ref[a:a + w], v)
        for r in np.nonzero(~np.isfinite(ref))[0]:
            ref[r] = s[np.clip(np.searchsorted(st, r, side="right") - 1, 0, len(s) - 1)]
        np.testing.assert_allclose(rows_from_windows(s, st, w, n, "cover"), ref)
        end = rows_from_windows(s, st, w, n, "end")
        assert end[st[-1] + w - 1] == s[-1] and end[0] == s[0]
        assert len(rows_from_windows(s, st, w, n, "center")) == n
        assert np.all(rows_from_windows(s, st, w, n, "cover_min") <= ref)


def test_nab_labels_mark_onsets():
    from streamad.evaluation.series import nab_labels

    y = np.array([0, 1, 1, 0, 0, 1, 1, 1, 0])
    assert nab_labels(y).tolist() == [0, 1, 0, 0, 0, 1, 0, 0, 0]


@dataclass
class _Series:
    name: str
    values: np.ndarray
    times: np.ndarray
    time_labels: list
    channels: list
    labels: np.ndarray | None
    rate_hz: float
    beats: np.ndarray | None = None
    beat_labels: np.ndarray | None = None


def test_evaluate_series_end_to_end(tmp_path):
    from streamad.evaluation.ecg import evaluate_ecg_beats
    from streamad.evaluation.series import evaluate_series, write_nab_csvs
    from streamad.train import Recording, train_model

    rng = np.random.default_rng(0)

    def sig(n):
        t = np.arange(n)
        clean = np.stack([np.sin(2 * np.pi * t / 16), np.cos(2 * np.pi * t / 23)], 1)
        return clean + 0.05 * rng.standard_normal((n, 2))

    cfg = from_dict({"kind": "series", "series": {"window": 32, "hop": 4, "rate_hz": 1.0},
                     "model": {"detector": "frame_gmm", "params": {"k": 2, "iters": 20}}})
    model = train_model(cfg, [Recording("a", sig(1200).astype(np.float32))], show_progress=False)
    v = sig(600).astype(np.float32)
    y = np.zeros(600, np.int8)
    v[300:360, 0] += 4.0
    y[300:360] = 1
    d = _Series("test/one.csv", v, np.arange(600.0), [f"t{i}" for i in range(600)], ["a", "b"], y, 1.0,
                beats=np.arange(40, 560, 20), beat_labels=((np.arange(40, 560, 20) >= 300)
                                                           & (np.arange(40, 560, 20) < 360)).astype(np.int8))
    d = Recording(d.name, d.values, d.channels, d)
    res = evaluate_series(model, [d], progress=False)
    assert res["row_auc"] > 0.9 and res["window_auc"] > 0.9
    assert res["pointwise"]["tp"] > 0
    assert {"standard", "low_fp", "low_fn"} <= set(res["nab"])
    assert res["nab"]["standard"]["score"] > 0  # the shift is caught near its onset
    paths = write_nab_csvs(model, [d], tmp_path, progress=False)
    rows = list(csv.reader(paths[0].open()))
    assert rows[0] == ["timestamp", "value", "anomaly_score", "label"]
    assert len(rows) == 601 and rows[1][0] == "t0"
    assert all(0.0 <= float(r[2]) <= 1.0 for r in rows[1:])
    beats = evaluate_ecg_beats(model, d, progress=False)
    assert beats["abnormal"] == 3 and beats["auc"] > 0.9
