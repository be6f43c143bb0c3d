"""Variational autoencoder (Kingma & Welling, ICLR 2014) scored by the reconstruction
probability (An & Cho, "Variational autoencoder based anomaly detection using
reconstruction probability", 2015).

Encoder q(z|x) = N(mu(x), diag sigma^2(x)); decoder p(x|z) = N(g(z), diag s^2) with a
learned per-input log-variance s. Trained on the negative ELBO. Score = the mean negative
log-likelihood -log p(x | z_l) over ``samples`` draws z_l ~ q(z|x); the draws use a fixed
set of standard-normal vectors (shared by every row), so a row's score does not depend
on its batch and is reproducible. DCGAN conv nets for patches, MLPs for vectors.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from streamad.models.blocks import decoder, encoder
from streamad.models.deep import TRAIN_DEFAULTS, DeepDetector


class LogVar(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.value = nn.Parameter(torch.zeros((1, *shape)))


class VAE(DeepDetector):
    name = "vae"
    components = ("rec_prob",)
    primary = "rec_prob"
    defaults: dict[str, Any] = {**TRAIN_DEFAULTS, "nz": 16, "ch": 32, "hidden": None, "samples": 10,
                                "epochs": 30, "lr": 1e-3}

    def build(self, shape):
        p = self.params
        self.nets = {"enc": encoder(shape, 2 * p["nz"], p["ch"], p["hidden"]),
                     "dec": decoder(shape, p["nz"], p["ch"], p["hidden"]), "logvar": LogVar(shape)}

    def _nll(self, x: torch.Tensor, xr: torch.Tensor) -> torch.Tensor:
        s = self.nets["logvar"].value.clamp(-8, 8)
        return 0.5 * ((x - xr).square() / s.exp() + s + math.log(2 * math.pi)).flatten(1).sum(1)

    def train_step(self, x, y, opts):
        mu, lv = self.nets["enc"](x)[0].chunk(2, dim=1)
        lv = lv.clamp(-10, 10)
        z = mu + torch.randn_like(mu) * (0.5 * lv).exp()
        nll = self._nll(x, self.nets["dec"](z)).mean()
        kl = (-0.5 * (1 + lv - mu.square() - lv.exp()).sum(1)).mean()
        loss = nll + kl
        opts["all"].zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_([q for n in self.nets.values() for q in n.parameters()], 10.0)
        opts["all"].step()
        return {"nll": nll.item(), "kl": kl.item()}

    def score_batch(self, x):
        mu, lv = self.nets["enc"](x)[0].chunk(2, dim=1)
        sd = (0.5 * lv.clamp(-10, 10)).exp()
        g = torch.Generator(device="cpu").manual_seed(0)
        eps = torch.randn(self.params["samples"], mu.shape[1], generator=g).to(x.device)
        return {"rec_prob": torch.stack([self._nll(x, self.nets["dec"](mu + e * sd)) for e in eps]).mean(0)}

    @torch.no_grad()
    def reconstruct(self, X: torch.Tensor) -> torch.Tensor:
        self.set_mode(False)
        mu, _ = self.nets["enc"](X.to(self.device))[0].chunk(2, dim=1)
        return self.nets["dec"](mu).cpu()
