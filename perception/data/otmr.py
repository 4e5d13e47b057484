"""Loader for the OTMR layout: ``P{pitch}_R{roll}/`` folders with images and a depth file of tuple lines.

The depth file is ``P{p}_R{r}_depth.txt`` (or upstream's ``P{p}_R{r}-depth.txt``); each line is a Python
tuple literal ``('file.jpg', 0.893)``, not in file order, so rows are joined on the file name.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from drivers.errors import ConfigError

_POSE = re.compile(r"^P(\d+)_R(\d+)$")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class OTMRSample:
    path: Path
    pitch_deg: int
    roll_deg: int
    depth: float


def _read_depths(path: Path) -> dict[str, float]:
    depths = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            name, value = ast.literal_eval(line)
            depths[str(name)] = float(value)
        except (ValueError, SyntaxError, TypeError):
            raise ConfigError(f"{path}:{n}: expected a tuple ('file.jpg', depth), got {line[:60]!r}") from None
    return depths


def load_otmr(root: Path) -> list[OTMRSample]:
    """All labelled images under ``root``; a pose folder without a depth file is an error naming it."""
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: OTMR data folder not found")
    samples = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        m = _POSE.match(folder.name)
        if not m:
            continue
        pitch, roll = int(m.group(1)), int(m.group(2))
        depth_file = next((folder / f"{folder.name}{sep}depth.txt" for sep in ("_", "-")
                           if (folder / f"{folder.name}{sep}depth.txt").is_file()), None)
        if depth_file is None:
            raise ConfigError(f"{folder}: no {folder.name}_depth.txt (or -depth.txt)")
        depths = _read_depths(depth_file)
        for img in sorted(folder.iterdir()):
            if img.suffix.lower() in IMAGE_SUFFIXES and img.name in depths:
                samples.append(OTMRSample(img, pitch, roll, depths[img.name]))
    if not samples:
        raise ConfigError(f"{root}: no P{{pitch}}_R{{roll}} folders with labelled images")
    return samples


def stratified_split(samples: list[OTMRSample], fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
                     seed: int = 0) -> dict[str, list[OTMRSample]]:
    """Split each pose's images by the fractions, so every split holds every pose."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[OTMRSample]] = {"train": [], "val": [], "test": []}
    by_pose: dict[tuple[int, int], list[OTMRSample]] = {}
    for s in samples:
        by_pose.setdefault((s.pitch_deg, s.roll_deg), []).append(s)
    for pose in sorted(by_pose):
        items = by_pose[pose]
        order = rng.permutation(len(items))
        n_train = int(round(fractions[0] * len(items)))
        n_val = int(round(fractions[1] * len(items)))
        out["train"] += [items[i] for i in order[:n_train]]
        out["val"] += [items[i] for i in order[n_train : n_train + n_val]]
        out["test"] += [items[i] for i in order[n_train + n_val :]]
    return out


def pose_vocab(samples: list[OTMRSample]) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """Sorted pitch values, roll values and (pitch, roll) poses present in the data."""
    pitches = sorted({s.pitch_deg for s in samples})
    rolls = sorted({s.roll_deg for s in samples})
    poses = sorted({(s.pitch_deg, s.roll_deg) for s in samples})
    return pitches, rolls, poses
