"""Synthetic 96x96 depth crops beside real live human sperm heads (MHSMA), with measured properties.

    .venv/bin/python benchmarks/sim_realism.py --mhsma ../shared/data/mhsma --out docs/img/sim_vs_mhsma.png

Properties are measured the same way on both sets, on the central 64x64 px at the sim's scale
(0.1465 um/px); MHSMA's 128x128 crops are resized so their median head length matches that scale's
physical head length only if their own scale is unknown: we report their raw pixel sizes too.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from sim.datasets import DEPTHS_UM, DepthDatasetSpec, depth_folder, generate_depth_dataset


def properties(img: np.ndarray) -> dict[str, float]:
    """Head length (px) from the largest blob of |I - background| > 3 sigma; contrast; halo."""
    f = img.astype(np.float32)
    bg = float(np.median(f))
    noise = float(np.median(np.abs(f - bg))) * 1.4826 + 1e-3
    dev = np.abs(cv2.GaussianBlur(f, (3, 3), 0) - bg)
    mask = (dev > 3 * noise).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask)
    h, w = img.shape
    centre = labels[h // 2 - 6 : h // 2 + 6, w // 2 - 6 : w // 2 + 6]
    ids = [i for i in np.unique(centre) if i > 0]
    if not ids:
        return {"head_len_px": 0.0, "contrast": float(dev.max() / bg), "dark_frac": 0.0}
    blob = labels == max(ids, key=lambda i: stats[i, cv2.CC_STAT_AREA])
    ys, xs = np.nonzero(blob)
    cov = np.cov(np.stack([xs, ys]))
    length = 4 * np.sqrt(np.linalg.eigvalsh(cov).max())
    region = f[h // 2 - 12 : h // 2 + 12, w // 2 - 12 : w // 2 + 12]
    return {
        "head_len_px": float(length),
        "contrast": float((region.max() - region.min()) / bg),
        "dark_frac": float((region < bg - 3 * noise).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mhsma", type=Path, default=Path("../shared/data/mhsma"))
    ap.add_argument("--out", type=Path, default=Path("docs/img/sim_vs_mhsma.png"))
    ap.add_argument("--n-sperm", type=int, default=24)
    args = ap.parse_args()
    real = np.load(args.mhsma / "x_128_valid.npy")
    with tempfile.TemporaryDirectory() as tmp:
        generate_depth_dataset(DepthDatasetSpec(n_sperm=args.n_sperm, seed=5, center_jitter_px=0.0), Path(tmp))
        synth = {d: [cv2.imread(str(p), 0) for p in sorted((Path(tmp) / depth_folder(d)).glob("*.png"))]
                 for d in DEPTHS_UM}
    # Figure: 4 rows of synthetic crops (one column per depth) above 2 rows of real crops (96x96 centre).
    rows = [np.hstack([synth[d][i] for d in DEPTHS_UM]) for i in range(4)]
    real96 = [r[16:112, 16:112] for r in real[:18]]
    rows += [np.hstack(real96[i * 9 : (i + 1) * 9]) for i in range(2)]
    fig = np.vstack(rows)
    fig = cv2.resize(fig, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_NEAREST)
    labels = np.full((24, fig.shape[1]), 255, np.uint8)
    for j, d in enumerate(DEPTHS_UM):
        cv2.putText(labels, f"{d:+.1f} um", (j * 144 + 40, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1)
    fig = np.vstack([labels, fig])
    cv2.putText(fig, "synthetic (rows 1-4)  |  real MHSMA (rows 5-6)", (8, fig.shape[0] - 8),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, 255, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), fig)
    real_props = [properties(r[16:112, 16:112]) for r in real]
    print("| set | head length px (median) | contrast (max-min)/bg (median) | dark fraction (median) |")
    print("|---|---|---|---|")
    for d in DEPTHS_UM:
        p = [properties(c) for c in synth[d]]
        print(f"| synthetic {d:+.1f} um | {np.median([x['head_len_px'] for x in p]):.1f} | "
              f"{np.median([x['contrast'] for x in p]):.2f} | {np.median([x['dark_frac'] for x in p]):.2f} |")
    print(f"| real MHSMA (n={len(real)}) | {np.median([x['head_len_px'] for x in real_props]):.1f} | "
          f"{np.median([x['contrast'] for x in real_props]):.2f} | "
          f"{np.median([x['dark_frac'] for x in real_props]):.2f} |")
    print(f"figure: {args.out}")


if __name__ == "__main__":
    main()
