"""Torch datasets. Every image is normalised per image (zero mean, unit std) so that illumination and
exposure differences between rigs do not shift the input distribution."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from drivers.errors import ConfigError
from perception.data.otmr import OTMRSample
from sim.datasets import DEPTHS_UM


def standardise(img: np.ndarray) -> np.ndarray:
    f = img.astype(np.float32)
    return (f - f.mean()) / (f.std() + 1e-3)


def read_grey(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ConfigError(f"{path}: cannot read image")
    return img


def read_manifest(root: Path) -> list[dict[str, str]]:
    path = Path(root) / "manifest.csv"
    if not path.is_file():
        raise ConfigError(f"{root}: no manifest.csv (generate with `micromanip sim dataset ...`)")
    with path.open() as fh:
        return list(csv.DictReader(fh))


def photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gain, offset, gamma and noise jitter on a uint8 image, as between sessions and rigs."""
    f = img.astype(np.float32) / 255.0
    f = np.clip(f, 1e-4, 1.0) ** rng.uniform(0.85, 1.15)
    f = f * rng.uniform(0.8, 1.2) + rng.uniform(-0.08, 0.08)
    f = f + rng.normal(0, rng.uniform(0.0, 0.02), f.shape)
    return np.clip(f * 255.0, 0, 255).astype(np.uint8)


class DepthCrops(Dataset):
    """Sperm head crops labelled by depth class (index into DEPTHS_UM)."""

    def __init__(self, root: Path, split: str, augment: bool, seed: int = 0, limit: int | None = None) -> None:
        self.root = Path(root)
        rows = [r for r in read_manifest(root) if split == "all" or r["split"] == split]
        self.items = [(self.root / r["file"], DEPTHS_UM.index(round(float(r["depth_um"]), 1))) for r in rows][:limit]
        self.augment = augment
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label = self.items[i]
        img = read_grey(path)
        if self.augment:
            img = np.rot90(img, int(self.rng.integers(4)))
            if self.rng.random() < 0.5:
                img = img[:, ::-1]
            dx, dy = self.rng.integers(-3, 4, 2)
            img = np.roll(img, (int(dy), int(dx)), axis=(0, 1))
            img = photometric(np.ascontiguousarray(img), self.rng)
        return torch.from_numpy(standardise(np.ascontiguousarray(img)))[None], label


class SegTiles(Dataset):
    def __init__(self, root: Path, split: str, augment: bool, seed: int = 0, limit: int | None = None,
                 scale: float = 1.0) -> None:
        self.scale = scale
        self.root = Path(root)
        self.items = [(self.root / r["image"], self.root / r["mask"]) for r in read_manifest(root)
                      if split == "all" or r["split"] == split][:limit]
        self.augment = augment
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        img, mask = read_grey(self.items[i][0]), read_grey(self.items[i][1])
        if self.scale != 1.0:
            size = (int(round(img.shape[1] * self.scale)), int(round(img.shape[0] * self.scale)))
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
        if self.augment:
            k = int(self.rng.integers(4))
            img, mask = np.rot90(img, k), np.rot90(mask, k)
            if self.rng.random() < 0.5:
                img, mask = img[:, ::-1], mask[:, ::-1]
            img = photometric(np.ascontiguousarray(img), self.rng)
        return (torch.from_numpy(standardise(np.ascontiguousarray(img)))[None],
                torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64)))


class OTMRImages(Dataset):
    """OTMR images resized to ``image_px``; targets: pitch/roll/pose indices and standardised depth."""

    def __init__(self, samples: list[OTMRSample], image_px: int, pitches: list[int], rolls: list[int],
                 poses: list[tuple[int, int]], depth_mean: float, depth_std: float, augment: bool,
                 seed: int = 0) -> None:
        self.samples = samples
        self.image_px = image_px
        self.pitches, self.rolls, self.poses = pitches, rolls, poses
        self.depth_mean, self.depth_std = depth_mean, depth_std
        self.augment = augment
        self.rng = np.random.default_rng(seed)
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def _image(self, i: int) -> np.ndarray:
        if i not in self._cache:
            img = read_grey(self.samples[i].path)
            self._cache[i] = cv2.resize(img, (self.image_px, self.image_px), interpolation=cv2.INTER_AREA)
        return self._cache[i]

    def __getitem__(self, i: int):
        s = self.samples[i]
        img = self._image(i)
        if self.augment:
            # No flips or rotations: they would change the pose. Shifts and photometric jitter only.
            shift = max(1, self.image_px // 16)
            dx, dy = self.rng.integers(-shift, shift + 1, 2)
            m = np.float32([[1, 0, dx], [0, 1, dy]])
            img = cv2.warpAffine(img, m, img.shape[::-1], borderMode=cv2.BORDER_REFLECT)
            img = photometric(img, self.rng)
        target = {
            "pitch": self.pitches.index(s.pitch_deg),
            "roll": self.rolls.index(s.roll_deg),
            "pose": self.poses.index((s.pitch_deg, s.roll_deg)),
            "depth": np.float32((s.depth - self.depth_mean) / self.depth_std),
        }
        return torch.from_numpy(standardise(img))[None], target
