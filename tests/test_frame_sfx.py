"""frame_sfx: frame_fullgmm plus the features of a pretrained sound-effects CNN (aiSFX's weights)."""
import hashlib

import numpy as np
import pytest
import torch

from streamad.config import ConfigError, from_dict
from streamad.evaluation.mixing import mix_event, trim_event
from streamad.io.files import list_audio, load_audio
from streamad.model import AnomalyModel
from streamad.models import sfx_net
from streamad.models.registry import create
from streamad.train import Recording, train_model


def test_sfx_weights_are_the_pinned_file_read_safely_and_missing_or_altered_ones_are_one_line_errors(tmp_path, monkeypatch):
    real = sfx_net.require_weights()
    assert hashlib.sha256(real.read_bytes()).hexdigest() == sfx_net.SHA256
    state = sfx_net.load_state()
    assert tuple(state["conv_block1.conv1.weight"].shape) == (64, 1, 3, 3)
    assert tuple(state["conv_block4.conv2.weight"].shape) == (512, 512, 3, 3)
    assert tuple(sfx_net.pretrained()(torch.zeros(2, 16, 96)).shape) == (2, 2, 512)  # 16 frames: 2 steps
    monkeypatch.setenv("STREAMAD_SFX_WEIGHTS", str(tmp_path / "none.pth"))
    for call in (sfx_net.load_state, lambda: create("frame_sfx")):
        with pytest.raises(ConfigError, match=r"^aiSFX weights: no file .*pip install --no-deps aisfx==0\.1\.2") as e:
            call()
        assert "\n" not in str(e.value)
    altered = bytearray(real.read_bytes())
    altered[len(altered) // 2] ^= 1
    (tmp_path / "altered.pth").write_bytes(bytes(altered))
    monkeypatch.setenv("STREAMAD_SFX_WEIGHTS", str(tmp_path / "altered.pth"))
    with pytest.raises(ConfigError, match=r"^aiSFX weights: .*altered\.pth has SHA-256 .*not the aisfx 0\.1\.2 file"):
        sfx_net.load_state()
    monkeypatch.delenv("STREAMAD_SFX_WEIGHTS")
    monkeypatch.setattr(sfx_net.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"^the pretrained sound-effects CNN needs aiSFX's weights, which are not installed"):
        create("frame_sfx")
    for bad in ({"sfx_bank": 0}, {"sfx_bank": 2.5}, {"sfx_precision": "float16"}, {"sfx_bands": 70},
                {"sfx_bands": 104}, {"sfx_bands": 0}):
        with pytest.raises(ConfigError, match=r"^model\.params\.sfx_"):
            create("frame_sfx", bad)


@pytest.mark.parametrize("precision", ["bfloat16", "float32"])
def test_on_the_cpu_the_cnn_runs_in_channels_last_layout_with_the_features_of_the_default_layout(precision):
    """The CPU speed-up (channels-last weights, docs/PERFORMANCE.md) changes no feature: each step's
    512-d feature equals the pretrained network's in its default layout (bit for bit in bfloat16 on
    this project's CPU; to float rounding in any case)."""
    feats = sfx_net.SFXFeatures(16000, precision)
    assert feats.net.conv_block4.conv2.weight.is_contiguous(memory_format=torch.channels_last)
    plain = sfx_net.pretrained()
    assert not plain.conv_block4.conv2.weight.is_contiguous(memory_format=torch.channels_last)
    t = torch.arange(3 * 24000).reshape(3, 24000) / 16000.0
    waves = (0.2 * torch.sin(2 * np.pi * 440 * t * (1 + t)) + 0.05 * torch.sin(2 * np.pi * 3100 * t)).float()
    got = feats(waves)
    spec = feats.spectrogram(waves)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bfloat16"):
        want = plain(spec).float()
    assert got.shape == want.shape == (3, 8, 512)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


def test_sfx_bands_computes_only_the_lowest_bands_which_hold_all_of_a_16_khz_recording(ambient_files):
    """``sfx_bands: 72``: a real 16 kHz recording, resampled for the CNN, leaves its top 24 mel bands
    (above 8 kHz) empty but in the first frame (half of it is the zero padding before the window: a
    step), so the network runs on the 72 it fills: the same input there, a smaller spectrogram, the
    detector passes the setting on."""
    sig = load_audio(ambient_files[0], 16000)[: 3 * 24000].reshape(3, 24000)
    waves = torch.from_numpy(sig.astype(np.float32))
    full, low = sfx_net.SFXFeatures(16000, "bfloat16"), sfx_net.SFXFeatures(16000, "bfloat16", 72)
    spec_full, spec_low = full.spectrogram(waves), low.spectrogram(waves)
    assert spec_full.shape[2] == 96 and spec_low.shape[2] == 72
    assert float(spec_full[:, 1:, 72:].abs().max()) < 1e-4 < 0.05 < float(spec_full[:, 1:, :72].amax())
    torch.testing.assert_close(spec_low, spec_full[:, :, :72])
    assert tuple(low(waves).shape) == (3, 8, 512)
    assert create("frame_sfx", {"sfx_bands": 72})._features().bands == 72


def test_frame_sfx_keeps_frame_fullgmm_exactly_and_its_cnn_hears_real_breaking_glass(tmp_path, ambient_files, data_dir):
    """Trained through the pipeline on real audio: the frame_fullgmm components are frame_fullgmm's
    own (same patches, same seed), sfx / sfx_top are added, the model file round trips. Breaking
    glass (a real recording) mixed at 0 dB into real audio the model never heard: its windows' sfx_top
    is above every window of the same audio without it."""
    sig = np.concatenate([load_audio(f, 16000) for f in ambient_files[30:32]])
    params = {"k": 2, "diag_k": 4, "local_k": 4, "floor": 0.01}

    def cfg(detector, extra, weights):
        return from_dict({"model": {"detector": detector, "params": {**params, **extra}, "score_weights": weights},
                          "train": {"calibration": "crossfit", "threads": 1, "hearing_check": False}})

    w = {"nll": 1, "nll_top": 1, "nll_diag": 1, "nll_local_top": 1}
    sfx = train_model(cfg("frame_sfx", {"sfx_bank": 300}, {**w, "sfx_top": 4}), [Recording("place", sig)], tmp_path / "m",
                      show_progress=False)
    ref = train_model(cfg("frame_fullgmm", {}, w), [Recording("place", sig)], None, show_progress=False)
    W = np.stack([sig[i:i + 16000] for i in range(0, len(sig) - 16000, 8000)])
    cs, cr = sfx.components(W), ref.components(W)
    # worker.precision float16 scores the detector under CUDA autocast; the CNN keeps sfx_precision and
    # the mixtures float32 (float16 gave NaN scores on an H200). The CPU's autocast shows the same rule.
    x = sfx._frontend(W)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under = sfx.detector.score_components(x)
    for k in cs:
        np.testing.assert_array_equal(under[k], cs[k], err_msg=k)
    assert set(cs) - set(cr) == {"sfx", "sfx_top"}
    for k in cr:
        np.testing.assert_allclose(cs[k], cr[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert tuple(sfx.detector.sfx_bank.shape) == (300, 512)  # sampled from many more training steps
    loaded = AnomalyModel.load(tmp_path / "m", "cpu")
    np.testing.assert_allclose(loaded.score(W)[0], sfx.score(W)[0], rtol=1e-5, atol=1e-6)

    normal, event = _glass(sfx, "sfx_top", ambient_files, data_dir)
    assert event.max() > normal.max(), (event, normal.max())


def _glass(model, component, ambient_files, data_dir):
    """``component`` of every window of 8 s of real audio the model never heard, and of the windows of
    the same audio with a real breaking glass mixed in at 0 dB that hold most of it."""
    bg = load_audio(ambient_files[40], 16000)[:8 * 16000]
    glass = trim_event(load_audio(sorted(list_audio(data_dir / "audio" / "glass-sfx"))[0], 16000), 16000, 1.0)
    mixed = mix_event(bg, glass, 4 * 16000, 0.0)
    starts = range(0, len(bg) - 16000 + 1, 4000)
    hit = [s for s in starts if s < 4 * 16000 + len(glass) - 1600 and s + 16000 > 4 * 16000 + 1600]
    return (model.components(np.stack([bg[s:s + 16000] for s in starts]))[component],
            model.components(np.stack([mixed[s:s + 16000] for s in hit]))[component])


def test_frame_sfx_hears_the_context_before_each_window_and_the_daemon_cuts_what_offline_scoring_does(tmp_path, ambient_files):
    """audio.context_s 0.5: the CNN hears the half-second before each window (changing only that
    audio changes sfx / sfx_top, never the log-mel components); only the window's own steps are
    scored; a stream pushed through the daemon's buffer gives the windows (times, scores) that
    offline scoring of the same recording gives."""
    from streamad.scoring import score_recording
    from streamad.windows.audio_buffer import AudioStreamBuffer

    sig = np.concatenate([load_audio(f, 16000)[: 20 * 16000] for f in ambient_files[30:32]])
    cfg = from_dict({"audio": {"context_s": 0.5},
                     "model": {"detector": "frame_sfx", "params": {"k": 2, "diag_k": 4, "local_k": 4, "sfx_bank": 300},
                               "score_weights": {"nll": 1, "sfx_top": 4}},
                     "train": {"calibration": "crossfit", "threads": 1, "hearing_check": False}})
    m = train_model(cfg, [Recording("place", sig)], tmp_path / "m", show_progress=False)
    fe = m.frontend
    assert (fe.lead, fe.window) == (8000, 24000)
    loaded = AnomalyModel.load(tmp_path / "m", "cpu")  # the context comes back with the model
    assert (loaded.frontend.lead, loaded.frontend.window) == (8000, 24000)
    rec = load_audio(ambient_files[40], 16000)[: 12 * 16000]
    r = score_recording(m, rec)
    W = np.stack([rec[s:s + fe.window] for s in r.starts])
    other = W.copy()
    other[:, :fe.lead] = np.random.default_rng(0).normal(0, 0.2, (len(W), fe.lead))  # loud noise as context
    a, b = m.components(W), m.components(other)
    for k in ("nll", "nll_top", "nll_diag", "nll_local_top"):
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert np.all(b["sfx_top"] > a["sfx_top"])  # the steps next to the noise hear it
    assert m.detector._steps(torch.from_numpy(W[:2, None])).shape[1] == 5  # the steps of 1 s alone

    buf = AudioStreamBuffer("mic", 16000, fe.window, fe.hop, 800, None, fe.lead)
    wins = [w for i in range(0, len(rec), 1600) for w in buf.push(rec[i:i + 1600], i / 16000)]
    st, en = r.times(m)
    assert [(w.start, w.end) for w in wins] == list(zip(st.tolist(), en.tolist()))
    assert st[0] == 0.5 and en[0] - st[0] == 1.0
    np.testing.assert_array_equal(m.score(np.stack([w.data for w in wins]))[0], r.scores)
    np.testing.assert_allclose(loaded.score(W)[0], r.scores, rtol=1e-5, atol=1e-6)


def test_sfx_gauss_is_each_steps_mahalanobis_distance_to_the_shrunk_gaussian_of_the_normal_steps(tmp_path, ambient_files, data_dir):
    """``sfx_gauss: 1`` adds sfx_gauss / sfx_gauss_top and changes no other component; the distance is
    the Mahalanobis distance under sklearn's Ledoit-Wolf covariance of the training steps; the model file
    round trips (a file without the Gaussian under sfx_gauss: 1 is refused); real breaking glass in audio
    the model never heard scores above every window of that audio without it."""
    from sklearn.covariance import ledoit_wolf

    from streamad.models.frame_sfx import shrunk_gaussian

    sig = np.concatenate([load_audio(f, 16000) for f in ambient_files[30:32]])
    w = {"nll": 1, "nll_top": 1, "sfx_gauss_top": 4}

    def cfg(gauss):
        return from_dict({"model": {"detector": "frame_sfx", "params": {"k": 2, "sfx_bank": 300, "sfx_gauss": gauss},
                                    "score_weights": w if gauss else {"nll": 1, "nll_top": 1, "sfx_top": 4}},
                          "train": {"calibration": "holdout", "threads": 1, "hearing_check": False}})

    g = train_model(cfg(1), [Recording("place", sig)], tmp_path / "g", show_progress=False)
    plain = train_model(cfg(0), [Recording("place", sig)], tmp_path / "p", show_progress=False)
    W = np.stack([sig[i:i + 16000] for i in range(0, len(sig) - 16000, 8000)])
    cg, cp = g.components(W), plain.components(W)
    assert set(cg) - set(cp) == {"sfx_gauss", "sfx_gauss_top"}
    for k in cp:
        np.testing.assert_array_equal(cg[k], cp[k], err_msg=k)
    # the distance by hand: the steps of the same windows, sklearn's shrunk covariance, its inverse
    rows = torch.randn(3000, 512, dtype=torch.float64) @ torch.randn(512, 512, dtype=torch.float64) * 0.1
    mean, whiten = shrunk_gaussian(rows.float())
    cov, _ = ledoit_wolf(rows.numpy(), assume_centered=False)
    x = rows[:5].numpy() - rows.numpy().mean(0)
    want = np.sqrt(np.einsum("ij,jk,ik->i", x, np.linalg.inv(cov), x))
    np.testing.assert_allclose(((rows[:5].float() - mean) @ whiten).norm(dim=1).numpy(), want, rtol=2e-3)
    steps = g.detector._steps(g._frontend(W[:4]))
    m = ((steps - g.detector.gauss[0]) @ g.detector.gauss[1]).norm(dim=2)
    np.testing.assert_allclose(cg["sfx_gauss_top"][:4], m.max(1).values.numpy(), rtol=1e-5)
    np.testing.assert_allclose(cg["sfx_gauss"][:4], m.mean(1).numpy(), rtol=1e-5)
    np.testing.assert_allclose(AnomalyModel.load(tmp_path / "g", "cpu").score(W)[0], g.score(W)[0], rtol=1e-5, atol=1e-6)
    det = create("frame_sfx", {"k": 2, "sfx_gauss": 1})
    with pytest.raises(KeyError):  # AnomalyModel.load turns it into its one-line "files do not match" error
        det.load_state(plain.detector.state())
    for bad in (2, -1, 0.5):
        with pytest.raises(ConfigError, match=r"^model\.params\.sfx_gauss: "):
            create("frame_sfx", {"sfx_gauss": bad})

    normal, event = _glass(g, "sfx_gauss_top", ambient_files, data_dir)
    assert event.max() > normal.max(), (event, normal.max())
