"""Frame features shared by the frame-level detectors (``frame_fullgmm``, ``frame_knn``).

A log-mel patch (N, C, H, W) is W frames of C*H band values; feature vectors (N, D) are one frame
each. ``band_floor`` learns per-band lower bounds (quieter than the normal background is not an
event), ``local_contrast`` takes each frame relative to its window, ``top_mean`` pools the worst
frames of a window into its score, ``sample_rows`` draws the seeded random subset of training
frames that a fit is bounded to.
"""
from __future__ import annotations

import torch


def frame_features(X: torch.Tensor, delta: int = 0, lo: torch.Tensor | None = None) -> torch.Tensor:
    """(N, C, H, W) patches -> (N, W', F) frame features; (N, D) vectors -> (N, 1, D).
    ``lo``: per-band lower bounds (C*H,) applied before the differences."""
    if X.dim() == 2:
        return X[:, None, :] if lo is None else torch.maximum(X, lo)[:, None, :]
    n, c, h, w = X.shape
    f = X.reshape(n, c * h, w).transpose(1, 2)  # (N, W, C*H)
    if lo is not None:
        f = torch.maximum(f, lo)
    if delta > 0:
        f = torch.cat([f[:, delta:], f[:, delta:] - f[:, :-delta]], dim=2) if w > delta else f
    return f


def sample_rows(n: int, m: int, seed: int) -> torch.Tensor | None:
    """Indices of a seeded random ``m`` of ``n`` rows, or None when ``n <= m`` (keep them all)."""
    if n <= m:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:m]


def band_floor(X: torch.Tensor, q: float, seed: int = 0) -> torch.Tensor | None:
    """Per-band ``q`` quantile over the training frames of ``X`` (None when ``q`` is 0)."""
    if q <= 0:
        return None
    bands = frame_features(X)
    bands = bands.reshape(-1, bands.shape[2])
    pick = sample_rows(len(bands), 200000, seed)
    if pick is not None:
        bands = bands[pick]
    return torch.quantile(bands, q, dim=0)


def local_contrast(f: torch.Tensor, q: float = 0.5) -> torch.Tensor:
    """(N, W, F) frame features -> each frame minus its window's per-band ``q`` quantile (the
    median for 0.5; the lower order statistic at index round(q * (W - 1)) otherwise)."""
    if q == 0.5:
        return f - f.median(dim=1, keepdim=True).values
    k = int(round(q * (f.shape[1] - 1))) + 1
    return f - f.kthvalue(k, dim=1, keepdim=True).values


def top_mean(v: torch.Tensor, frac: float) -> torch.Tensor:
    """(N, W) -> (N,) mean of each row's largest round(frac * W) values (at least one)."""
    k = max(1, int(round(frac * v.shape[1])))
    return v.topk(k, dim=1).values.mean(1)
