"""GMGAN: latent-regularised Gaussian-mixture GAN (Chen et al., arXiv 2002.01107).

Generator G = encoder G_E -> decoder G_D -> encoder E (GANomaly); discriminator D
gives the adversarial signal as feature matching on its last feature map; an
estimation network turns the latent code z = G_E(x) into soft memberships of a
K-component Gaussian mixture (DAGMM). Generator loss:

    w_adv * ||f_D(x) - f_D(G(x))||^2 + w_rec * |x - G(x)|_1 + w_enc * ||z - E(G(x))||^2
      + lambda_energy * mean E(z) + lambda_cov * sum_k sum_j 1 / Sigma_kjj

Score components (each standardised later by the calibrator): ``energy`` (E(z)
under the mixture fitted on all training codes), ``irec`` (mean |x - G(x)|),
``zrec`` (mean (z - E(G(x)))^2), and ``irec_max`` (largest time-frame residual, so
a short transient is not averaged away over the patch).

Ablations share this file: ``GANomaly`` (no mixture term) and ``ConvAE`` (no
discriminator, no mixture, no second encoder).

Input: patches (N, C, 32, 32) use the DCGAN conv stacks; feature vectors (N, D) use MLPs
of the same roles (hidden widths 4*ch, 2*ch), built by :mod:`streamad.models.blocks`.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from streamad.models.base import Detector, Progress, TrainingError, batched
from streamad.models.blocks import (
    decoder,
    discriminator,
    encoder,
    frame_max,
    per_sample,
)
from streamad.models.gmm import cov_penalty, energy, mixture_params
from streamad.models.nets import Estimator, init_weights


class GMGAN(Detector):
    name = "gmgan"
    components = ("irec", "irec_max", "zrec", "energy")  # those in use: components_active
    defaults: dict[str, Any] = {
        "nz": 16, "ch": 32, "k": 4, "steps": 1500, "batch_size": 64, "lr": 2e-4,
        "w_adv": 1.0, "w_rec": 50.0, "w_enc": 1.0, "lambda_energy": 0.1, "lambda_cov": 0.005,
        "use_gmm": True, "use_adv": True, "use_enc2": True, "max_seconds": None,
        "checkpoint_every": 250,
    }

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.in_shape: tuple[int, ...] | None = None
        self.nets: dict[str, nn.Module] = {}

    # -- construction -----------------------------------------------------------
    def _build(self, shape: tuple[int, ...]) -> None:
        p = self.params
        self.in_shape = tuple(int(s) for s in shape)
        self.nets = {"ge": encoder(shape, p["nz"], p["ch"]), "gd": decoder(shape, p["nz"], p["ch"])}
        if p["use_enc2"]:
            self.nets["e"] = encoder(shape, p["nz"], p["ch"])
        if p["use_adv"]:
            self.nets["d"] = discriminator(shape, p["ch"])
        if p["use_gmm"]:
            self.nets["est"] = Estimator(p["nz"], p["k"])
        for n in self.nets.values():
            n.apply(init_weights)
            n.to(self.device)
        self.phi = self.mu = self.cov = None
        self._scoring_layout = False

    def to(self, device):
        super().to(device)
        for n in self.nets.values():
            n.to(self.device)
        for a in ("phi", "mu", "cov"):
            if getattr(self, a, None) is not None:
                setattr(self, a, getattr(self, a).to(self.device))
        return self

    @property
    def components_active(self) -> tuple[str, ...]:
        out = ["irec", "irec_max"]
        if self.params["use_enc2"]:
            out.append("zrec")
        if self.params["use_gmm"]:
            out.append("energy")
        return tuple(out)

    # -- training ---------------------------------------------------------------
    def _g_params(self):
        return [q for k in ("ge", "gd", "e", "est") if k in self.nets for q in self.nets[k].parameters()]

    def fit(self, X: torch.Tensor, y: Any = None, *, seed: int = 0, progress: Progress | None = None,
            checkpoint: Path | None = None) -> "GMGAN":
        p = self.params
        X, _ = self.training_rows(X, y)
        torch.manual_seed(seed)
        self._build(tuple(X.shape[1:]))
        X = X.to(self.device)
        opt_g = torch.optim.Adam(self._g_params(), lr=p["lr"], betas=(0.5, 0.999))
        opt_d = (torch.optim.Adam(self.nets["d"].parameters(), lr=p["lr"], betas=(0.5, 0.999))
                 if "d" in self.nets else None)
        gen = torch.Generator().manual_seed(seed)
        start = 0
        if checkpoint is not None and checkpoint.exists():
            ck = torch.load(checkpoint, weights_only=True)
            if ck.get("n_train") == len(X):
                for k, n in self.nets.items():
                    n.load_state_dict(ck["nets"][k])
                opt_g.load_state_dict(ck["opt_g"])
                if opt_d is not None:
                    opt_d.load_state_dict(ck["opt_d"])
                gen.set_state(ck["gen"])
                torch.set_rng_state(ck["torch_rng"])
                start = int(ck["step"])
        steps, bs = p["steps"], min(p["batch_size"], len(X))
        t0 = time.monotonic()
        for n in self.nets.values():
            n.train()
        losses: dict[str, float] = {}
        for step in range(start, steps):
            idx = torch.randint(len(X), (bs,), generator=gen)
            x = X[idx]
            try:
                losses = self._step(x, opt_g, opt_d)
            except torch.linalg.LinAlgError as e:
                raise TrainingError(f"training diverged at step {step + 1}: {e} "
                                    f"(lower model.params.lr, now {p['lr']})") from None
            if not all(math.isfinite(v) for v in losses.values()):
                bad = ", ".join(f"{k}={v}" for k, v in losses.items() if not math.isfinite(v))
                raise TrainingError(f"training diverged at step {step + 1}: {bad} "
                                    f"(lower model.params.lr, now {p['lr']})")
            if progress:
                progress(step + 1, steps, losses)
            if checkpoint is not None and (step + 1) % p["checkpoint_every"] == 0 and step + 1 < steps:
                self._save_checkpoint(checkpoint, step + 1, len(X), opt_g, opt_d, gen)
            if p["max_seconds"] and time.monotonic() - t0 > p["max_seconds"]:
                break
        self._finalize(X)
        if checkpoint is not None and checkpoint.exists():
            checkpoint.unlink()
        return self

    def _save_checkpoint(self, path: Path, step: int, n: int, opt_g, opt_d, gen) -> None:
        ck = {"step": step, "n_train": n, "nets": {k: v.state_dict() for k, v in self.nets.items()},
              "opt_g": opt_g.state_dict(), "gen": gen.get_state(), "torch_rng": torch.get_rng_state()}
        if opt_d is not None:
            ck["opt_d"] = opt_d.state_dict()
        tmp = path.with_suffix(".tmp")
        torch.save(ck, tmp)
        tmp.replace(path)

    def _step(self, x, opt_g, opt_d) -> dict[str, float]:
        p = self.params
        ge, gd = self.nets["ge"], self.nets["gd"]
        z, _ = ge(x)
        xr = gd(z)
        loss = p["w_rec"] * (x - xr).abs().mean()
        out = {"rec": (x - xr).abs().mean().item()}
        if "e" in self.nets:
            zr, _ = self.nets["e"](xr)
            l_enc = (z - zr).square().mean()
            loss = loss + p["w_enc"] * l_enc
            out["enc"] = l_enc.item()
        if "d" in self.nets:
            _, f_real = self.nets["d"](x)
            _, f_fake = self.nets["d"](xr)
            l_adv = (f_real.detach() - f_fake).square().mean()
            loss = loss + p["w_adv"] * l_adv
            out["adv"] = l_adv.item()
        if "est" in self.nets:
            gamma = self.nets["est"](z)
            phi, mu, cov = mixture_params(z, gamma)
            e = energy(z, phi, mu, cov).mean()
            loss = loss + p["lambda_energy"] * e + p["lambda_cov"] * cov_penalty(cov)
            out["energy"] = e.item()
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self._g_params(), 5.0)
        opt_g.step()
        if opt_d is not None:
            d = self.nets["d"]
            lr_, _ = d(x)
            lf, _ = d(xr.detach())
            l_d = 0.5 * (F.binary_cross_entropy_with_logits(lr_, torch.ones_like(lr_))
                         + F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf)))
            opt_d.zero_grad(set_to_none=True)
            l_d.backward()
            opt_d.step()
            out["d"] = l_d.item()
            if out["d"] < 1e-5:  # discriminator won outright: restart it (GANomaly)
                d.apply(init_weights)
        out["loss"] = loss.item()
        return out

    @torch.no_grad()
    def _finalize(self, X: torch.Tensor) -> None:
        for n in self.nets.values():
            n.eval()
        if "est" in self.nets:
            zs, gs = [], []
            for xb in batched(X, 1024):
                z, _ = self.nets["ge"](xb)
                zs.append(z)
                gs.append(self.nets["est"](z))
            z, g = torch.cat(zs).double(), torch.cat(gs).double()
            phi, mu, cov = mixture_params(z, g)
            self.phi, self.mu, self.cov = phi.float(), mu.float(), cov.float()

    # -- scoring ----------------------------------------------------------------
    def _channels_last(self) -> None:
        """For scoring, the convolution weights in channels-last layout: oneDNN (and cuDNN) run these
        small convolutions about 20 % faster; scores agree with the default layout to ~1e-5."""
        if not getattr(self, "_scoring_layout", False):
            with torch.inference_mode(False), torch.no_grad():  # parameters stay ordinary tensors
                for n in self.nets.values():
                    n.to(memory_format=torch.channels_last)
            self._scoring_layout = True

    @torch.no_grad()
    def score_components(self, X: torch.Tensor) -> dict[str, np.ndarray]:
        self._channels_last()
        out: dict[str, list[torch.Tensor]] = {c: [] for c in self.components_active}
        for xb in batched(X.to(self.device), 1024):
            z, _ = self.nets["ge"](xb)
            xr = self.nets["gd"](z)
            res = (xb - xr).abs()
            out["irec"].append(per_sample(res))
            out["irec_max"].append(frame_max(res))  # worst time frame (vectors: worst feature)
            if "e" in self.nets:
                zr, _ = self.nets["e"](xr)
                out["zrec"].append((z - zr).square().mean(1))
            if "est" in self.nets:
                out["energy"].append(energy(z.double(), self.phi.double(), self.mu.double(),
                                            self.cov.double()).float())
        return {k: torch.cat(v).cpu().numpy().astype(np.float64) for k, v in out.items()}

    @torch.no_grad()
    def reconstruct(self, X: torch.Tensor) -> torch.Tensor:
        X = X.to(self.device)
        return self.nets["gd"](self.nets["ge"](X)[0]).cpu()

    # -- persistence --------------------------------------------------------------
    def state(self) -> dict[str, torch.Tensor]:
        s: dict[str, torch.Tensor] = {"in_ch": torch.tensor(self.in_shape[0]),
                                      "in_shape": torch.tensor(self.in_shape)}
        for k, n in self.nets.items():
            if k == "d":
                continue  # the discriminator is not needed for scoring
            for name, t in n.state_dict().items():
                s[f"{k}.{name}"] = t.detach().cpu()
        if self.phi is not None:
            s.update(phi=self.phi.cpu(), mu=self.mu.cpu(), cov=self.cov.cpu())
        return s

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        p = self.params
        self.params = {**p, "use_adv": False}  # no discriminator at scoring time
        shape = tuple(state["in_shape"].tolist()) if "in_shape" in state else (int(state["in_ch"]), 32, 32)
        self._build(shape)
        self.params = p
        for k, n in self.nets.items():
            sub = {name[len(k) + 1:]: t for name, t in state.items() if name.startswith(k + ".")}
            n.load_state_dict(sub)
            n.eval()
        if "phi" in state:
            k, nz = self.params["k"], self.params["nz"]
            want = {"phi": (k,), "mu": (k, nz), "cov": (k, nz, nz)}
            for a, shape in want.items():
                if tuple(state[a].shape) != shape:
                    raise ValueError(f"mixture parameter {a!r} must be {shape}, got {tuple(state[a].shape)}")
            self.phi, self.mu, self.cov = (state[a].to(self.device) for a in ("phi", "mu", "cov"))
        elif "est" in self.nets:
            raise KeyError("mixture parameters phi, mu, cov")


class GANomaly(GMGAN):
    """GMGAN without the mixture (estimation) term: Akcay et al. 2018."""

    name = "ganomaly"
    components = ("irec", "zrec", "irec_max")
    defaults = {**GMGAN.defaults, "use_gmm": False}


class ConvAE(GMGAN):
    """Convolutional autoencoder: GMGAN's G_E -> G_D only, L1 reconstruction."""

    name = "cae"
    components = ("irec", "irec_max")
    defaults = {**GMGAN.defaults, "use_gmm": False, "use_adv": False, "use_enc2": False}
