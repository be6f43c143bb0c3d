"""ALAD (Zenati et al., "Adversarially Learned Anomaly Detection", ICDM 2018).

A BiGAN (encoder E, generator G, D_xz on (x, E(x)) vs (G(z), z)) made cycle-consistent
by two more discriminators: D_xx on (x, x) vs (x, G(E(x))) and D_zz on (z, z) vs
(z, E(G(z))) (``dzz: false`` drops it, the paper's ablation). Spectral normalisation on
the encoder and the discriminators (``sn``), Adam (beta1 0.5), and an exponential moving
average of the weights for inference, as the authors' code.

Score (the paper's best, "feature-space"): ``fm`` = ||f_xx(x, x) - f_xx(x, G(E(x)))||_1,
the L1 distance of D_xx's last hidden layer; ``l1`` = ||x - G(E(x))||_1 is also reported.
"""
from __future__ import annotations

from typing import Any

import torch

from streamad.models.blocks import (
    JointDiscriminator,
    PairDiscriminator,
    decoder,
    encoder,
    init_nets,
    with_spectral_norm,
)
from streamad.models.deep import TRAIN_DEFAULTS, DeepDetector
from streamad.models.gan import bce, l1, step


class ALAD(DeepDetector):
    name = "alad"
    components = ("fm", "l1")
    primary = "fm"
    init_fn = None  # build() initialises (before spectral normalisation)
    defaults: dict[str, Any] = {**TRAIN_DEFAULTS, "nz": 32, "ch": 32, "hidden": [64], "dec_hidden": [128, 64],
                                "d_width": 128, "dzz_width": 32, "sn": True, "dzz": True,
                                "epochs": 20, "batch_size": 50, "lr": 1e-5, "ema": 0.999}

    def build(self, shape):
        p = self.params
        nz = p["nz"]
        self.nets = {"e": encoder(shape, nz, p["ch"], p["hidden"]),
                     "g": decoder(shape, nz, p["ch"], p["dec_hidden"] or p["hidden"]),
                     "dxz": JointDiscriminator(shape, nz, p["ch"], p["d_width"]),
                     "dxx": PairDiscriminator(shape, p["ch"], [p["d_width"]]),
                     "dzz": PairDiscriminator((nz,), p["ch"], [p["dzz_width"]])}
        for n in self.nets.values():  # initialise before spectral norm re-parametrises the weights
            n.apply(init_nets)
        if p["sn"]:
            for k in ("e", "dxz", "dxx", "dzz"):
                with_spectral_norm(self.nets[k])

    def optimizers(self):
        b = (0.5, 0.999)
        return {"d": self.adam("dxz", "dxx", "dzz", betas=b), "g": self.adam("g", betas=b),
                "e": self.adam("e", betas=b)}

    def train_step(self, x, y, opts):
        e, g, dxz, dxx, dzz = (self.nets[k] for k in ("e", "g", "dxz", "dxx", "dzz"))
        z = torch.randn(len(x), self.params["nz"], device=x.device)
        ze, fake = e(x)[0], g(z)
        xr, zr = g(ze), e(fake)[0]
        use_zz = self.params["dzz"]
        # discriminators
        loss_d = (bce(dxz(x, ze.detach())[0], 1.0) + bce(dxz(fake.detach(), z)[0], 0.0)
                  + bce(dxx(x, x)[0], 1.0) + bce(dxx(x, xr.detach())[0], 0.0))
        if use_zz:
            loss_d = loss_d + bce(dzz(z, z)[0], 1.0) + bce(dzz(z, zr.detach())[0], 0.0)
        ld = step(opts["d"], loss_d)
        # generator and encoder: adversarial terms + cycle consistency (labels flipped)
        cycle = bce(dxx(x, x)[0], 0.0) + bce(dxx(x, xr)[0], 1.0)
        if use_zz:
            cycle = cycle + bce(dzz(z, z)[0], 0.0) + bce(dzz(z, zr)[0], 1.0)
        loss_g = bce(dxz(fake, z)[0], 1.0) + cycle
        loss_e = bce(dxz(x, ze)[0], 0.0) + cycle
        gp, ep = list(g.parameters()), list(e.parameters())
        grads_g = torch.autograd.grad(loss_g, gp, retain_graph=True)
        grads_e = torch.autograd.grad(loss_e, ep)
        for params, grads, opt in ((gp, grads_g, opts["g"]), (ep, grads_e, opts["e"])):
            opt.zero_grad(set_to_none=True)
            for q, gr in zip(params, grads):
                q.grad = gr
            opt.step()
        return {"d": ld, "g": loss_g.item(), "e": loss_e.item()}

    def score_batch(self, x):
        xr = self.nets["g"](self.nets["e"](x)[0])
        dxx = self.nets["dxx"]
        return {"fm": l1(dxx(x, x)[1], dxx(x, xr)[1]), "l1": l1(x, xr)}

    @torch.no_grad()
    def reconstruct(self, X: torch.Tensor) -> torch.Tensor:
        self.set_mode(False)
        return self.nets["g"](self.nets["e"](X.to(self.device))[0]).cpu()
