"""Deep SVDD (Ruff et al., "Deep One-Class Classification", ICML 2018).

A bias-free network phi (LeNet-type for patches, MLP for vectors) maps normal data into
a small hypersphere around a fixed centre c:

* ``objective: one-class``: minimise mean ||phi(x) - c||^2; score = ||phi(x) - c||^2;
* ``objective: soft-boundary``: minimise R^2 + 1/nu * mean(max(0, ||phi(x) - c||^2 - R^2)),
  R set to the (1 - nu)-quantile of the batch distances after ``warmup_epochs``;
  score = ||phi(x) - c||^2 - R^2.

As in the paper the encoder is first pre-trained as a DCAE (``pretrain_epochs``) and c is
the mean initial output (coordinates closer than ``eps`` to 0 are pushed to +-eps).
Deep SAD and the hypersphere classifier reuse this file's machinery with other losses.
"""
from __future__ import annotations

from typing import Any

import torch

from streamad.models.blocks import lenet_decoder, lenet_encoder
from streamad.models.dcae import LENET_DEFAULTS, ae_step
from streamad.models.deep import TRAIN_DEFAULTS, Batches, DeepDetector


class DeepSVDD(DeepDetector):
    name = "deepsvdd"
    components = ("dist",)
    primary = "dist"
    init_fn = None
    defaults: dict[str, Any] = {**TRAIN_DEFAULTS, **LENET_DEFAULTS, "objective": "one-class", "nu": 0.1,
                                "warmup_epochs": 10, "pretrain_epochs": 10, "epochs": 20, "batch_size": 200,
                                "weight_decay": 0.5e-6, "ae_weight_decay": 0.5e-3, "eps": 0.1}

    def build(self, shape):
        p = self.params
        if p.get("objective", "one-class") not in ("one-class", "soft-boundary"):
            from streamad.config import ConfigError

            raise ConfigError(f"model.params.objective: one-class or soft-boundary, got {p['objective']!r}")
        self.nets = {"enc": lenet_encoder(shape, p["rep_dim"], p["ch"], p["hidden"])}

    def before_training(self, X, y, gen, progress):
        p = self.params
        if p["pretrain_epochs"]:
            self.pretrain(X, y, gen, progress)
        self.set_mode(False)
        with torch.no_grad():
            c = torch.cat([self.nets["enc"](xb) for xb in X[y == 0].split(1024)]).mean(0)
        small = c.abs() < p["eps"]
        c[small & (c < 0)], c[small & (c >= 0)] = -p["eps"], p["eps"]
        self.buffers = {"c": c, "R": torch.zeros((), device=c.device)}
        self._it, self._warm = 0, p.get("warmup_epochs", 0) * Batches(y, p["batch_size"], gen, self.balance).per_epoch

    def pretrain(self, X, y, gen, progress):
        """Autoencoder pre-training of the encoder (the decoder is discarded afterwards)."""
        p = self.params
        self.nets["dec"] = lenet_decoder(self.shape, p["rep_dim"], p["ch"], p["hidden"]).to(self.device)
        params = [q for k in ("enc", "dec") for q in self.nets[k].parameters()]
        opt = torch.optim.Adam(params, lr=p["lr"], weight_decay=p["ae_weight_decay"])
        normal = y == 0
        steps = p["pretrain_epochs"] * Batches(y[normal], p["batch_size"], gen, False).per_epoch
        step = lambda x, _y, _o: ae_step(self.nets["enc"], self.nets["dec"], x, opt)  # noqa: E731
        self.run_loop(X[normal], y[normal], gen, {}, step, progress, steps=steps)
        del self.nets["dec"]

    def dist(self, x: torch.Tensor) -> torch.Tensor:
        return (self.nets["enc"](x) - self.buffers["c"]).square().sum(1)

    def loss(self, d: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.params["objective"] == "soft-boundary":
            r2 = self.buffers["R"] ** 2
            return r2 + torch.relu(d - r2).mean() / self.params["nu"]
        return d.mean()

    def train_step(self, x, y, opts):
        d = self.dist(x)
        loss = self.loss(d, y)
        opts["all"].zero_grad(set_to_none=True)
        loss.backward()
        opts["all"].step()
        self._it += 1
        if self.params.get("objective") == "soft-boundary" and self._it > self._warm:
            r = torch.quantile(d.detach().sqrt(), 1 - self.params["nu"])
            self.buffers["R"] = r.reshape(())
        return {"loss": loss.item()}

    def score_batch(self, x):
        d = self.dist(x)
        if self.params.get("objective") == "soft-boundary":
            d = d - self.buffers["R"] ** 2
        return {"dist": d}


def pseudo_huber(d: torch.Tensor) -> torch.Tensor:
    """sqrt(d + 1) - 1 of a squared distance d (the hypersphere classifier's radial map)."""
    return torch.sqrt(d + 1.0) - 1.0


LOG_EPS = 1e-6  # keeps 1/d and log(1 - exp(-h)) finite at d = 0
