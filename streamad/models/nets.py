"""DCGAN blocks for 32x32 patches (shared by GMGAN, GANomaly and the CAE baseline)."""
from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    """(B, C, 32, 32) -> latent (B, nz) and the 4x4 feature map before the last conv."""

    def __init__(self, in_ch: int, nz: int, ch: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_ch, ch, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),  # 16
            nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, inplace=True),  # 8
            nn.Conv2d(ch * 2, ch * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 4), nn.LeakyReLU(0.2, inplace=True),  # 4
        )
        self.last = nn.Conv2d(ch * 4, nz, 4, 1, 0, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.last(f).flatten(1), f


class Decoder(nn.Module):
    """latent (B, nz) -> (B, C, 32, 32); linear output (inputs are standardised, not in [-1,1])."""

    def __init__(self, out_ch: int, nz: int, ch: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.ConvTranspose2d(nz, ch * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ch * 4), nn.ReLU(True),  # 4
            nn.ConvTranspose2d(ch * 4, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.ReLU(True),  # 8
            nn.ConvTranspose2d(ch * 2, ch, 4, 2, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True),  # 16
            nn.ConvTranspose2d(ch, out_ch, 4, 2, 1, bias=True),  # 32
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    def __init__(self, in_ch: int, ch: int):
        super().__init__()
        self.enc = Encoder(in_ch, 1, ch)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logit, f = self.enc(x)
        return logit.squeeze(1), f


class Estimator(nn.Module):
    """Mixture-membership network: z -> softmax over K components (DAGMM)."""

    def __init__(self, nz: int, k: int, hidden: int = 16, dropout: float = 0.3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(nz, hidden), nn.Tanh(), nn.Dropout(dropout), nn.Linear(hidden, k))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(z), dim=1)


def init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
