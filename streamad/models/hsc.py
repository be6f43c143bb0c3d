"""Hypersphere classifier, HSC (Ruff et al., "Rethinking Assumptions in Deep Anomaly
Detection", 2020).

A binary classifier whose normal-class probability is radial: l(x) = exp(-h(x)) with
h(x) = sqrt(||phi(x) - c||^2 + 1) - 1 (pseudo-Huber). Loss: h(x) for normal rows and
-log(1 - exp(-h(x))) for labelled anomalies / outlier exposure (half of every batch when
there are any). Score = h(x). The centre c is placed like Deep SVDD's (the paper uses
c = 0 with biased nets, which needs anomalies to avoid the trivial solution; with a
bias-free net and a fixed c the detector also works without labelled anomalies, where it
reduces to a robust Deep SVDD). No autoencoder pre-training by default, as in the paper.
"""
from __future__ import annotations

from typing import Any

import torch

from streamad.models.deepsvdd import LOG_EPS, DeepSVDD, pseudo_huber


class HSC(DeepSVDD):
    name = "hsc"
    components = ("h",)
    primary = "h"
    labels = "optional"
    balance = True
    defaults: dict[str, Any] = {**{k: v for k, v in DeepSVDD.defaults.items()
                                   if k not in ("objective", "nu", "warmup_epochs")}, "pretrain_epochs": 0}

    def loss(self, d: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = pseudo_huber(d)
        anomalous = -torch.log(-torch.expm1(-h) + LOG_EPS)
        return torch.where(y == 1, anomalous, h).mean()

    def score_batch(self, x):
        return {"h": pseudo_huber(self.dist(x))}
