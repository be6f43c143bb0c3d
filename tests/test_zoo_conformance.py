"""Every registered detector through the same contract, on every input layout it takes:
fit -> score -> state -> file -> torch.load(weights_only=True) -> load -> identical scores."""
import numpy as np
import pytest
import torch

from streamad.config import ConfigError
from streamad.models.base import TrainingError
from streamad.models.registry import DETECTORS, create

TINY = {"steps": 4, "epochs": 1, "batch_size": 16, "pretrain_epochs": 1, "search_steps": 3, "max_train": 300,
        "iters": 5, "k": 2, "layers": 3, "channels": 4, "crop": 256, "n_transforms": 4, "ch": 8,
        "covariance_type": "diag"}


def tiny(name: str) -> dict:
    known = DETECTORS[name].defaults
    return {k: v for k, v in TINY.items() if k in known and not (name == "knn" and k == "k")}


def data(kind: str, n: int = 48, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    if kind == "patches":
        base = torch.sin(torch.linspace(0, 6.28, 32))[None, None, :, None] * torch.ones(1, 1, 32, 32)
        return (base + 0.3 * torch.randn(n, 1, 32, 32, generator=g)).float()
    if kind == "vectors":
        return torch.randn(n, 12, generator=g)
    return 0.05 * torch.randn(n, 1, 1200, generator=g)  # raw waveform windows


CASES = [(name, kind) for name, cls in sorted(DETECTORS.items())
         for kind in (("waveform",) if cls.input == "waveform" else ("patches", "vectors"))]


@pytest.mark.parametrize("name,kind", CASES)
def test_fit_score_save_load_identical(name, kind, tmp_path):
    X = data(kind)
    y = torch.zeros(len(X), dtype=torch.int64)
    y[:6] = 1  # a few labelled anomalies: used by (semi-)supervised detectors, dropped by the others
    det = create(name, tiny(name)).fit(X, y, seed=0)
    test = data(kind, 10, seed=1)
    c1 = det.score_components(test)
    assert c1 and set(c1) <= set(DETECTORS[name].components)
    for k, v in c1.items():
        assert v.dtype == np.float64 and v.shape == (10,) and np.isfinite(v).all(), k
    torch.save(det.state(), tmp_path / "w.pt")
    state = torch.load(tmp_path / "w.pt", weights_only=True)
    assert all(isinstance(t, torch.Tensor) for t in state.values())
    det2 = create(name, tiny(name))
    det2.load_state(state)
    c2 = det2.score_components(test)
    assert set(c2) == set(c1)
    for k in c1:
        np.testing.assert_allclose(c2[k], c1[k], rtol=1e-5, atol=1e-6, err_msg=k)
    if DETECTORS[name].primary:
        assert DETECTORS[name].primary in c1


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_unknown_param_is_config_error(name):
    with pytest.raises(ConfigError, match="model.params.no_such_param"):
        create(name, {"no_such_param": 1})


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_wrong_layout_is_one_line_training_error(name):
    wrong = data("patches") if DETECTORS[name].input == "waveform" else data("waveform")
    with pytest.raises(TrainingError) as e:
        create(name, tiny(name)).fit(wrong, seed=0)
    assert "\n" not in str(e.value)


def test_supervised_detector_needs_labelled_anomalies():
    with pytest.raises(TrainingError, match="supervised.*labelled anomalies"):
        create("bce", tiny("bce")).fit(data("vectors"), seed=0)


def test_unsupervised_detector_drops_labelled_rows():
    X = data("vectors")
    y = torch.zeros(len(X), dtype=torch.int64)
    X_bad = X.clone()
    X_bad[:10] = 1e6  # labelled anomalies that would wreck the fit if they were used
    y[:10] = 1
    a = create("iforest").fit(X[10:], seed=0).score_components(X)["score"]
    b = create("iforest").fit(X_bad, y, seed=0).score_components(X)["score"]
    np.testing.assert_array_equal(a, b)


def test_deep_checkpoint_resume_matches_uninterrupted(tmp_path):
    X = data("vectors", 64)
    params = {"steps": 8, "batch_size": 16}
    from streamad.models.dcae import DCAE

    DCAE.checkpoint_every = 4
    try:
        full = create("dcae", params).fit(X, seed=3)
        ck = tmp_path / "ck.pt"

        class Stop(Exception):
            pass

        def stop(step, total, losses):
            if step == 6:
                raise Stop

        with pytest.raises(Stop):
            create("dcae", params).fit(X, seed=3, progress=stop, checkpoint=ck)
        assert ck.exists()
        resumed = create("dcae", params).fit(X, seed=3, checkpoint=ck)
    finally:
        DCAE.checkpoint_every = 500
    assert not ck.exists()
    np.testing.assert_allclose(full.score_components(X)["rec"], resumed.score_components(X)["rec"], rtol=1e-5)


def test_numpy_rescoring_matches_scikit_learn():
    """Isolation Forest and OC-SVM score from stored arrays with numpy: same numbers as scikit-learn."""
    from sklearn.ensemble import IsolationForest
    from sklearn.svm import OneClassSVM

    X, T = data("vectors", 300), data("vectors", 50, seed=2) * 1.5
    Xd, Td = X.double().numpy(), T.double().numpy()
    ours = create("iforest").fit(X, seed=7).score_components(T)["score"]
    ref = -IsolationForest(n_estimators=100, max_samples=256, random_state=7).fit(Xd).score_samples(Td)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)
    ours = create("ocsvm").fit(X, seed=0).score_components(T)["score"]
    ref = -OneClassSVM(nu=0.1, gamma="scale").fit(Xd).decision_function(Td)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9)
