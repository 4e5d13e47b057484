"""Torch datasets. Depth and OTMR crops are normalised per image (zero mean, unit std); segmentation
inputs are flat-fielded (``perception.runtime.seg_input``), as the runtime does, so that neither
illumination nor exposure shifts the input distribution."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from drivers.errors import ConfigError
from perception.classes import DEPTHS_UM, SEG_IGNORE
from perception.data.otmr import OTMRSample
from perception.runtime.seg_input import flat_field, resample


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

    def __init__(self, root: Path, split: str, augment: bool, seed: int = 0, limit: int | None = None,
                 scale_jitter: tuple[float, float] = (1.0, 1.0)) -> None:
        self.root = Path(root)
        rows = [r for r in read_manifest(root) if split == "all" or r["split"] == split]
        self.items = [(self.root / r["file"], DEPTHS_UM.index(round(float(r["depth_um"]), 1))) for r in rows][:limit]
        self.augment = augment
        self.scale_jitter = scale_jitter
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, label = self.items[i]
        img = read_grey(path)
        if self.augment:
            lo, hi = self.scale_jitter
            if hi > lo:  # log-uniform magnification about the crop's centre; the border is reflected
                f = float(np.exp(self.rng.uniform(np.log(lo), np.log(hi))))
                h, w = img.shape
                m = cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), 0.0, f)
                img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            img = np.rot90(img, int(self.rng.integers(4)))
            if self.rng.random() < 0.5:
                img = img[:, ::-1]
            dx, dy = self.rng.integers(-3, 4, 2)
            img = np.roll(img, (int(dy), int(dx)), axis=(0, 1))
            img = photometric(np.ascontiguousarray(img), self.rng)
        return torch.from_numpy(standardise(np.ascontiguousarray(img)))[None], label


def contrast_jitter(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """On a flat-fielded image: the objects' contrast scaled (stains, optics and focus differ between rigs)
    and, sometimes, a halo of opposite sign added around them (phase contrast)."""
    x = x * np.float32(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
    if rng.random() < 0.25:
        x = x + np.float32(rng.uniform(0.3, 1.5)) * (x - cv2.GaussianBlur(x, (0, 0), float(rng.uniform(1.5, 5.0))))
    return np.clip(x, -4.0, 4.0)


def _flip_rotate(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    k = int(rng.integers(4))
    x, y = np.rot90(x, k), np.rot90(y, k)
    if rng.random() < 0.5:
        x, y = x[:, ::-1], y[:, ::-1]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def _crop(x: np.ndarray, y: np.ndarray, size: int, rng: np.random.Generator | None) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` square (random position when ``rng``, else the centre), padded with empty background
    (0 after flat-fielding) and ignored labels where the image is smaller."""
    h, w = x.shape
    if h < size or w < size:
        ph, pw = max(size - h, 0), max(size - w, 0)
        x = cv2.copyMakeBorder(x, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0.0)
        y = cv2.copyMakeBorder(y, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=SEG_IGNORE)
        h, w = x.shape
    y0 = int(rng.integers(h - size + 1)) if rng is not None else (h - size) // 2
    x0 = int(rng.integers(w - size + 1)) if rng is not None else (w - size) // 2
    return x[y0 : y0 + size, x0 : x0 + size], y[y0 : y0 + size, x0 : x0 + size]


class SegTiles(Dataset):
    """The twin's randomised tiles (``sim.seg_dataset``), each at its own network pixel size, flat-fielded
    as the runtime does (``perception.runtime.seg_input``)."""

    def __init__(self, root: Path, split: str, augment: bool, seed: int = 0, limit: int | None = None,
                 crop_px: int | None = None) -> None:
        self.root = Path(root)
        self.items = [(self.root / r["image"], self.root / r["mask"], float(r["um_per_px"]))
                      for r in read_manifest(root) if split == "all" or r["split"] == split][:limit]
        self.augment = augment
        self.crop_px = crop_px
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        path, mask_path, um_per_px = self.items[i]
        x = flat_field(read_grey(path), um_per_px)
        y = read_grey(mask_path)
        rng = self.rng if self.augment else None
        if self.crop_px is not None:
            x, y = _crop(x, y, self.crop_px, rng)
        if rng is not None:
            x, y = _flip_rotate(x, y, rng)
            x = contrast_jitter(x, rng)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None], torch.from_numpy(y.astype(np.int64))


class RealSegFrames(Dataset):
    """Crops of real labelled frames (``perception.training.real_frames``) at network pixel sizes drawn
    log-uniformly from ``um_per_px``; the video's own pixel size is known only roughly (+-10%). Before
    resampling, some frames go through another camera chain: recompression, noise, blur."""

    def __init__(self, frames: list, frame_um_per_px: float, um_per_px: tuple[float, float], crop_px: int,
                 n_items: int, seed: int = 0) -> None:
        from perception.training.real_frames import label_image

        self.frames = [(f.image, label_image(f, frame_um_per_px)) for f in frames]
        self.frame_um = frame_um_per_px
        self.um_per_px = um_per_px
        self.crop_px = crop_px
        self.n_items = n_items
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.n_items if self.frames else 0

    def __getitem__(self, i: int):
        rng = self.rng
        img, label = self.frames[int(rng.integers(len(self.frames)))]
        if rng.random() < 0.3:
            img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.4, 1.2)))
        if rng.random() < 0.3:
            img = np.clip(img + rng.normal(0, rng.uniform(1, 6), img.shape), 0, 255).astype(np.uint8)
        if rng.random() < 0.4:
            img = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(15, 90))])[1],
                               cv2.IMREAD_GRAYSCALE)
        net_um = float(np.exp(rng.uniform(np.log(self.um_per_px[0]), np.log(self.um_per_px[1]))))
        scale = self.frame_um * float(rng.uniform(0.9, 1.1)) / net_um
        small = resample(img, scale)
        y = cv2.resize(label, small.shape[::-1], interpolation=cv2.INTER_NEAREST)
        x, y = _crop(flat_field(small, net_um), y, self.crop_px, rng)
        x, y = _flip_rotate(x, y, rng)
        x = contrast_jitter(x, rng)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None], torch.from_numpy(y.astype(np.int64))


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
