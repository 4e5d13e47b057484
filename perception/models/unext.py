"""UNeXt (Valanarasu & Patel, MICCAI 2022): a light convolutional + tokenised-MLP U-Net.

Faithful to the published network: three conv stages (16, 32, 128 channels; conv-BN-pool-ReLU), two
tokenised shifted-MLP stages (160, 256; overlapping patch embedding by a stride-2 3x3 conv; the MLP
shifts channel groups along height, then along width, with a depthwise conv and GELU between), and a
mirrored decoder with additive skips and bilinear upsampling. 1.47 M parameters with 3 input channels.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from perception.models.registry import register_model


class DWConv(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(b, c, h, w))
        return x.flatten(2).transpose(1, 2)


class ShiftMLP(nn.Module):
    """Tokenised MLP: shift along H -> fc1 -> depthwise conv -> GELU -> shift along W -> fc2."""

    def __init__(self, dim: int, shift_size: int = 5) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, dim)
        self.dwconv = DWConv(dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(dim, dim)
        self.shift_size = shift_size
        self.pad = shift_size // 2

    def _shift(self, x: torch.Tensor, h: int, w: int, axis: int) -> torch.Tensor:
        """Channel group ``i`` moves by ``i - pad`` pixels along ``axis`` (2: height, 3: width), zeros
        entering. The reference pads both axes, rolls each group and crops; within the crop a roll never
        wraps, so padding the one axis and slicing each group at its offset gives the same tensor with a
        fraction of the operations (the exported graph lost a tenth of its run time)."""
        b, n, c = x.shape
        xn = x.transpose(1, 2).reshape(b, c, h, w)
        p = self.pad
        xn = F.pad(xn, (0, 0, p, p) if axis == 2 else (p, p, 0, 0))
        size = h if axis == 2 else w
        groups = []
        for chunk, s in zip(torch.chunk(xn, self.shift_size, 1), range(-p, p + 1)):
            groups.append(chunk.narrow(axis, p - s, size))
        return torch.cat(groups, 1).reshape(b, c, h * w).transpose(1, 2)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = self.fc1(self._shift(x, h, w, axis=2))
        x = self.act(self.dwconv(x, h, w))
        return self.fc2(self._shift(x, h, w, axis=3))


class ShiftedBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = ShiftMLP(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return x + self.mlp(self.norm(x), h, w)


class OverlapPatchEmbed(nn.Module):
    def __init__(self, in_ch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_ch, dim, 3, 2, 1)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        _, _, h, w = x.shape
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class UNeXt(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 4, dims: tuple[int, ...] = (16, 32, 128, 160, 256)) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = dims
        self.encoder1, self.ebn1 = nn.Conv2d(in_channels, c1, 3, 1, 1), nn.BatchNorm2d(c1)
        self.encoder2, self.ebn2 = nn.Conv2d(c1, c2, 3, 1, 1), nn.BatchNorm2d(c2)
        self.encoder3, self.ebn3 = nn.Conv2d(c2, c3, 3, 1, 1), nn.BatchNorm2d(c3)
        self.patch_embed3 = OverlapPatchEmbed(c3, c4)
        self.block1, self.norm3 = ShiftedBlock(c4), nn.LayerNorm(c4)
        self.patch_embed4 = OverlapPatchEmbed(c4, c5)
        self.block2, self.norm4 = ShiftedBlock(c5), nn.LayerNorm(c5)
        self.decoder1, self.dbn1 = nn.Conv2d(c5, c4, 3, 1, 1), nn.BatchNorm2d(c4)
        self.dblock1, self.dnorm3 = ShiftedBlock(c4), nn.LayerNorm(c4)
        self.decoder2, self.dbn2 = nn.Conv2d(c4, c3, 3, 1, 1), nn.BatchNorm2d(c3)
        self.dblock2, self.dnorm4 = ShiftedBlock(c3), nn.LayerNorm(c3)
        self.decoder3, self.dbn3 = nn.Conv2d(c3, c2, 3, 1, 1), nn.BatchNorm2d(c2)
        self.decoder4, self.dbn4 = nn.Conv2d(c2, c1, 3, 1, 1), nn.BatchNorm2d(c1)
        self.decoder5 = nn.Conv2d(c1, c1, 3, 1, 1)
        self.final = nn.Conv2d(c1, num_classes, 1)

    @staticmethod
    def _tokens_to_map(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return x.reshape(x.shape[0], h, w, -1).permute(0, 3, 1, 2).contiguous()

    @staticmethod
    def _map_to_tokens(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        _, _, h, w = x.shape
        return x.flatten(2).transpose(1, 2), h, w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t1 = out = F.relu(F.max_pool2d(self.ebn1(self.encoder1(x)), 2, 2))
        t2 = out = F.relu(F.max_pool2d(self.ebn2(self.encoder2(out)), 2, 2))
        t3 = out = F.relu(F.max_pool2d(self.ebn3(self.encoder3(out)), 2, 2))
        tok, h, w = self.patch_embed3(out)
        t4 = out = self._tokens_to_map(self.norm3(self.block1(tok, h, w)), h, w)
        tok, h, w = self.patch_embed4(out)
        out = self._tokens_to_map(self.norm4(self.block2(tok, h, w)), h, w)
        up = lambda t: F.interpolate(t, scale_factor=2.0, mode="bilinear", align_corners=False)  # noqa: E731
        out = F.relu(up(self.dbn1(self.decoder1(out)))) + t4
        tok, h, w = self._map_to_tokens(out)
        out = self._tokens_to_map(self.dnorm3(self.dblock1(tok, h, w)), h, w)
        out = F.relu(up(self.dbn2(self.decoder2(out)))) + t3
        tok, h, w = self._map_to_tokens(out)
        out = self._tokens_to_map(self.dnorm4(self.dblock2(tok, h, w)), h, w)
        out = F.relu(up(self.dbn3(self.decoder3(out)))) + t2
        out = F.relu(up(self.dbn4(self.decoder4(out)))) + t1
        out = F.relu(up(self.decoder5(out)))
        return self.final(out)


@register_model("unext")
def unext(in_channels: int = 1, num_classes: int = 4) -> UNeXt:
    return UNeXt(in_channels=in_channels, num_classes=num_classes)


@register_model("unext_s")
def unext_s(in_channels: int = 1, num_classes: int = 4) -> UNeXt:
    """UNeXt-S of the reference implementation: every stage at half or a quarter of the width (8, 16, 32,
    64, 128 channels), 0.25 M parameters."""
    return UNeXt(in_channels=in_channels, num_classes=num_classes, dims=(8, 16, 32, 64, 128))
