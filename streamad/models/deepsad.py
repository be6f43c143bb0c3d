"""Deep SAD (Ruff et al., "Deep Semi-Supervised Anomaly Detection", ICLR 2020).

Deep SVDD's one-class objective on the unlabelled / normal rows plus, for labelled
anomalies (y == 1), the inverse squared distance ``eta / (||phi(x) - c||^2 + 1e-6)``,
which pushes them away from the centre. Without labelled anomalies it is Deep SVDD.
Pre-training (autoencoder) and centre as in Deep SVDD; score = ||phi(x) - c||^2.
"""
from __future__ import annotations

from typing import Any

import torch

from streamad.models.deepsvdd import LOG_EPS, DeepSVDD


class DeepSAD(DeepSVDD):
    name = "deepsad"
    labels = "optional"
    defaults: dict[str, Any] = {**{k: v for k, v in DeepSVDD.defaults.items()
                                   if k not in ("objective", "nu", "warmup_epochs")}, "eta": 1.0}

    def loss(self, d: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        anomalous = y == 1
        per = torch.where(anomalous, self.params["eta"] / (d + LOG_EPS), d)
        return per.mean()
