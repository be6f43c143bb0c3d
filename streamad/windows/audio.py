"""Audio front end: windows of samples -> standardised 32x32 log-mel patches.

Log-mel uses ``torch.stft`` with librosa's mel matrix, so it runs on the scoring
device (GPU when present). Per-band mean/std are learned on the training windows
and stored with the model.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from streamad.config import AudioConfig


class LogMelFrontend:
    kind = "audio"

    def __init__(self, cfg: AudioConfig):
        self.cfg = cfg
        self.sr = cfg.sample_rate
        # a window's samples: audio.context_s of context (``lead``), then the window_s it stands for
        self.lead = int(round(cfg.context_s * cfg.sample_rate))
        self.window = self.lead + int(round(cfg.window_s * cfg.sample_rate))
        self.hop = int(round(cfg.hop_s * cfg.sample_rate))
        self.frames = cfg.frames
        self.n_fft = cfg.n_fft
        self.hop_length = max(1, (self.window - self.lead - self.n_fft) // max(1, self.frames - 1))
        import librosa  # heavy import, only when a frontend is built

        mel = librosa.filters.mel(sr=self.sr, n_fft=self.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin,
                                  fmax=cfg.fmax or self.sr / 2)
        self.mel = torch.from_numpy(mel.astype(np.float32))
        self.stft_window = torch.hann_window(self.n_fft)
        self.mean = torch.zeros(cfg.n_mels, 1)
        self.std = torch.ones(cfg.n_mels, 1)
        self._dev: dict[str, tuple[torch.Tensor, ...]] = {}

    @property
    def rate(self) -> float:
        """Samples per second (window/hop units)."""
        return float(self.sr)

    def train_hop(self, cfg) -> int:
        return max(1, int(round(cfg.train.train_hop_s * self.sr)))

    # -- state ------------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        return {"band_mean": self.mean.clone(), "band_std": self.std.clone()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        mean, std = state["band_mean"].float(), state["band_std"].float()
        shape = (self.cfg.n_mels, 1)
        if tuple(mean.shape) != shape or tuple(std.shape) != shape:
            raise ValueError(f"log-mel front end state: band statistics must be {shape}, got "
                             f"{tuple(mean.shape)} and {tuple(std.shape)}")
        if not bool((std > 0).all()):
            raise ValueError("log-mel front end state: band_std must be > 0")
        self.mean, self.std = mean, std
        self._dev.clear()

    def describe(self) -> dict[str, Any]:
        return {"window_samples": self.window, "hop_samples": self.hop, "hop_length": self.hop_length,
                "context_samples": self.lead}

    def _consts(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        k = str(device)
        if k not in self._dev:
            self._dev[k] = tuple(t.to(device) for t in (self.mel, self.stft_window, self.mean, self.std))
        return self._dev[k]

    # -- transform --------------------------------------------------------------
    def logmel(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> (B, n_mels, frames) log-mel power in dB (unstandardised), of the samples
        after the window's context (``audio.context_s``)."""
        mel, win, _, _ = self._consts(waves.device)
        spec = torch.stft(waves[..., self.lead:], self.n_fft, hop_length=self.hop_length, window=win, center=False,
                          return_complex=True)
        ri = torch.view_as_real(spec).square()  # re^2, im^2 side by side: 1.3x faster than from the strided views
        power = ri[..., 0] + ri[..., 1]
        m = torch.matmul(mel, power)[..., : self.frames]
        return 10.0 * torch.log10(m.clamp_min(1e-10))

    def fit(self, waves: np.ndarray, batch: int = 512) -> None:
        """Learn per-band mean and std from training windows (N, samples) (with ``level_norm``, the
        std of the windows taken relative to their own level: a second pass)."""
        self.mean = torch.zeros(self.cfg.n_mels, 1)
        self.std = torch.ones(self.cfg.n_mels, 1)
        self._dev.clear()
        mean = std = None
        for second in ((False, True) if self.cfg.level_norm else (False,)):
            sums = torch.zeros(self.cfg.n_mels, dtype=torch.float64)
            sq = torch.zeros_like(sums)
            count = 0
            for i in range(0, len(waves), batch):
                lm = self.logmel(torch.from_numpy(np.asarray(waves[i:i + batch], dtype=np.float32))).double()
                if second:
                    lm = self._relative(lm - mean.unsqueeze(1)) + mean.unsqueeze(1)
                sums += lm.sum(dim=(0, 2))
                sq += lm.square().sum(dim=(0, 2))
                count += lm.shape[0] * lm.shape[2]
            if not second:
                mean = sums / count
            std = (sq / count - (sums / count).square()).clamp_min(1e-6).sqrt()
        self.mean = mean.float().unsqueeze(1)
        self.std = std.float().clamp_min(0.5).unsqueeze(1)  # floor: a silent band must not explode
        self._dev.clear()

    def _relative(self, dev: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, frames) deviations from the band means -> relative to each window's level
        (``level_norm``; unchanged otherwise)."""
        if not self.cfg.level_norm:
            return dev
        return dev - dev.flatten(1).median(dim=1).values[:, None, None]

    def transform(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> (B, 1, n_mels, frames) standardised patches."""
        _, _, mean, std = self._consts(waves.device)
        return (self._relative(self.logmel(waves) - mean) / std).unsqueeze(1)
