"""DSEBM (Zhai et al., "Deep Structured Energy Based Models for Anomaly Detection", ICML 2016).

Energy E(x) = 1/2 ||x - b'||^2 - sum_j softplus(f_j(x)) with a deep network f (softplus
MLP for vectors, DCGAN conv stack for patches). Trained by denoising score matching:
the "reconstruction" x - grad_x E(x~) of a noisy x~ = x + noise * N(0, 1) should give x
back. Two scores, as in the paper: ``energy`` = E(x) (DSEBM-e, the primary) and ``rec`` =
||grad_x E(x)||_2 = ||x - reconstruction|| (DSEBM-r).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from streamad.models.blocks import encoder
from streamad.models.deep import TRAIN_DEFAULTS, DeepDetector


class EnergyNet(nn.Module):
    def __init__(self, shape, nz: int, ch: int, hidden):
        super().__init__()
        self.f = encoder(shape, nz, ch, hidden, act="softplus")
        self.b = nn.Parameter(torch.zeros((1, *shape)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x - self.b).square().flatten(1).sum(1) - F.softplus(self.f(x)[0]).sum(1)


class DSEBM(DeepDetector):
    name = "dsebm"
    components = ("energy", "rec")
    primary = "energy"
    score_needs_grad = True
    defaults: dict[str, Any] = {**TRAIN_DEFAULTS, "nz": 512, "ch": 32, "hidden": [128], "noise": 1.0,
                                "epochs": 20, "batch_size": 100, "lr": 1e-4}

    def build(self, shape):
        p = self.params
        self.nets = {"energy": EnergyNet(shape, p["nz"], p["ch"], p["hidden"])}

    def _grad(self, x: torch.Tensor, create_graph: bool) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        e = self.nets["energy"](x)
        (g,) = torch.autograd.grad(e.sum(), x, create_graph=create_graph)
        return e, g

    def train_step(self, x, y, opts):
        noisy = x + self.params["noise"] * torch.randn_like(x)
        _, g = self._grad(noisy, create_graph=True)
        loss = (x - (noisy - g)).square().mean()
        opts["all"].zero_grad(set_to_none=True)
        loss.backward()
        opts["all"].step()
        return {"score_matching": loss.item()}

    def score_batch(self, x):
        e, g = self._grad(x, create_graph=False)
        return {"energy": e.detach(), "rec": g.flatten(1).norm(dim=1)}
