"""Detectors on real data, with checks that can fail: KDD Cup 99 attacks vs normal traffic,
labelled anomalies helping on MNIST, the WaveNet predictor and outlier exposure through the
audio pipeline."""
import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from streamad.benchmarks import zoo_data
from streamad.benchmarks.zoo import stratified_cap
from streamad.models.registry import create


@pytest.fixture(scope="module")
def kdd(data_dir):
    s = zoo_data.kdd99(data_dir, seed=0, nrows=100000)  # the first 100 000 rows: 56 % normal traffic
    idx = torch.from_numpy(np.random.default_rng(0).choice(len(s.X_train), 4000, replace=False))
    X_test, y_test = stratified_cap(s.X_test, s.y_test, 4000, 0)
    return s.X_train[idx], X_test, y_test


@pytest.mark.parametrize("name,params,component,min_auc", [
    ("iforest", {}, "score", 0.9),  # classical (scikit-learn, numpy re-scoring)
    ("dcae", {"steps": 300}, "rec", 0.9),  # reconstruction
    ("dagmm", {"steps": 300, "batch_size": 256, "lr": 1e-3}, "energy", 0.8),  # deep mixture
    ("ganomaly", {"steps": 300}, "irec", 0.7),  # adversarial
])
def test_kdd99_separates_normal_traffic_from_attacks(kdd, name, params, component, min_auc):
    X_train, X_test, y_test = kdd
    det = create(name, params).fit(X_train, seed=0)
    auc = roc_auc_score(y_test, det.score_components(X_test)[component])
    assert auc > min_auc, f"{name}: AUC {auc:.3f}"


def test_labelled_anomalies_help_the_hypersphere_classifier_on_mnist(data_dir):
    """Outlier exposure: the same HSC with 60 labelled images of other digits beats its
    unsupervised twin on a held-out test set of all digits."""
    s = zoo_data.mnist(data_dir, digit=8, seed=0, n_train=300, n_test_per_class=40, n_exposure=60)
    params = {"epochs": 15, "batch_size": 60, "lr": 1e-3}
    normal = s.y_train == 0
    twin = create("hsc", params).fit(s.X_train[normal], seed=0)
    semi = create("hsc", params).fit(s.X_train, s.y_train, seed=0)
    auc_twin = roc_auc_score(s.y_test, twin.score_components(s.X_test)["h"])
    auc_semi = roc_auc_score(s.y_test, semi.score_components(s.X_test)["h"])
    assert auc_semi > auc_twin + 0.03, (auc_semi, auc_twin)


def _glass(data_dir, sr=16000):
    from streamad.evaluation.mixing import trim_event
    from streamad.io.files import list_audio, load_audio

    return trim_event(load_audio(list_audio([data_dir / "audio" / "glass-sfx"])[0], sr), sr, 0.8)


def test_wavenet_on_raw_audio_through_the_pipeline(tmp_path, ambient_files, data_dir):
    """The waveform detector gets raw windows from the audio front end, saves / loads with
    identical scores, and a glass break mixed into the background scores higher."""
    from streamad.config import from_dict
    from streamad.evaluation.mixing import mix_event
    from streamad.model import AnomalyModel
    from streamad.train import load_recordings, train_model
    from streamad.windows.base import frame_windows

    cfg = from_dict({"model": {"detector": "wavenet", "params": {"steps": 30, "layers": 7, "channels": 8,
                                                                 "crop": 1024}},
                     "train": {"train_hop_s": 0.5, "seed": 0}})
    recs = load_recordings(cfg, ambient_files[:3])
    model = train_model(cfg, recs, tmp_path / "m", show_progress=False)
    loaded = AnomalyModel.load(tmp_path / "m", device="cpu")
    fe = loaded.frontend
    assert loaded.patches(np.zeros((2, fe.window), np.float32)).shape == (2, 1, fe.window)
    W = frame_windows(recs[0].signal, fe.window, fe.hop)[:8]
    s1, _ = model.score(W)
    s2, _ = loaded.score(W)
    np.testing.assert_allclose(s1, s2, rtol=1e-5, atol=1e-6)
    bg = recs[1].signal[: fe.window]
    event = mix_event(bg, _glass(data_dir), 2000, 0.0)
    nll = loaded.components(np.stack([bg, event]))["nll"]
    assert nll[1] > nll[0] + 0.1, nll


def test_outlier_exposure_through_train_model(ambient_files, data_dir):
    from streamad.config import from_dict
    from streamad.evaluation.mixing import mix_event
    from streamad.models.base import TrainingError
    from streamad.train import Recording, load_recordings, train_model

    cfg = from_dict({"model": {"detector": "bce", "params": {"steps": 30}}, "train": {"train_hop_s": 0.5}})
    recs = load_recordings(cfg, ambient_files[:5])
    with pytest.raises(TrainingError, match="labelled anomalies"):
        train_model(cfg, recs, None, show_progress=False)
    sig = recs[0].signal[: 3 * 16000]
    anomalies = [Recording("glass@mix", mix_event(sig, _glass(data_dir), 8000, 0.0))]
    model = train_model(cfg, recs, None, show_progress=False, anomalies=anomalies)
    assert model.meta["training"]["labelled_anomaly_windows"] >= 2
    assert np.isfinite(model.threshold)
