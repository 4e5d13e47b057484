"""FGAF (fine-grained attention fusion), CrossNorm, SelfNorm and the weighted loss of Yang et al.

FG-Module: the input is split into scales, each a grouped convolution of its own kernel size (F_ci).
Per scale, GlobalPooling -> W1 -> GELU -> W2 -> Sigmoid gives A_i; a softmax across scales fuses them:
M_i = Softmax_i(A_i) * F_ci.
AF-Module: per-channel average and max pooling of M, concatenated, through a fully connected layer give
channel weights (F_transformed); M' = M * F_transformed. Spatial readjustment: average and max pooling
across channels, a convolution and a sigmoid give a map that re-weights M' (Output = M' * conv(Pool(M'))),
bridging local and global features. A residual keeps the backbone's features.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class FGModule(nn.Module):
    def __init__(self, channels: int, kernels: tuple[int, ...] = (3, 5, 7, 9),
                 groups: tuple[int, ...] = (4, 8, 16, 16), reduction: int = 16) -> None:
        super().__init__()
        if channels % len(kernels):
            raise ValueError(f"channels ({channels}) must divide into {len(kernels)} scales")
        self.split = channels // len(kernels)
        self.convs = nn.ModuleList()
        for k, g in zip(kernels, groups):
            while channels % g or self.split % g:
                g //= 2
            self.convs.append(nn.Conv2d(channels, self.split, k, padding=k // 2, groups=g, bias=False))
        hidden = max(self.split // reduction, 4)
        self.w1 = nn.Conv2d(self.split, hidden, 1)
        self.w2 = nn.Conv2d(hidden, self.split, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = torch.stack([conv(x) for conv in self.convs], dim=1)  # B, S, C/S, H, W
        b, s, c, h, w = feats.shape
        pooled = feats.mean(dim=(3, 4)).reshape(b * s, c, 1, 1)
        attn = torch.sigmoid(self.w2(F.gelu(self.w1(pooled)))).reshape(b, s, c, 1, 1)
        weights = torch.softmax(attn, dim=1)  # across scales
        return (feats * weights).reshape(b, s * c, h, w)


class AFModule(nn.Module):
    def __init__(self, channels: int, reduction: int = 4, spatial_kernel: int = 7) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(2 * channels, channels // reduction), nn.GELU(),
                                nn.Linear(channels // reduction, channels))
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2)

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        stats = torch.cat([m.mean(dim=(2, 3)), m.amax(dim=(2, 3))], dim=1)
        channel = torch.sigmoid(self.fc(stats))[:, :, None, None]
        m = m * channel
        pooled = torch.cat([m.mean(dim=1, keepdim=True), m.amax(dim=1, keepdim=True)], dim=1)
        return m * torch.sigmoid(self.spatial(pooled))


class FGAF(nn.Module):
    """FG-Module then AF-Module, with a residual connection and BatchNorm."""

    def __init__(self, channels: int, use_fg: bool = True, use_af: bool = True) -> None:
        super().__init__()
        self.fg = FGModule(channels) if use_fg else nn.Identity()
        self.af = AFModule(channels) if use_af else nn.Identity()
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.bn(self.af(self.fg(x))))


class CrossNorm(nn.Module):
    """Training-only style augmentation (eq. 13): swap channel mean/std between feature maps.

    With probability ``p`` per batch, each sample takes the channel statistics of another sample:
    x' = sigma_B * (x_A - mu_A) / sigma_A + mu_B. Identity at evaluation time.
    """

    def __init__(self, p: float = 0.5, eps: float = 1e-5) -> None:
        super().__init__()
        self.p = p
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.shape[0] < 2 or torch.rand(()) > self.p:
            return x
        mu = x.mean(dim=(2, 3), keepdim=True)
        sigma = (x.var(dim=(2, 3), keepdim=True) + self.eps).sqrt()
        perm = torch.randperm(x.shape[0], device=x.device)
        return sigma[perm] * (x - mu) / sigma + mu[perm]


class SelfNorm(nn.Module):
    """Train and test (eq. 14): attention functions Phi, Psi of each channel's (mu, sigma) re-scale them.

    x' = Psi(mu, sigma) * sigma * (x - mu) / sigma + Phi(mu, sigma) * mu, with Phi, Psi per-channel
    fully connected maps of the two statistics followed by a sigmoid.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.phi = nn.Conv1d(channels, channels, kernel_size=2, groups=channels)
        self.psi = nn.Conv1d(channels, channels, kernel_size=2, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.shape
        mu = x.mean(dim=(2, 3))
        sigma = (x.var(dim=(2, 3)) + self.eps).sqrt()
        stats = torch.stack([mu, sigma], dim=2)  # B, C, 2
        g_mu = torch.sigmoid(self.phi(stats)).reshape(b, c, 1, 1)
        g_sigma = torch.sigmoid(self.psi(stats)).reshape(b, c, 1, 1)
        mu, sigma = mu.reshape(b, c, 1, 1), sigma.reshape(b, c, 1, 1)
        return g_sigma * (x - mu) + g_mu * mu


class WLoss(nn.Module):
    """Cross-entropy per sample weighted by W_n = |L_i^2 - L_n^2| + 1 (L_i true, L_n predicted class,
    counted from 1), so that predictions far from the true depth class cost more."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, target, reduction="none")
        pred = logits.argmax(dim=1)
        li, ln = (target + 1).float(), (pred + 1).float()
        weight = (li**2 - ln**2).abs() + 1.0
        return (weight.detach() * ce).sum() / weight.detach().sum()
