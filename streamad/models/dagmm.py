"""DAGMM (Zong et al., "Deep Autoencoding Gaussian Mixture Model for Unsupervised Anomaly
Detection", ICLR 2018).

A compression network (autoencoder; tanh MLP for vectors, DCGAN conv stack for patches)
gives z = [z_c, relative Euclidean reconstruction distance, cosine similarity]; an
estimation network (one hidden layer, dropout) gives soft memberships of K Gaussian
components whose parameters follow from the batch. Loss: squared reconstruction error
+ lambda_energy * mean sample energy + lambda_cov * sum 1/Sigma_kjj. After training the
mixture is fitted on all training rows; score = sample energy
E(z) = -log sum_k phi_k N(z; mu_k, Sigma_k). Mixture maths shared with GMGAN
(:mod:`streamad.models.gmm`).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from streamad.models.blocks import decoder, encoder
from streamad.models.deep import TRAIN_DEFAULTS, DeepDetector
from streamad.models.gmm import cov_penalty, energy, mixture_params
from streamad.models.nets import Estimator


class DAGMM(DeepDetector):
    name = "dagmm"
    components = ("energy",)
    primary = "energy"
    defaults: dict[str, Any] = {**TRAIN_DEFAULTS, "nz": 1, "ch": 32, "hidden": [60, 30, 10], "k": 4,
                                "est_hidden": 10, "dropout": 0.5, "lambda_energy": 0.1, "lambda_cov": 0.005,
                                "epochs": 200, "batch_size": 1024, "lr": 1e-4}

    def build(self, shape):
        p = self.params
        self.nets = {"enc": encoder(shape, p["nz"], p["ch"], p["hidden"], act="tanh"),
                     "dec": decoder(shape, p["nz"], p["ch"], p["hidden"], act="tanh"),
                     "est": Estimator(p["nz"] + 2, p["k"], p["est_hidden"], p["dropout"])}

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x -> (z = [z_c, relative distance, cosine similarity], per-row squared error)."""
        zc = self.nets["enc"](x)[0]
        xf, rf = x.flatten(1), self.nets["dec"](zc).flatten(1)
        err = (xf - rf).square().sum(1)
        rel = err.sqrt() / xf.norm(dim=1).clamp_min(1e-8)
        cos = F.cosine_similarity(xf, rf, dim=1, eps=1e-8)
        return torch.cat([zc, rel[:, None], cos[:, None]], 1), err

    def train_step(self, x, y, opts):
        p = self.params
        z, err = self.features(x)
        phi, mu, cov = mixture_params(z, self.nets["est"](z))
        e = energy(z, phi, mu, cov).mean()
        loss = err.mean() + p["lambda_energy"] * e + p["lambda_cov"] * cov_penalty(cov)
        opts["all"].zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_([q for n in self.nets.values() for q in n.parameters()], 5.0)
        opts["all"].step()
        return {"rec": err.mean().item(), "energy": e.item()}

    def after_training(self, X, y):
        zs, gs = [], []
        for xb in X.split(4096):
            z, _ = self.features(xb)
            zs.append(z.double())
            gs.append(self.nets["est"](z).double())
        phi, mu, cov = mixture_params(torch.cat(zs), torch.cat(gs))
        self.buffers = {"phi": phi, "mu": mu, "cov": cov}

    def score_batch(self, x):
        z, _ = self.features(x)
        b = self.buffers
        return {"energy": energy(z.double(), b["phi"], b["mu"], b["cov"])}
