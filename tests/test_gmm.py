import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from streamad.models.gmm import DiagGMM, cov_penalty, energy, mixture_params


def _direct_energy(z, phi, mu, cov):
    dens = sum(phi[k] * multivariate_normal(mu[k], cov[k]).pdf(z) for k in range(len(phi)))
    return -np.log(dens)


def test_energy_matches_numpy():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 3))
    gamma = rng.dirichlet(np.ones(2), size=50)
    phi, mu, cov = mixture_params(torch.tensor(z), torch.tensor(gamma))
    # mixture parameters against a direct weighted computation
    nk = gamma.sum(0)
    mu_np = (gamma.T @ z) / nk[:, None]
    np.testing.assert_allclose(mu.numpy(), mu_np, rtol=1e-10)
    np.testing.assert_allclose(phi.numpy(), nk / 50, rtol=1e-10)
    c0 = ((z - mu_np[0]).T * gamma[:, 0]) @ (z - mu_np[0]) / nk[0] + 1e-3 * np.eye(3)
    np.testing.assert_allclose(cov[0].numpy(), c0, rtol=1e-9)
    e = energy(torch.tensor(z), phi, mu, cov).numpy()
    np.testing.assert_allclose(e, _direct_energy(z, phi.numpy(), mu.numpy(), cov.numpy()), rtol=1e-8)
    assert float(cov_penalty(cov)) == pytest.approx(float((1 / np.diagonal(cov.numpy(), axis1=1, axis2=2)).sum()))


def test_degenerate_covariance_stays_finite():
    # all codes identical in one direction: the raw covariance is singular
    z = torch.zeros(40, 4, dtype=torch.float64)
    z[:, 0] = torch.linspace(-1, 1, 40)
    gamma = torch.full((40, 3), 1 / 3, dtype=torch.float64)
    phi, mu, cov = mixture_params(z, gamma, jitter=0.0)
    assert torch.linalg.matrix_rank(cov[0]) == 1
    e = energy(z, phi, mu, cov)  # escalating jitter inside
    assert torch.isfinite(e).all()


def test_energy_ranks_outliers_higher():
    rng = np.random.default_rng(1)
    z = torch.tensor(rng.normal(size=(500, 2)))
    gamma = torch.ones(500, 1, dtype=torch.float64)
    phi, mu, cov = mixture_params(z, gamma)
    e = energy(torch.tensor([[0.0, 0.0], [5.0, 5.0]], dtype=torch.float64), phi, mu, cov)
    assert e[1] > e[0] + 10


def test_diag_gmm_likelihood():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(-3, 1, (300, 2)), rng.normal(3, 0.5, (300, 2))])
    g = DiagGMM(k=2, seed=0).fit(torch.tensor(x))
    nll = g.nll(torch.tensor([[3.0, 3.0], [0.0, 0.0]]))
    assert nll[1] > nll[0]
    # the two components are found: one at (3, 3) with variance 0.25, one at (-3, -3) with variance 1
    k = int(torch.argmin((g.mu - 3).abs().sum(1)))
    np.testing.assert_allclose(g.mu[k].numpy(), [3, 3], atol=0.15)
    np.testing.assert_allclose(g.var[k].numpy(), [0.25, 0.25], rtol=0.25)
    np.testing.assert_allclose(g.mu[1 - k].numpy(), [-3, -3], atol=0.25)
    np.testing.assert_allclose(float(g.logw[k].exp()), 0.5, atol=0.02)
    # log-likelihood of a point near a fitted component equals the direct formula
    pt = np.array([3.0, 3.0])
    dens = sum(math.exp(float(g.logw[j])) * multivariate_normal(g.mu[j].numpy(), np.diag(g.var[j].numpy())).pdf(pt)
               for j in range(2))
    assert float(g.nll(torch.tensor(pt[None]))[0]) == pytest.approx(-math.log(dens), rel=1e-6)
