"""GeoTrans (Golan & El-Yaniv, "Deep Anomaly Detection Using Geometric Transformations",
NeurIPS 2018): a classifier learns which of T transformations was applied to a normal
sample; on anomalies it is less sure. Score = -mean_t log p(t | T_t(x)) (the paper's
simplified score).

* Patches: the paper's 72 transformations (horizontal flip x translation by
  {0, -8, +8} rows x {0, -8, +8} columns, reflect padding x rotation by 0/90/180/270
  degrees); the classifier is the DCGAN conv encoder with T outputs (the paper uses a
  wide residual net; smaller here for CPU budgets).
* Feature vectors: there is no geometry, so, as GOAD (Bergman & Hoshen, ICLR 2020) does
  for tables, T = ``n_transforms`` random affine maps x -> x W_t + b_t (to ``rep_dim``
  dims, fixed at fit and stored) and an MLP classifier.

Training draws a random transformation per sample; one epoch = N * T transformed samples.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch.nn import functional as F

from streamad.models.blocks import MLPEncoder, encoder, is_patch
from streamad.models.deep import TRAIN_DEFAULTS, Batches, DeepDetector

N_GEOMETRIC = 72
SHIFTS = (8, 0, 16)  # crop offsets in the padded patch: no shift, +8, -8


def geometric(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Apply transformation t[i] (0..71) to patch x[i] (B, C, 32, 32); rows sharing a
    transformation are processed together."""
    pad = F.pad(x, (8, 8, 8, 8), mode="reflect")
    out = torch.empty_like(x)
    for k in t.unique().tolist():
        flip, rest = divmod(int(k), 36)
        r0, c0, rot = SHIFTS[(rest // 12) % 3], SHIFTS[(rest // 4) % 3], rest % 4
        m = t == k
        v = pad[m, :, r0:r0 + 32, c0:c0 + 32]
        out[m] = torch.rot90(v.flip(3) if flip else v, rot, dims=(2, 3))
    return out


class GeoTrans(DeepDetector):
    name = "geotrans"
    components = ("score",)
    primary = "score"
    defaults: dict[str, Any] = {**TRAIN_DEFAULTS, "ch": 16, "hidden": [128, 64], "n_transforms": 32,
                                "rep_dim": 32, "epochs": 1, "batch_size": 64, "lr": 1e-3}

    @property
    def n_t(self) -> int:
        return N_GEOMETRIC if is_patch(self.shape) else int(self.params["n_transforms"])

    def build(self, shape):
        p = self.params
        if is_patch(shape):
            self.nets = {"clf": encoder(shape, N_GEOMETRIC, p["ch"])}
        else:
            self.nets = {"clf": MLPEncoder(p["rep_dim"], p["n_transforms"], p["hidden"], bn=True)}

    def before_training(self, X, y, gen, progress):
        if not is_patch(self.shape):
            d, r, t = self.shape[0], self.params["rep_dim"], self.n_t
            self.buffers = {"W": torch.randn(t, d, r, generator=gen).to(X.device) / math.sqrt(d),
                            "b": torch.randn(t, r, generator=gen).to(X.device)}

    def total_steps(self, batches: Batches) -> int:
        p = self.params
        if p["steps"]:
            return int(p["steps"])
        return max(1, int(p["epochs"] * len(batches.pool) * self.n_t // batches.bs))

    def transform(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if is_patch(self.shape):
            return geometric(x, t)
        return torch.bmm(x[:, None, :], self.buffers["W"][t]).squeeze(1) + self.buffers["b"][t]

    def train_step(self, x, y, opts):
        t = torch.randint(self.n_t, (len(x),), device=x.device)
        loss = F.cross_entropy(self.nets["clf"](self.transform(x, t))[0], t)
        opts["all"].zero_grad(set_to_none=True)
        loss.backward()
        opts["all"].step()
        return {"ce": loss.item()}

    def score_batch(self, x):
        total = torch.zeros(len(x), device=x.device, dtype=torch.float64)
        for k in range(self.n_t):
            t = torch.full((len(x),), k, device=x.device, dtype=torch.int64)
            logp = F.log_softmax(self.nets["clf"](self.transform(x, t))[0], dim=1)[:, k]
            total -= logp.double()
        return {"score": total / self.n_t}
