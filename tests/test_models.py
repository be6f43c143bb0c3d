"""GMGAN-specific training checks (the shared conformance suite is tests/test_zoo_conformance.py)."""
import numpy as np
import pytest
import torch

from streamad.models.base import TrainingError
from streamad.models.registry import create


def _patches(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.sin(torch.linspace(0, 6.28, 32))[None, None, :, None] * torch.ones(1, 1, 32, 32)
    return (base + 0.3 * torch.randn(n, 1, 32, 32, generator=g)).float()


# Every registered detector's fit -> score -> save -> load round trip lives in
# tests/test_zoo_conformance.py (all input layouts); here: GMGAN-specific training checks.


def test_gmgan_loss_decreases_and_outlier_scores_higher():
    X = _patches(256)
    losses = []
    det = create("gmgan", {"steps": 120, "batch_size": 32})
    det.fit(X, seed=0, progress=lambda s, n, l: losses.append(l["rec"]))
    assert np.mean(losses[-20:]) < 0.7 * np.mean(losses[:5])
    odd = _patches(20, seed=9)
    odd[:, :, 10:20, 5:25] += 4.0  # a loud band the model never saw
    normal = det.score_components(_patches(20, seed=5))
    weird = det.score_components(odd)
    assert np.median(weird["irec"]) > np.median(normal["irec"])
    assert np.median(weird["energy"]) > np.median(normal["energy"])


@pytest.mark.parametrize("lr", [1e4, 1e8])
def test_gmgan_divergence_stops_with_clear_message(lr):
    det = create("gmgan", {"steps": 40, "lr": lr})
    with pytest.raises(TrainingError, match="diverged at step [0-9]+.*lower model.params.lr"):
        det.fit(_patches(64))


def test_gmgan_checkpoint_resume_matches_uninterrupted(tmp_path):
    X = _patches(64)
    full = create("gmgan", {"steps": 8, "batch_size": 16, "checkpoint_every": 4}).fit(X, seed=3)
    ck = tmp_path / "ck.pt"
    # simulate an interruption: train to step 4 writing a checkpoint, die at step 5, then resume to 8
    interrupted = create("gmgan", {"steps": 8, "batch_size": 16, "checkpoint_every": 4})

    class Stop(Exception):
        pass

    def stop_after_ckpt(step, total, losses):
        if step == 5:
            raise Stop

    with pytest.raises(Stop):
        interrupted.fit(X, seed=3, progress=stop_after_ckpt, checkpoint=ck)
    assert ck.exists()
    steps_run = []
    resumed = create("gmgan", {"steps": 8, "batch_size": 16, "checkpoint_every": 4}).fit(
        X, seed=3, checkpoint=ck, progress=lambda step, total, losses: steps_run.append(step))
    assert steps_run == [5, 6, 7, 8]  # resumed after the checkpoint at step 4, not retrained from 1
    assert not ck.exists()
    a, b = full.score_components(X[:8]), resumed.score_components(X[:8])
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_unknown_param_is_config_error():
    from streamad.config import ConfigError

    with pytest.raises(ConfigError, match="model.params.bogus"):
        create("gmgan", {"bogus": 1})
