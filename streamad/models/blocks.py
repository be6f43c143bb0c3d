"""Network building blocks for both input layouts, chosen from the input shape.

``shape`` is one sample's shape: ``(C, 32, 32)`` for patches (the DCGAN / LeNet conv
stacks of :mod:`streamad.models.nets`) or ``(D,)`` for feature vectors (MLPs). Every
builder returns modules with the same call signature for both layouts, so a detector
is written once; its state stores the shape and rebuilds the same modules at load.

* ``encoder`` / ``decoder`` / ``discriminator``: DCGAN stack or MLP; encoders and
  discriminators return ``(output, features)`` (features: last hidden layer, for
  feature matching).
* ``lenet_encoder`` / ``lenet_decoder``: the bias-free LeNet-type nets of Deep SVDD (Ruff
  et al. 2018), or bias-free MLPs for vectors (Deep SAD's tabular nets).
* ``JointDiscriminator`` D(x, z) (BiGAN / EGBAD / ALAD) and ``PairDiscriminator`` D(a, b)
  for two inputs of the same layout (ALAD's D_xx and D_zz).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from streamad.models.nets import Decoder, Discriminator, Encoder, init_weights

Shape = tuple[int, ...]

_ACTS = {"lrelu": lambda: nn.LeakyReLU(0.2), "relu": nn.ReLU, "tanh": nn.Tanh, "softplus": nn.Softplus}


def is_patch(shape: Shape) -> bool:
    return len(shape) == 3


def mlp(sizes: Sequence[int], act: str = "lrelu", bias: bool = True, bn: bool = False,
        dropout: float = 0.0, last_act: bool = False) -> nn.Sequential:
    """Linear layers ``sizes[0] -> ... -> sizes[-1]`` with activations between (and after the
    last one when ``last_act``)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2 or last_act:
            if bn:
                layers.append(nn.BatchNorm1d(b, affine=bias, eps=1e-4))
            layers.append(_ACTS[act]())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """(B, D) -> (z (B, nz), features (B, hidden[-1])): the vector form of ``nets.Encoder``."""

    def __init__(self, d: int, nz: int, hidden: Sequence[int], act: str = "lrelu", bias: bool = True,
                 bn: bool = False, dropout: float = 0.0):
        super().__init__()
        hidden = list(hidden) or [d]
        self.features = mlp([d, *hidden], act, bias, bn, dropout, last_act=True)
        self.last = nn.Linear(hidden[-1], nz, bias=bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.last(f), f


class MLPDecoder(nn.Module):
    """(B, nz) -> (B, D), hidden layers in reverse order of the encoder's; linear output."""

    def __init__(self, d: int, nz: int, hidden: Sequence[int], act: str = "relu", bias: bool = True,
                 bn: bool = False):
        super().__init__()
        self.net = mlp([nz, *reversed(list(hidden)), d], act, bias, bn)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    def __init__(self, d: int, hidden: Sequence[int], dropout: float = 0.2):
        super().__init__()
        self.enc = MLPEncoder(d, 1, hidden, "lrelu", dropout=dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logit, f = self.enc(x)
        return logit.squeeze(1), f


def default_hidden(ch: int) -> tuple[int, int]:
    return (4 * ch, 2 * ch)


def encoder(shape: Shape, nz: int, ch: int = 32, hidden: Sequence[int] | None = None,
            act: str = "lrelu") -> nn.Module:
    if is_patch(shape):
        return Encoder(shape[0], nz, ch)
    return MLPEncoder(shape[0], nz, hidden or default_hidden(ch), act)


def decoder(shape: Shape, nz: int, ch: int = 32, hidden: Sequence[int] | None = None,
            act: str = "relu") -> nn.Module:
    if is_patch(shape):
        return Decoder(shape[0], nz, ch)
    return MLPDecoder(shape[0], nz, hidden or default_hidden(ch), act)


def discriminator(shape: Shape, ch: int = 32, hidden: Sequence[int] | None = None,
                  dropout: float = 0.2) -> nn.Module:
    if is_patch(shape):
        return Discriminator(shape[0], ch)
    return MLPDiscriminator(shape[0], hidden or default_hidden(ch), dropout)


# -- LeNet-type nets (Deep SVDD / Deep SAD / HSC / DCAE) -------------------------------
class LeNetEncoder(nn.Module):
    """(B, C, 32, 32) -> (B, rep): conv5-BN-LReLU-pool twice, then a linear layer; no bias
    terms and no affine batch-norm parameters (a bias would let Deep SVDD collapse)."""

    def __init__(self, in_ch: int, rep: int, ch: int = 8):
        super().__init__()
        c2 = max(1, ch // 2)
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, ch, 5, padding=2, bias=False), nn.BatchNorm2d(ch, eps=1e-4, affine=False),
            nn.LeakyReLU(0.01), nn.MaxPool2d(2),  # 16
            nn.Conv2d(ch, c2, 5, padding=2, bias=False), nn.BatchNorm2d(c2, eps=1e-4, affine=False),
            nn.LeakyReLU(0.01), nn.MaxPool2d(2),  # 8
            nn.Flatten(), nn.Linear(c2 * 64, rep, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class LeNetDecoder(nn.Module):
    """(B, rep) -> (B, C, 32, 32), the mirror of ``LeNetEncoder`` (rep must be a multiple of 16);
    linear output (inputs may be standardised, not in [0, 1])."""

    def __init__(self, out_ch: int, rep: int, ch: int = 8):
        super().__init__()
        c2, r = max(1, ch // 2), rep // 16
        up = lambda: nn.Upsample(scale_factor=2)  # noqa: E731
        self.r = r
        self.net = nn.Sequential(
            nn.LeakyReLU(0.01), up(),  # 8
            nn.Conv2d(r, c2, 5, padding=2, bias=False), nn.BatchNorm2d(c2, eps=1e-4, affine=False),
            nn.LeakyReLU(0.01), up(),  # 16
            nn.Conv2d(c2, ch, 5, padding=2, bias=False), nn.BatchNorm2d(ch, eps=1e-4, affine=False),
            nn.LeakyReLU(0.01), up(),  # 32
            nn.Conv2d(ch, out_ch, 5, padding=2, bias=False))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(len(z), self.r, 4, 4))


def lenet_encoder(shape: Shape, rep: int, ch: int = 8, hidden: Sequence[int] = (128, 64),
                  bias: bool = False) -> nn.Module:
    if is_patch(shape):
        return LeNetEncoder(shape[0], rep, ch)
    return nn.Sequential(mlp([shape[0], *hidden, rep], "lrelu", bias=bias, bn=True))


def lenet_decoder(shape: Shape, rep: int, ch: int = 8, hidden: Sequence[int] = (128, 64)) -> nn.Module:
    if is_patch(shape):
        if rep % 16:
            raise ValueError(f"rep_dim must be a multiple of 16 for patch inputs, got {rep}")
        return LeNetDecoder(shape[0], rep, ch)
    return nn.Sequential(mlp([rep, *reversed(list(hidden)), shape[0]], "lrelu", bias=False, bn=True))


# -- two-input discriminators (BiGAN / EGBAD / ALAD) --------------------------------
class JointDiscriminator(nn.Module):
    """D(x, z) -> (logit, features): an x branch (conv stack or linear + BN), a z branch
    (linear + dropout 0.5) and a joint layer (dropout 0.5), as in ALAD's D_xz."""

    def __init__(self, shape: Shape, nz: int, ch: int = 32, width: int = 128):
        super().__init__()
        if is_patch(shape):
            self.x = nn.Sequential(Encoder(shape[0], 1, ch).features, nn.Flatten())
            xw = ch * 4 * 16
        else:
            self.x = nn.Sequential(nn.Linear(shape[0], width), nn.BatchNorm1d(width), nn.LeakyReLU(0.2))
            xw = width
        self.z = nn.Sequential(nn.Linear(nz, width), nn.LeakyReLU(0.2), nn.Dropout(0.5))
        self.joint = nn.Sequential(nn.Linear(xw + width, width), nn.LeakyReLU(0.2), nn.Dropout(0.5))
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.joint(torch.cat([self.x(x), self.z(z)], 1))
        return self.out(f).squeeze(1), f


class PairDiscriminator(nn.Module):
    """D(a, b) for two inputs of one layout, concatenated along channels / features."""

    def __init__(self, shape: Shape, ch: int = 32, hidden: Sequence[int] = (128,), dropout: float = 0.2):
        super().__init__()
        pair = (2 * shape[0],) + tuple(shape[1:])
        self.d = discriminator(pair, ch, hidden, dropout)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.d(torch.cat([a, b], 1))


def with_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) on every linear / conv layer of ``module``."""
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Linear, nn.Conv2d)):
            setattr(module, name, spectral_norm(child))
        else:
            with_spectral_norm(child)
    return module


def init_nets(m: nn.Module) -> None:
    """DCGAN init for conv / batch-norm layers, Xavier for linear ones."""
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and not m.affine:
        return
    init_weights(m)
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def per_sample(t: torch.Tensor) -> torch.Tensor:
    """Mean over every axis but the first."""
    return t.flatten(1).mean(1)


def frame_max(res: torch.Tensor) -> torch.Tensor:
    """Largest time-frame residual of patches (mean over channels and rows, max over
    columns); for vectors the largest single-feature residual."""
    if res.dim() == 4:
        return res.mean(dim=(1, 2)).max(dim=1).values
    return res.flatten(1).max(dim=1).values
