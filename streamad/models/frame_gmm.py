"""Baseline: diagonal Gaussian mixture on the frames (columns) of each patch.

For log-mel patches a frame is one spectrum (for feature vectors, the row); the window score is the mean
negative log-likelihood of its frames. On rare-event mixtures this simple model
is already hard to beat, which is why it is a comparison row for GMGAN.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from streamad.models.base import Detector, Progress, check_layout
from streamad.models.frames import frame_features, frame_rows
from streamad.models.gmm import DiagGMM


def _frames(X: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) patches -> (N*W, C*H) frames; feature vectors (N, D): each row is one frame."""
    f = frame_features(X)
    return f.reshape(-1, f.shape[2])


class FrameGMM(Detector):
    name = "frame_gmm"
    components = ("nll",)
    patch_shape = None  # frame by frame: any number of mel bands and frames
    defaults: dict[str, Any] = {"k": 8, "iters": 100, "max_frames": 200000}

    def fit(self, X: torch.Tensor, y: Any = None, *, seed: int = 0, progress: Progress | None = None,
            checkpoint: Path | None = None) -> "FrameGMM":
        X, _ = self.training_rows(X, y)
        f = frame_rows(X.cpu(), frame_features, self.params["max_frames"], seed)  # the sample only
        self.gmm = DiagGMM(self.params["k"], self.params["iters"], seed=seed).fit(f)
        if progress:
            progress(1, 1, {})
        return self

    @torch.no_grad()
    def score_components(self, X: torch.Tensor) -> dict[str, np.ndarray]:
        check_layout(X, self.name, self.input, self.patch_shape)
        n, w = X.shape[0], (X.shape[3] if X.dim() == 4 else 1)
        nll = self.gmm.nll(_frames(X.cpu())).reshape(n, w)
        return {"nll": nll.mean(1).numpy()}

    def state(self) -> dict[str, torch.Tensor]:
        return self.gmm.state()

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.gmm = DiagGMM(self.params["k"], self.params["iters"])
        self.gmm.load_state(state)
