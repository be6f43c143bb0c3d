"""WaveNet-style next-sample predictor on raw audio (van den Oord et al. 2016; as an
anomaly detector: Rushe & Mac Namee, "Anomaly detection in raw audio using deep
autoregressive networks", ICASSP 2019): the audio baseline GMGAN was compared with.

Input: raw windows (N, 1, samples) -- the detector declares ``input = "waveform"`` and
the audio front end hands it the waveform instead of log-mel patches (see
:meth:`streamad.pipeline.AnomalyModel.patches`). Samples are scaled by a gain learned
at fit (``target_rms`` / training RMS), clipped to [-1, 1] and mu-law companded; a
stack of dilated causal convolutions with gated activations and skip connections
predicts a 256-way distribution of the next (mu-law quantised) sample. Training uses
random ``crop``-sample excerpts of the training windows; a prediction counts once the
receptive field is full. Scores: ``nll`` = mean negative log-likelihood over the window,
``nll_max`` = the largest mean over ``frame``-sample frames (short events).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from streamad.models.deep import TRAIN_DEFAULTS, DeepDetector


def mu_law(x: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x in [-1, 1] -> (companded value in [-1, 1], class index 0..bins-1)."""
    mu = bins - 1
    f = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return f, ((f + 1) / 2 * mu + 0.5).floor().clamp(0, mu).long()


class CausalStack(nn.Module):
    def __init__(self, ch: int, layers: int, stacks: int, bins: int):
        super().__init__()
        self.ch = ch
        self.dilations = [2 ** i for _ in range(stacks) for i in range(layers)]
        self.inp = nn.Conv1d(1, ch, 2)
        self.filt = nn.ModuleList(nn.Conv1d(ch, 2 * ch, 2, dilation=d) for d in self.dilations)
        self.res = nn.ModuleList(nn.Conv1d(ch, ch, 1) for _ in self.dilations)
        self.skip = nn.ModuleList(nn.Conv1d(ch, ch, 1) for _ in self.dilations)
        self.out = nn.Sequential(nn.ReLU(), nn.Conv1d(ch, ch, 1), nn.ReLU(), nn.Conv1d(ch, bins, 1))

    @property
    def receptive_field(self) -> int:
        return sum(self.dilations) + 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) companded samples -> (B, bins, T) logits; position t predicts sample t + 1."""
        h = self.inp(F.pad(x, (1, 0)))
        skip = torch.zeros_like(h)
        for f, r, s, d in zip(self.filt, self.res, self.skip, self.dilations):
            a = f(F.pad(h, (d, 0)))
            g = torch.tanh(a[:, :self.ch]) * torch.sigmoid(a[:, self.ch:])
            skip = skip + s(g)
            h = h + r(g)
        return self.out(skip)


class WaveNetPredictor(DeepDetector):
    name = "wavenet"
    components = ("nll", "nll_max")
    primary = "nll"
    input = "waveform"
    init_fn = None
    score_batch_size = 8
    defaults: dict[str, Any] = {**TRAIN_DEFAULTS, "channels": 16, "layers": 10, "stacks": 1, "bins": 256,
                                "crop": 4096, "frame": 1024, "target_rms": 0.1, "epochs": 1, "steps": 600,
                                "batch_size": 8, "lr": 1e-3}

    def build(self, shape):
        p = self.params
        self.nets = {"net": CausalStack(p["channels"], p["layers"], p["stacks"], p["bins"])}

    def before_training(self, X, y, gen, progress):
        rms = X[y == 0].square().mean().sqrt().clamp_min(1e-6)
        self.buffers = {"gain": (self.params["target_rms"] / rms).reshape(())}
        self._gen = gen

    def _nll(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) raw -> (B, T - rf + 1) per-sample NLL once the receptive field is full."""
        f, q = mu_law((x * self.buffers["gain"]).clamp(-1, 1), self.params["bins"])
        logits = self.nets["net"](f)[:, :, :-1]
        start = min(self.nets["net"].receptive_field - 2, x.shape[2] - 2)
        return F.cross_entropy(logits[:, :, start:], q[:, 0, start + 1:], reduction="none")

    def train_step(self, x, y, opts):
        crop = min(int(self.params["crop"]), x.shape[2])
        off = torch.randint(x.shape[2] - crop + 1, (len(x),), generator=self._gen)
        xc = torch.stack([x[i, :, o:o + crop] for i, o in enumerate(off.tolist())])
        loss = self._nll(xc).mean()
        opts["all"].zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.nets["net"].parameters(), 10.0)
        opts["all"].step()
        return {"nll": loss.item()}

    def score_batch(self, x):
        nll = self._nll(x)
        fr = max(1, min(int(self.params["frame"]), nll.shape[1]))
        frames = nll[:, : nll.shape[1] // fr * fr].reshape(len(x), -1, fr).mean(2)
        return {"nll": nll.mean(1), "nll_max": frames.max(1).values}
