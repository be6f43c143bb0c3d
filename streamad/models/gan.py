"""Small shared pieces of the GAN-based detectors (AnoGAN, EGBAD, ALAD)."""
from __future__ import annotations

import torch
from torch.nn import functional as F


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row L1 distance."""
    return (a - b).abs().flatten(1).sum(1)


def step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> float:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()
