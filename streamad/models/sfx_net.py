"""A pretrained sound-effects CNN as a feature extractor (no training here, weights from PyPI).

The network is the 9-layer CNN of the DCASE 2018 cross-task baseline (Kong et al., "DCASE 2018
Challenge Surrey cross-task convolutional neural network baseline", 2018): four blocks of two
3x3 convolutions with batch norm and ReLU (64, 128, 256, 512 channels), 2x2 max pooling after the
first three. The weights are aiSFX's (Ma & Lerch, "Representation learning for the automatic
indexing of sound effects libraries", ISMIR 2022; MIT licence), trained to classify many thousand
labelled sound effects (glass, doors, impacts, alarms, animals, voices, vehicles, ...). They are
read from the ``aisfx`` wheel on PyPI, installed without its dependencies
(``pip install --no-deps aisfx==0.1.2``, done by ``make install``); none of aiSFX's code is
imported. ``STREAMAD_SFX_WEIGHTS`` may name another copy of the same file. The file's SHA-256 is
checked before it is read, and it is read with ``torch.load(weights_only=True)`` (allowing only
the numpy scalar and dtype types its metadata holds).

Input as the network was trained: audio resampled to 44.1 kHz, 96 mel bands (0-22.05 kHz, HTK,
L1-normalised filters) of a 2048-sample STFT every 1024 samples (23 ms), log10(1e4 x + 1) / 9.458.
Output: one 512-d vector per time step of 8 frames (186 ms): the last block's feature maps
averaged over frequency. ``bands`` < 96 runs the network on the lowest bands only: a 16 kHz signal
resampled to 44.1 kHz has nothing above 8 kHz, i.e. in the top 24 bands (but in the first frame, half
of which is the padding before the window), and the convolutions cost in proportion to the bands
they see. The frequency mean and the unpooled steps are what the detector uses.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from streamad.config import ConfigError

SR = 44100
N_FFT, HOP, N_MELS = 2048, 1024, 96
LOG_SCALE = 9.457798957824707  # aiSFX's normalisation of log10(1e4 x + 1)
STEP = 8  # frames per output step (three 2x poolings in time)
SHA256 = "499ea75909c932a2f94c35fa722fa4fabc5bcb7e84917209cc5f7402627b7eb5"  # aisfx 0.1.2 models/checkpoint.pth
INSTALL = "pip install --no-deps aisfx==0.1.2 (MIT; `make install` does it), or set STREAMAD_SFX_WEIGHTS"
PRECISIONS = ("float32", "bfloat16")


def check_bands(bands: object) -> int:
    """``model.params.sfx_bands`` as given; a one-line ConfigError for anything else. The network pools
    frequency three times by 2, so a multiple of 8 from 8 to 96."""
    if isinstance(bands, bool) or not isinstance(bands, int) or not 8 <= bands <= N_MELS or bands % 8:
        raise ConfigError(f"model.params.sfx_bands: the CNN's lowest mel bands to compute, a multiple of 8 from 8 to "
                          f"{N_MELS} (72 holds everything below 8 kHz, all a 16 kHz signal has), got {bands!r}")
    return bands


def check_precision(precision: str) -> str:
    """``model.params.sfx_precision`` as given; a one-line ConfigError for anything else."""
    if precision not in PRECISIONS:
        raise ConfigError(f"model.params.sfx_precision: 'float32' or 'bfloat16', got {precision!r}")
    return precision


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor, pool: bool) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool2d(x, 2) if pool else x


class SFXNet(nn.Module):
    """(N, frames, 96) normalised log-mel -> (N, frames // 8, 512) step features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_block1, self.conv_block2 = _Block(1, 64), _Block(64, 128)
        self.conv_block3, self.conv_block4 = _Block(128, 256), _Block(256, 512)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = spec.unsqueeze(1)
        for b in (self.conv_block1, self.conv_block2, self.conv_block3):
            x = b(x, True)
        x = self.conv_block4(x, False)
        return x.mean(dim=3).transpose(1, 2)


def weights_path() -> Path:
    env = os.environ.get("STREAMAD_SFX_WEIGHTS")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("aisfx")  # locates the package; imports none of its code
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the pretrained sound-effects CNN needs aiSFX's weights, which are not installed: {INSTALL}")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / "checkpoint.pth"


def require_weights() -> Path:
    """The weights file's path; a one-line ConfigError when there is none."""
    path = weights_path()
    if not path.is_file():
        raise ConfigError(f"aiSFX weights: no file {path} ({INSTALL})")
    return path


def load_state(path: Path | None = None) -> dict[str, torch.Tensor]:
    """The CNN's weights (embedding part) from aiSFX's checkpoint, checked and loaded safely."""
    path = Path(path) if path else require_weights()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        raise ConfigError(f"aiSFX weights: {path} has SHA-256 {digest[:16]}…, not the aisfx 0.1.2 file ({SHA256[:16]}…)")
    from numpy._core.multiarray import scalar  # the checkpoint's class counts are numpy integers

    allowed = [(scalar, "numpy.core.multiarray.scalar"), np.dtype,
               *(type(np.dtype(t)) for t in ("int64", "int32", "float64", "float32"))]
    with torch.serialization.safe_globals(allowed):
        blob = torch.load(path, map_location="cpu", weights_only=True)
    weights = blob[0] if isinstance(blob, (tuple, list)) else blob
    pre = "embedding_net."
    return {k[len(pre):]: v for k, v in weights.items() if k.startswith(pre)}


_CACHE: dict[str, dict[str, torch.Tensor]] = {}


def pretrained() -> SFXNet:
    """A fresh SFXNet in eval mode with the pretrained weights (the file is read once per process)."""
    path = require_weights()
    if str(path) not in _CACHE:
        _CACHE[str(path)] = load_state(path)
    net = SFXNet()
    net.load_state_dict(_CACHE[str(path)])
    return net.eval().requires_grad_(False)


class SFXFeatures:
    """Raw windows at ``sr`` -> (N, steps, 512) features of the pretrained CNN, on any device."""

    def __init__(self, sr: int, precision: str = "float32", bands: int = N_MELS):
        import librosa

        self.sr, self.precision, self.bands = int(sr), check_precision(precision), check_bands(bands)
        self.net = self._layout(pretrained(), torch.device("cpu"))
        mel = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=SR / 2, htk=True, norm=1.0)
        self.mel = torch.from_numpy(mel[:self.bands].astype(np.float32))  # the lowest ``bands`` only
        self.window = torch.hann_window(N_FFT)

    @staticmethod
    def _layout(net: SFXNet, device: torch.device) -> SFXNet:
        """On the CPU the convolution weights in channels-last layout (oneDNN's preferred one): about
        1.9x the windows per second in bfloat16 with bit-identical features (measured on this
        project's CPU box, docs/PERFORMANCE.md); elsewhere the default layout (the GPU figures were
        measured with it)."""
        fmt = torch.channels_last if device.type == "cpu" else torch.contiguous_format
        with torch.inference_mode(False), torch.no_grad():  # parameters stay ordinary tensors
            return net.to(memory_format=fmt)

    def to(self, device: torch.device) -> "SFXFeatures":
        device = torch.device(device)
        self.net = self._layout(self.net.to(device), device)
        self.mel, self.window = self.mel.to(device), self.window.to(device)
        return self

    def spectrogram(self, waves: torch.Tensor) -> torch.Tensor:
        """(N, samples) at ``sr`` -> (N, frames, bands) the network's input (at least one step of frames)."""
        n = waves.shape[1]
        m = int(round(n * SR / self.sr))
        # band-limited resampling of each window to 44.1 kHz (FFT zero-padding)
        y = torch.fft.irfft(torch.fft.rfft(waves.float(), dim=1), n=m, dim=1) * (m / n)
        spec = torch.stft(y, N_FFT, hop_length=HOP, window=self.window, center=True, pad_mode="constant",
                          return_complex=True)
        p = torch.matmul(self.mel, spec.real.square() + spec.imag.square())
        s = (torch.log10(p * 1e4 + 1.0) / LOG_SCALE).transpose(1, 2)
        t = max(STEP, s.shape[1] // STEP * STEP)
        return F.pad(s, (0, 0, 0, max(0, t - s.shape[1])))[:, :t]

    def steps_of(self, n: int) -> int:
        """Steps the network gives for ``n`` samples at ``sr`` (as :meth:`spectrogram` frames them)."""
        return max(1, (1 + int(round(n * SR / self.sr)) // HOP) // STEP)

    @torch.no_grad()
    def __call__(self, waves: torch.Tensor) -> torch.Tensor:
        spec = self.spectrogram(waves)
        if self.precision == "bfloat16":
            with torch.autocast(spec.device.type, dtype=torch.bfloat16):
                return self.net(spec).float()
        return self.net(spec).float()
