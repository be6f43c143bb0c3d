import numpy as np
import pytest
import torch

from streamad.config import AudioConfig
from streamad.windows.audio import LogMelFrontend
from streamad.windows.base import frame_windows


def test_logmel_matches_librosa(ambient_files):
    import librosa

    from streamad.io.files import load_audio

    fe = LogMelFrontend(AudioConfig())
    x = load_audio(ambient_files[0], 16000)[: fe.window]
    ours = fe.logmel(torch.from_numpy(x)[None])[0].numpy()
    ref = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=fe.n_fft, hop_length=fe.hop_length, center=False,
                                         n_mels=32, fmin=50.0, fmax=8000.0, power=2.0)[:, :32]
    np.testing.assert_allclose(ours, 10 * np.log10(np.maximum(ref, 1e-10)), atol=1e-3)
    assert ours.shape == (32, 32)


def test_patches_standardised_and_state_round_trip():
    rng = np.random.default_rng(0)
    fe = LogMelFrontend(AudioConfig())
    W = rng.normal(0, 0.1, (20, fe.window)).astype(np.float32)
    fe.fit(W)
    P = fe.transform(torch.from_numpy(W))
    assert P.shape == (20, 1, 32, 32)
    assert abs(float(P.mean())) < 1e-3
    fe2 = LogMelFrontend(AudioConfig())
    fe2.load_state(fe.state())
    torch.testing.assert_close(fe2.transform(torch.from_numpy(W)), P)


def test_frame_windows():
    x = np.arange(10, dtype=np.float32)
    w = frame_windows(x, 4, 3)
    np.testing.assert_array_equal(w, [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
    assert frame_windows(x[:3], 4, 1).shape == (0, 4)
    m = frame_windows(np.ones((10, 2)), 5, 5)
    assert m.shape == (2, 5, 2)


def test_level_norm_takes_each_window_relative_to_its_own_level():
    """audio.level_norm: a window turned up by 6 dB gives the same patch as before (its median
    level is taken out), while a sound on part of the window keeps its contrast; without the
    option the same gain shifts every cell."""
    rng = np.random.default_rng(0)
    sig = rng.normal(0, 0.05, 16000 * 6).astype(np.float32)
    W = frame_windows(sig, 16000, 4000)
    fes = {}
    for on in (False, True):
        fes[on] = LogMelFrontend(AudioConfig(n_mels=64, level_norm=on))
        fes[on].fit(W)
    x = torch.from_numpy(W[:4])
    loud = x * 2.0  # +6 dB
    assert (fes[False].transform(loud) - fes[False].transform(x)).abs().min() > 0.1
    torch.testing.assert_close(fes[True].transform(loud), fes[True].transform(x), atol=1e-3, rtol=0)
    tone = x.clone()
    tone[:, 4000:8000] += 0.5 * torch.sin(2 * np.pi * 1000 * torch.arange(4000) / 16000)  # a quarter of the window
    d = (fes[True].transform(tone) - fes[True].transform(x))[:, 0]
    band = int(d.mean(dim=(0, 2)).argmax())
    assert d[:, band].max() > 3.0  # the tone's band still stands out, in standard deviations
    assert float(d.median()) == pytest.approx(0.0, abs=0.2)  # the rest of the window is as before
    # the std is learned on the level-relative windows: level_norm patches of the training data are standardised
    P = fes[True].transform(torch.from_numpy(W))
    assert abs(float(P.std()) - 1.0) < 0.2


def test_context_reaches_only_the_detectors_that_use_it(ambient_files):
    """audio.context_s: a window's samples begin with its context; the log-mel patches, and a
    waveform detector that does not declare ``uses_context``, see the window alone, exactly as
    without context."""
    from streamad.io.files import load_audio
    from streamad.model import AnomalyModel
    from streamad.models.registry import create

    plain, ctx = LogMelFrontend(AudioConfig()), LogMelFrontend(AudioConfig(context_s=0.25))
    assert (ctx.lead, ctx.window, ctx.hop_length) == (4000, plain.window + 4000, plain.hop_length)
    x = load_audio(ambient_files[0], 16000)[: 3 * 16000]
    W = frame_windows(x, ctx.window, ctx.hop)
    alone = np.ascontiguousarray(W[:, ctx.lead:])
    plain.fit(alone)
    ctx.fit(W)
    torch.testing.assert_close(ctx.transform(torch.from_numpy(W)), plain.transform(torch.from_numpy(alone)))
    from streamad.config import Config

    net = create("wavenet")
    assert not net.uses_context
    m = AnomalyModel(Config(), ctx, net)
    torch.testing.assert_close(m.patches(W), torch.from_numpy(alone)[:, None])
