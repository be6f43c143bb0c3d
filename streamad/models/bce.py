"""Supervised binary classifier (binary cross-entropy), the supervised baseline of Ruff et
al. 2020 ("Rethinking Assumptions in Deep Anomaly Detection"): normal rows vs labelled
anomalies / outlier exposure, half of every batch from each. Same LeNet-type / MLP
encoder as Deep SVDD plus a linear output; score = the logit of "anomalous".

Needs labelled anomalies (y == 1); without any ``fit`` raises ``TrainingError``.
"""
from __future__ import annotations

from typing import Any

from torch import nn
from torch.nn import functional as F

from streamad.models.blocks import lenet_encoder
from streamad.models.dcae import LENET_DEFAULTS
from streamad.models.deep import TRAIN_DEFAULTS, DeepDetector


class BCEClassifier(DeepDetector):
    name = "bce"
    components = ("logit",)
    primary = "logit"
    labels = "required"
    balance = True
    init_fn = None
    defaults: dict[str, Any] = {**TRAIN_DEFAULTS, **LENET_DEFAULTS, "epochs": 20, "batch_size": 128,
                                "weight_decay": 0.5e-6}

    def build(self, shape):
        p = self.params
        self.nets = {"enc": nn.Sequential(lenet_encoder(shape, p["rep_dim"], p["ch"], p["hidden"], bias=True),
                                          nn.LeakyReLU(0.01), nn.Linear(p["rep_dim"], 1))}

    def train_step(self, x, y, opts):
        loss = F.binary_cross_entropy_with_logits(self.nets["enc"](x).squeeze(1), y.float())
        opts["all"].zero_grad(set_to_none=True)
        loss.backward()
        opts["all"].step()
        return {"bce": loss.item()}

    def score_batch(self, x):
        return {"logit": self.nets["enc"](x).squeeze(1)}
