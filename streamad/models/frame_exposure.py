"""A small frame classifier trained by outlier exposure: normal windows against labelled ones.

The mixtures of :mod:`streamad.models.frame_fullgmm` learn what the normal frames look like and
score how unlikely a frame is. That is a test against *every* direction at once, and in a loud,
varied scene the directions an added sound moves a frame in are swamped by the many the scene
itself moves in. A classifier that has been shown normal windows and the same windows with some
other sound in them (:class:`streamad.windows.synthetic.SyntheticWindows`, or recorded anomalies)
learns which directions are *added* sound rather than scene: its frame logit is a second,
discriminative view of the same features.

Labels are per window (a window holds an added sound somewhere, or none), so the classifier is
trained as a multiple-instance model: a window's logit is the mean of its worst ``top`` fraction
of frame logits, the same pooling the detector scores windows with, and the loss is the binary
cross-entropy of that window logit. Each step draws a batch of normal and a batch of labelled windows
(balanced whatever their counts), so a few recorded anomalies weigh as much as many.
"""
from __future__ import annotations

from typing import Callable

import torch

from streamad.models.frames import frame_rows, top_mean

FeatureFn = Callable[[torch.Tensor], torch.Tensor]  # (n, ...) windows -> (n, W, F) frame features


class FrameExposure:
    def __init__(self, hidden: int, steps: int = 400, top: float = 0.125, batch: int = 128,
                 lr: float = 1e-3, weight_decay: float = 1e-4):
        self.hidden, self.steps, self.top = int(hidden), int(steps), float(top)
        self.batch, self.lr, self.weight_decay = int(batch), float(lr), float(weight_decay)
        self.net: torch.nn.Sequential | None = None
        self.mu = self.sd = torch.zeros(0)

    def _build(self, dim: int) -> torch.nn.Sequential:
        h = self.hidden
        return torch.nn.Sequential(torch.nn.Linear(dim, h), torch.nn.ReLU(), torch.nn.Linear(h, h),
                                   torch.nn.ReLU(), torch.nn.Linear(h, 1))

    def fit(self, normal: torch.Tensor, labelled: torch.Tensor, feats: FeatureFn, seed: int = 0,
            max_frames: int = 16000) -> "FrameExposure":
        """``normal`` / ``labelled``: detector inputs (windows) without / with an added sound."""
        if len(normal) == 0 or len(labelled) == 0:
            raise ValueError("outlier exposure needs normal and labelled windows")
        rows = torch.cat([frame_rows(normal, feats, max_frames, seed), frame_rows(labelled, feats, max_frames, seed)])
        self.mu, self.sd = rows.mean(0), rows.std(0).clamp_min(1e-3)
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = self._build(rows.shape[1])
        opt = torch.optim.Adam(self.net.parameters(), self.lr, weight_decay=self.weight_decay)
        target = torch.cat([torch.zeros(self.batch), torch.ones(self.batch)])
        with torch.enable_grad():
            for _ in range(self.steps):
                i = torch.randint(len(normal), (self.batch,), generator=gen)
                j = torch.randint(len(labelled), (self.batch,), generator=gen)
                f = torch.cat([feats(normal[i]), feats(labelled[j])])
                loss = torch.nn.functional.binary_cross_entropy_with_logits(self.window_logit(f), target)
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        return self

    def frame_logit(self, f: torch.Tensor) -> torch.Tensor:
        """(N, W, F) frame features -> (N, W) frame logits."""
        assert self.net is not None, "FrameExposure: fit or load_state first"
        return self.net((f - self.mu) / self.sd)[..., 0]

    def window_logit(self, f: torch.Tensor) -> torch.Tensor:
        """(N, W, F) frame features -> (N,) mean of each window's worst ``top`` fraction of frame logits."""
        return top_mean(self.frame_logit(f), self.top)

    def state(self) -> dict[str, torch.Tensor]:
        assert self.net is not None, "FrameExposure: fit or load_state first"
        out = {"mu": self.mu.clone(), "sd": self.sd.clone()}
        out.update({f"net.{k}": v.detach().clone() for k, v in self.net.state_dict().items()})
        return out

    def load_state(self, state: dict[str, torch.Tensor]) -> "FrameExposure":
        mu, sd = state["mu"].float(), state["sd"].float()
        w0 = state["net.0.weight"]
        if mu.dim() != 1 or sd.shape != mu.shape or tuple(w0.shape) != (self.hidden, mu.shape[0]):
            raise ValueError(f"exposure classifier state: features {tuple(mu.shape)}, first layer "
                             f"{tuple(w0.shape)}; expected ({self.hidden}, features)")
        self.mu, self.sd = mu, sd
        self.net = self._build(mu.shape[0])
        self.net.load_state_dict({k[4:]: v.float() for k, v in state.items() if k.startswith("net.")})
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        return self
