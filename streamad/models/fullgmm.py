"""Full-covariance Gaussian mixture fitted by EM, with covariance shrinkage.

A diagonal mixture on log-mel frames treats every band as independent: a normal, broadband
change of loudness moves all bands together and adds up to a large NLL, while a narrow-band
event moves a few bands and is diluted by the noise of all the others. A full covariance
learns that bands move together (loudness is one direction of large, normal variance) so a
change of spectral *shape* stands out. With a few seconds of training audio a full covariance
is poorly determined, so each one is shrunk toward its diagonal::

    Sigma_k = (1 - shrink) S_k + shrink diag(S_k) + reg I

Scoring uses the inverse Cholesky factor of each Sigma_k (whitening matrix), stored as a flat
dict of tensors.
"""
from __future__ import annotations

import math

import torch


def kmeanspp(x: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    centers = [x[torch.randint(n, (1,), generator=g)].squeeze(0)]
    d2 = torch.full((n,), math.inf, dtype=x.dtype)
    for _ in range(1, k):
        d2 = torch.minimum(d2, (x - centers[-1]).square().sum(1))
        probs = d2 / d2.sum() if d2.sum() > 0 else torch.full((n,), 1.0 / n, dtype=x.dtype)
        centers.append(x[torch.multinomial(probs.float(), 1, generator=g)].squeeze(0))
    return torch.stack(centers)


class FullGMM:
    def __init__(self, k: int = 4, iters: int = 60, shrink: float = 0.1, reg: float = 1e-2, seed: int = 0,
                 tol: float = 1e-3):
        self.k, self.iters, self.shrink, self.reg, self.seed, self.tol = k, iters, shrink, reg, seed, tol

    def fit(self, x: torch.Tensor) -> "FullGMM":
        """EM: frame products in float32 (the cost), covariances and factors in float64."""
        x = x.float()
        n, d = x.shape
        k = min(self.k, n)
        g = torch.Generator().manual_seed(self.seed)
        mu = kmeanspp(x, k, g)
        resp = torch.zeros(n, k)
        resp[torch.arange(n), torch.cdist(x, mu).argmin(1)] = 1.0
        prev = -math.inf
        for _ in range(self.iters):
            self._mstep(x, resp)
            logp = self._joint(x)
            ll = torch.logsumexp(logp, 1)
            resp = torch.exp(logp - ll[:, None])
            cur = float(ll.mean())
            if abs(cur - prev) < self.tol:
                break
            prev = cur
        self._mstep(x, resp)
        self.load_state(self.state())  # score in float32, exactly as a loaded model does
        return self

    def _mstep(self, x: torch.Tensor, resp: torch.Tensor) -> None:
        n, d = x.shape
        nk = resp.double().sum(0) + 1e-10
        self.logw = torch.log(nk / n)
        self.mu = (resp.T.double() @ x.double()) / nk[:, None]
        eye = torch.eye(d, dtype=torch.float64)
        whiten, logdet = [], []
        for j in range(len(nk)):
            xc = x - self.mu[j].float()
            cov = ((resp[:, j, None] * xc).T @ xc).double() / nk[j]
            cov = (1 - self.shrink) * cov + self.shrink * torch.diag(torch.diagonal(cov)) + self.reg * eye
            L = torch.linalg.cholesky(0.5 * (cov + cov.T))
            whiten.append(torch.linalg.solve_triangular(L, eye, upper=False))
            logdet.append(2.0 * torch.log(torch.diagonal(L)).sum())
        self.whiten = torch.stack(whiten)  # (K, D, D): L^-1
        self.logdet = torch.stack(logdet)

    def _joint(self, x: torch.Tensor) -> torch.Tensor:
        """log w_k + log N(x; mu_k, Sigma_k), (N, K), in float32."""
        x = x.float()
        d = x.shape[1]
        out = []
        for j in range(self.mu.shape[0]):
            y = (x - self.mu[j].float()) @ self.whiten[j].float().T
            const = float(self.logw[j]) - 0.5 * (float(self.logdet[j]) + d * math.log(2 * math.pi))
            out.append(const - 0.5 * y.square().sum(1))
        return torch.stack(out, 1)

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.logsumexp(self._joint(x), 1)

    def state(self) -> dict[str, torch.Tensor]:
        return {"logw": self.logw.float(), "mu": self.mu.float(), "whiten": self.whiten.float(),
                "logdet": self.logdet.float()}

    def load_state(self, s: dict[str, torch.Tensor]) -> None:
        self.logw, self.mu, self.whiten, self.logdet = (s[k].float() for k in ("logw", "mu", "whiten", "logdet"))
