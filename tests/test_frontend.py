import numpy as np
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
