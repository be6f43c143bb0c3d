"""EGBAD / BiGAN (Zenati et al., "Efficient GAN-Based Anomaly Detection", ICLR-W 2018;
BiGAN: Donahue et al. 2017).

An encoder E is learned jointly with the generator G against a discriminator D(x, z)
on pairs (x, E(x)) vs (G(z), z), so inference needs no latent search. Score (the
paper's): alpha * ||x - G(E(x))||_1 + (1 - alpha) * ||f_D(x, E(x)) - f_D(G(E(x)), E(x))||_1
with feature matching on D's last hidden layer, alpha = 0.9. Adam (beta1 0.5), EMA
weights for inference.
"""
from __future__ import annotations

from typing import Any

import torch

from streamad.models.blocks import JointDiscriminator, decoder, encoder
from streamad.models.deep import TRAIN_DEFAULTS, DeepDetector
from streamad.models.gan import bce, l1, step


class EGBAD(DeepDetector):
    name = "egbad"
    components = ("score", "rec", "fm")
    primary = "score"
    defaults: dict[str, Any] = {**TRAIN_DEFAULTS, "nz": 32, "ch": 32, "hidden": [64], "d_width": 128,
                                "epochs": 20, "batch_size": 50, "lr": 1e-5, "ema": 0.999, "alpha": 0.9}

    def build(self, shape):
        p = self.params
        self.nets = {"e": encoder(shape, p["nz"], p["ch"], p["hidden"]),
                     "g": decoder(shape, p["nz"], p["ch"], p["hidden"]),
                     "d": JointDiscriminator(shape, p["nz"], p["ch"], p["d_width"])}

    def optimizers(self):
        return {"d": self.adam("d", betas=(0.5, 0.999)), "ge": self.adam("g", "e", betas=(0.5, 0.999))}

    def train_step(self, x, y, opts):
        e, g, d = self.nets["e"], self.nets["g"], self.nets["d"]
        z = torch.randn(len(x), self.params["nz"], device=x.device)
        ze, fake = e(x)[0], g(z)
        ld = step(opts["d"], bce(d(x, ze.detach())[0], 1.0) + bce(d(fake.detach(), z)[0], 0.0))
        lge = step(opts["ge"], bce(d(fake, z)[0], 1.0) + bce(d(x, ze)[0], 0.0))
        return {"d": ld, "ge": lge}

    def score_batch(self, x):
        ze = self.nets["e"](x)[0]
        xr = self.nets["g"](ze)
        rec = l1(x, xr)
        fm = l1(self.nets["d"](x, ze)[1], self.nets["d"](xr, ze)[1])
        a = self.params["alpha"]
        return {"score": a * rec + (1 - a) * fm, "rec": rec, "fm": fm}

    @torch.no_grad()
    def reconstruct(self, X: torch.Tensor) -> torch.Tensor:
        self.set_mode(False)
        return self.nets["g"](self.nets["e"](X.to(self.device))[0]).cpu()
