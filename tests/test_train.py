import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from streamad.config import from_dict
from streamad.io.files import load_audio
from streamad.model import AnomalyModel
from streamad.train import DataError, Recording, load_recordings, train_model


def test_twenty_seconds_of_one_recording_is_enough(tmp_path, ambient_files):
    """One 20 s recording of a scene: train on its first 80 %, calibrate on the rest."""
    sig = np.concatenate([load_audio(f, 16000) for f in ambient_files[10:12]])
    wav = tmp_path / "scene.wav"
    sf.write(wav, sig, 16000)
    cfg = from_dict({"model": {"params": {"steps": 40}}})
    model = train_model(cfg, load_recordings(cfg, [wav]), tmp_path / "m", show_progress=False)
    t = model.meta["training"]
    assert t["recordings"] == 1 and t["train_seconds_of_data"] == pytest.approx(16.0)
    assert t["holdout_seconds_of_data"] == pytest.approx(4.0)
    assert np.isfinite(model.threshold)
    again = AnomalyModel.load(tmp_path / "m", "cpu")
    s1, _ = again.score(np.stack([sig[:16000], sig[8000:24000]]))
    s2, _ = model.score(np.stack([sig[:16000], sig[8000:24000]]))
    np.testing.assert_allclose(s1, s2, rtol=1e-5)


def test_too_little_audio_is_a_clear_error(tmp_path):
    cfg = from_dict({})
    with pytest.raises(DataError, match="too short"):
        train_model(cfg, [Recording("tiny.wav", np.zeros(20000, np.float32))], None, show_progress=False)


def test_cli_train_on_empty_dir_exits_2(tmp_path):
    from tests.conftest import ROOT

    r = subprocess.run([sys.executable, "-m", "streamad.cli", "train", "--config", str(ROOT / "configs" / "audio.yaml"),
                        "--normal", str(tmp_path), "--out", str(tmp_path / "m")], capture_output=True, text=True)
    assert r.returncode == 2 and "no audio files" in r.stderr and r.stderr.count("\n") == 1


def test_score_weights_must_name_components(tmp_path, ambient_files):
    from streamad.config import ConfigError

    cfg = from_dict({"model": {"detector": "frame_gmm", "params": {"k": 2, "iters": 3}, "score_weights": {"irec": 1}}})
    with pytest.raises(ConfigError, match="model.score_weights.irec"):
        train_model(cfg, load_recordings(cfg, ambient_files[:2]), None, show_progress=False)
