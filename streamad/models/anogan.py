"""AnoGAN (Schlegl et al., IPMI 2017): a GAN learns normal data; at test time the latent
code that best explains x is searched by gradient descent, and the residual scores it.

Training: generator G(z) and discriminator D (with a feature layer f), standard GAN
loss, Adam (beta1 0.5), exponential moving average of the weights for inference (as the
ALAD authors' AnoGAN baseline). Scoring: ``search_steps`` Adam steps (lr
``search_lr``) on z from a fixed start z0 minimising
(1 - lam) * ||x - G(z)||_1 + lam * ||f(x) - f(G(z))||_1 (lam = 0.1, the paper's weight);
the final value is the score. Each row's search is independent of its batch. This
search is what makes AnoGAN slow at inference.
"""
from __future__ import annotations

from typing import Any

import torch

from streamad.models.blocks import decoder, discriminator
from streamad.models.deep import TRAIN_DEFAULTS, DeepDetector
from streamad.models.gan import bce, l1, step


class AnoGAN(DeepDetector):
    name = "anogan"
    components = ("score",)
    primary = "score"
    score_needs_grad = True
    defaults: dict[str, Any] = {**TRAIN_DEFAULTS, "nz": 32, "ch": 32, "hidden": None, "d_hidden": [256, 128, 128],
                                "epochs": 20, "batch_size": 50, "lr": 1e-5, "ema": 0.999,
                                "search_steps": 500, "search_lr": 1e-3, "lam": 0.1}

    def build(self, shape):
        p = self.params
        self.nets = {"g": decoder(shape, p["nz"], p["ch"], p["hidden"]),
                     "d": discriminator(shape, p["ch"], p["d_hidden"])}

    def optimizers(self):
        return {"g": self.adam("g", betas=(0.5, 0.999)), "d": self.adam("d", betas=(0.5, 0.999))}

    def train_step(self, x, y, opts):
        g, d = self.nets["g"], self.nets["d"]
        z = torch.randn(len(x), self.params["nz"], device=x.device)
        fake = g(z)
        real_logit, _ = d(x)
        fake_logit, _ = d(fake.detach())
        ld = step(opts["d"], bce(real_logit, 1.0) + bce(fake_logit, 0.0))
        lg = step(opts["g"], bce(d(fake)[0], 1.0))
        return {"d": ld, "g": lg}

    def score_batch(self, x):
        p = self.params
        g, d = self.nets["g"], self.nets["d"]
        for n in (g, d):
            n.requires_grad_(False)
        try:
            with torch.no_grad():
                _, f_real = d(x)
            z0 = torch.randn(p["nz"], generator=torch.Generator().manual_seed(0)).to(x.device)
            z = z0.expand(len(x), -1).clone().requires_grad_(True)
            opt = torch.optim.Adam([z], lr=p["search_lr"])
            loss_fn = lambda zz: self._loss(x, f_real, zz)  # noqa: E731
            for _ in range(int(p["search_steps"])):
                opt.zero_grad(set_to_none=True)
                loss_fn(z).sum().backward()
                opt.step()
            with torch.no_grad():
                return {"score": loss_fn(z)}
        finally:
            for n in (g, d):
                n.requires_grad_(True)

    def _loss(self, x, f_real, z):
        fake = self.nets["g"](z)
        lam = self.params["lam"]
        return (1 - lam) * l1(x, fake) + lam * l1(f_real, self.nets["d"](fake)[1])
