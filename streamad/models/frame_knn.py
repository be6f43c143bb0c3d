"""Frame memory bank: each frame of a window scored by its distance to the nearest normal frame.

The idea of PatchCore (anomalib) on log-mel frames: keep ``bank`` frames sampled from the
normal training frames; a frame's anomaly is its Euclidean distance to the nearest of them, and a
window's score is the mean over its worst ``top`` fraction of frames (``nn_top``; ``nn`` is the
mean over all frames). Unlike a mixture of a few Gaussians it needs no shape for the normal
frames: a café or a street, whose frames come from many different sounds, is covered by examples
of them, so a frame unlike every one of them stands out even when it is not loud. Frames are
the standardised log-mel spectra, with the ``floor`` of :mod:`streamad.models.frames`
(every band clamped from below at its training quantile: quieter than normal is not an event).

:class:`FrameBank` is the piece; ``frame_fullgmm`` uses it as an extra component (``bank``), and
``frame_knn`` is the bank alone as a detector.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamad.models.base import Detector, Progress, batched, check_layout, whole_param
from streamad.models.frames import band_floor, frame_features, frame_rows, sample_rows, top_mean


class FrameBank:
    """``size`` frames drawn at random (seeded) from the training frames; ``nearest`` gives each
    query frame's distance to the closest one. Its state is one tensor, ``bank.frames``, so a
    detector holding a bank merges it into its own state as it is."""

    def __init__(self, size: int, seed: int = 0):
        if size < 1:
            raise ValueError(f"frame bank size must be >= 1, got {size}")
        self.size, self.seed = int(size), seed
        self.frames: torch.Tensor | None = None

    def fit(self, frames: torch.Tensor) -> "FrameBank":
        """``frames`` (n, F): every training frame (n may be far above ``size``)."""
        pick = sample_rows(len(frames), self.size, self.seed)
        if pick is not None:
            frames = frames[pick]
        self.frames = frames.float().contiguous().clone()
        return self

    def nearest(self, f: torch.Tensor) -> torch.Tensor:
        """(N, W, F) frames -> (N, W) distance of each to its nearest bank frame."""
        d = torch.cdist(f.reshape(-1, f.shape[2]).float(), self.frames)
        return d.min(dim=1).values.reshape(f.shape[:2])

    def state(self) -> dict[str, torch.Tensor]:
        return {"bank.frames": self.frames.clone()}

    def load_state(self, state: dict[str, torch.Tensor]) -> "FrameBank":
        """From a detector's whole state (its ``bank.frames``)."""
        frames = state["bank.frames"].float()
        if frames.dim() != 2 or not len(frames):
            raise ValueError(f"frame bank: frames must be a non-empty (n, features) matrix, got {tuple(frames.shape)}")
        self.frames = frames.contiguous()
        return self


def bank_size(value: Any, least: int) -> int:
    """``model.params.bank`` as a whole number >= ``least``, else a one-line ConfigError."""
    return whole_param("bank", value, least, f"frames in the memory bank, a whole number >= {least}")


class FrameKNN(Detector):
    name = "frame_knn"
    components = ("nn", "nn_top")
    patch_shape = None  # frame by frame: any number of mel bands and frames
    defaults: dict[str, Any] = {"bank": 1000, "top": 0.125, "floor": 0.01}

    def __init__(self, **params: Any):
        super().__init__(**params)
        bank_size(self.params["bank"], 1)

    def fit(self, X: torch.Tensor, y: Any = None, *, seed: int = 0, progress: Progress | None = None,
            checkpoint: Path | None = None) -> "FrameKNN":
        X, _ = self.training_rows(X, y)
        X = X.cpu().float()
        self.lo = band_floor(X, self.params["floor"], seed)
        rows = frame_rows(X, lambda xb: frame_features(xb, 0, self.lo), self.params["bank"], seed)
        self.bank = FrameBank(self.params["bank"], seed).fit(rows)  # the bank's sample, computed alone
        if progress:
            progress(1, 1, {})
        return self

    @torch.no_grad()
    def score_components(self, X: torch.Tensor) -> dict[str, np.ndarray]:
        check_layout(X, self.name, self.input, self.patch_shape)
        nn, top = [], []
        for xb in batched(X, 256):
            d = self.bank.nearest(frame_features(xb.cpu().float(), 0, self.lo))
            nn.append(d.mean(1))
            top.append(top_mean(d, self.params["top"]))
        return {"nn": torch.cat(nn).double().numpy(), "nn_top": torch.cat(top).double().numpy()}

    def state(self) -> dict[str, torch.Tensor]:
        out = self.bank.state()
        if self.lo is not None:
            out["floor"] = self.lo.clone()
        return out

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.bank = FrameBank(self.params["bank"]).load_state(state)
        self.lo = state["floor"].float() if "floor" in state else None
