"""Gaussian-mixture pieces shared by GMGAN (DAGMM-style estimation) and baselines.

* ``mixture_params(z, gamma)``: phi, mu, Sigma from soft memberships.
* ``energy(z, phi, mu, cov)``: E(z) = -log sum_k phi_k N(z; mu_k, Sigma_k), via Cholesky.
* ``cov_penalty(cov)``: sum_k sum_j 1 / Sigma_kjj.
* ``DiagGMM``: EM for a diagonal mixture (the log-mel frame baseline).
"""
from __future__ import annotations

import math

import torch

JITTER = 1e-3


def mixture_params(z: torch.Tensor, gamma: torch.Tensor, jitter: float = JITTER):
    """z (N, D), gamma (N, K) -> phi (K,), mu (K, D), cov (K, D, D) (jittered, symmetric)."""
    nk = gamma.sum(0) + 1e-12  # (K,)
    phi = nk / gamma.shape[0]
    mu = (gamma.T @ z) / nk[:, None]
    diff = z[None, :, :] - mu[:, None, :]  # (K, N, D)
    cov = torch.einsum("kn,kni,knj->kij", gamma.T, diff, diff) / nk[:, None, None]
    cov = 0.5 * (cov + cov.transpose(1, 2))
    eye = torch.eye(z.shape[1], device=z.device, dtype=z.dtype)
    return phi, mu, cov + jitter * eye


def _safe_cholesky(cov: torch.Tensor) -> torch.Tensor:
    """Cholesky with escalating jitter for covariances that lost definiteness."""
    eye = torch.eye(cov.shape[-1], device=cov.device, dtype=cov.dtype)
    extra = 0.0
    for _ in range(8):
        L, info = torch.linalg.cholesky_ex(cov + extra * eye)
        if not bool((info > 0).any()):
            return L
        extra = 1e-4 if extra == 0 else extra * 10
    raise torch.linalg.LinAlgError("covariance is not positive definite even with jitter")


def energy(z: torch.Tensor, phi: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """Sample energy (N,) = -log sum_k phi_k N(z; mu_k, cov_k)."""
    L = _safe_cholesky(cov)  # (K, D, D)
    diff = (z[None, :, :] - mu[:, None, :]).transpose(1, 2)  # (K, D, N)
    sol = torch.linalg.solve_triangular(L, diff, upper=False)  # (K, D, N)
    maha = sol.square().sum(1)  # (K, N)
    logdet = 2.0 * torch.log(torch.diagonal(L, dim1=1, dim2=2)).sum(1)  # (K,)
    d = z.shape[1]
    logn = -0.5 * (maha + logdet[:, None] + d * math.log(2 * math.pi))
    return -torch.logsumexp(torch.log(phi.clamp_min(1e-12))[:, None] + logn, dim=0)


def cov_penalty(cov: torch.Tensor) -> torch.Tensor:
    return (1.0 / torch.diagonal(cov, dim1=1, dim2=2)).sum()


class DiagGMM:
    """Diagonal-covariance Gaussian mixture fitted by EM (k-means++-style init)."""

    def __init__(self, k: int = 8, iters: int = 100, reg: float = 1e-3, seed: int = 0):
        self.k, self.iters, self.reg, self.seed = k, iters, reg, seed

    def fit(self, x: torch.Tensor) -> "DiagGMM":
        x = x.double()
        n, d = x.shape
        k = min(self.k, n)
        g = torch.Generator().manual_seed(self.seed)
        centers = [x[torch.randint(n, (1,), generator=g)].squeeze(0)]
        for _ in range(1, k):
            d2 = torch.cdist(x, torch.stack(centers)).min(1).values.square()
            probs = d2 / d2.sum() if d2.sum() > 0 else torch.full((n,), 1.0 / n, dtype=x.dtype)
            centers.append(x[torch.multinomial(probs.float(), 1, generator=g)].squeeze(0))
        self.mu = torch.stack(centers)
        self.var = x.var(0, unbiased=False).expand(k, d).clone() + self.reg
        self.logw = torch.full((k,), -math.log(k), dtype=x.dtype)
        prev = -math.inf
        for _ in range(self.iters):
            logp = self._joint(x)
            ll = torch.logsumexp(logp, 1)
            resp = torch.exp(logp - ll[:, None])
            nk = resp.sum(0) + 1e-10
            self.logw = torch.log(nk / n)
            self.mu = (resp.T @ x) / nk[:, None]
            self.var = (resp.T @ x.square()) / nk[:, None] - self.mu.square() + self.reg
            self.var = self.var.clamp_min(self.reg)
            cur = float(ll.mean())
            if abs(cur - prev) < 1e-6:
                break
            prev = cur
        return self

    def _joint(self, x: torch.Tensor) -> torch.Tensor:
        """log w_k + log N(x; mu_k, diag var_k), (N, K): the squared distance expanded into
        matrix products (x^2 / var - 2 x mu / var + mu^2 / var), not an (N, K, D) tensor."""
        prec = 1.0 / self.var  # (K, D)
        maha = x.square() @ prec.T - 2.0 * (x @ (self.mu * prec).T) + (self.mu.square() * prec).sum(1)[None]
        return self.logw[None] - 0.5 * (maha + torch.log(2 * math.pi * self.var).sum(1)[None])

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.logsumexp(self._joint(x.double()), 1)

    def state(self) -> dict[str, torch.Tensor]:
        return {"logw": self.logw.float(), "mu": self.mu.float(), "var": self.var.float()}

    def load_state(self, s: dict[str, torch.Tensor]) -> None:
        logw, mu, var = s["logw"].double(), s["mu"].double(), s["var"].double()
        if logw.ndim != 1 or mu.ndim != 2 or mu.shape != var.shape or mu.shape[0] != logw.shape[0]:
            raise ValueError(f"mixture state: logw {tuple(logw.shape)}, mu {tuple(mu.shape)}, var "
                             f"{tuple(var.shape)} do not fit together")
        if not bool((var > 0).all()):
            raise ValueError("mixture state: variances must be > 0")
        self.logw, self.mu, self.var = logw, mu, var
