"""Deep convolutional autoencoder (Masci et al. 2011), in the form the Deep SVDD paper
uses as its baseline (Ruff et al., ICML 2018): the bias-free LeNet-type encoder and its
mirror decoder (bias-free MLPs for feature vectors), squared-error loss; score =
||x - D(E(x))||^2. Its encoder is what Deep SVDD / Deep SAD pre-train.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from streamad.models.blocks import lenet_decoder, lenet_encoder
from streamad.models.deep import TRAIN_DEFAULTS, DeepDetector

LENET_DEFAULTS: dict[str, Any] = {"rep_dim": 32, "ch": 8, "hidden": [128, 64]}


def sq_error(x: torch.Tensor, xr: torch.Tensor) -> torch.Tensor:
    return (x - xr).square().flatten(1).sum(1)


def ae_step(enc: nn.Module, dec: nn.Module, x: torch.Tensor, opt: torch.optim.Optimizer) -> dict[str, float]:
    loss = sq_error(x, dec(enc(x))).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"rec": loss.item()}


class DCAE(DeepDetector):
    name = "dcae"
    components = ("rec",)
    primary = "rec"
    init_fn = None  # PyTorch default init, as the reference implementation
    defaults: dict[str, Any] = {**TRAIN_DEFAULTS, **LENET_DEFAULTS, "epochs": 50, "batch_size": 200,
                                "weight_decay": 0.5e-6}

    def build(self, shape):
        p = self.params
        self.nets = {"enc": lenet_encoder(shape, p["rep_dim"], p["ch"], p["hidden"]),
                     "dec": lenet_decoder(shape, p["rep_dim"], p["ch"], p["hidden"])}

    def train_step(self, x, y, opts):
        return ae_step(self.nets["enc"], self.nets["dec"], x, opts["all"])

    def score_batch(self, x):
        return {"rec": sq_error(x, self.nets["dec"](self.nets["enc"](x)))}

    @torch.no_grad()
    def reconstruct(self, X: torch.Tensor) -> torch.Tensor:
        self.set_mode(False)
        return self.nets["dec"](self.nets["enc"](X.to(self.device))).cpu()
