"""What the shipped depth classifier reads on real heads imaged near focus (MHSMA): the share read within
+-0.5 um of the focal plane, and the whole distribution of its readings.

    .venv/bin/python benchmarks/depth_on_real.py [--mhsma ../shared/data/mhsma] [--weights depth_classifier]

MHSMA's operators photographed live, unstained heads in focus, so a depth net that has learnt real heads
should read them near 0. Crops are resampled to the twin's sampling (MHSMA at 0.105 um/px, sim/realism.py)
and padded to the net's 96 px with their border's median. The held-out part of MHSMA (a third, never used
to calibrate the twin) is reported on its own; the held-out test of the project is on real data from
elsewhere.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from result_store import Headline, Result, Table, save_result  # benchmarks/ is on the path of a script run from it
from drivers.errors import ConfigError
from perception.models import build_model
from perception.training.datasets import standardise
from perception.training.export import load_weights
from sim.realism import MHSMA_UM_PER_PX, centre_crop, load_mhsma, mhsma_split, to_twin_scale


def readings(weights: str, crops: list[np.ndarray]) -> tuple[np.ndarray, tuple[float, ...]]:
    """Depth class (um) the network reads for each crop, and its classes."""
    ckpt = load_weights(weights)
    model = build_model(ckpt["model_config"])
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    depths = tuple(ckpt["meta"]["depths_um"])
    size = int(ckpt["meta"].get("image_px", 96))
    x = torch.from_numpy(np.stack([standardise(centre_crop(c, size)) for c in crops])[:, None])
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    return np.asarray(depths)[pred], depths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mhsma", type=Path, default=Path("../shared/data/mhsma"))
    ap.add_argument("--weights", default="depth_classifier")
    ap.add_argument("--magnifications", default="0.85,0.92,1.08,1.18",
                    help="also read MHSMA magnified by these factors (a head's size must not decide its depth)")
    ap.add_argument("--no-save", action="store_true", help="print only, write no JSON")
    args = ap.parse_args()
    try:
        real = load_mhsma(args.mhsma)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    calibration, held_out = mhsma_split(len(real))
    crops = [to_twin_scale(img, MHSMA_UM_PER_PX) for img in real]
    read, depths = readings(args.weights, crops)
    rows, data = [], {}
    for name, idx in (("held out (never used for the twin)", held_out), ("calibration part", calibration),
                      ("all", np.arange(len(real)))):
        r = read[idx]
        within = float(np.mean(np.abs(r) <= 0.5 + 1e-9))
        hist = [int(np.sum(np.isclose(r, d))) for d in depths]
        rows.append([name, len(idx), f"{within:.0%}", f"{np.mean(np.abs(r) >= 1.5 - 1e-9):.0%}",
                     " ".join(f"{d:+.1f}:{h}" for d, h in zip(depths, hist))])
        data[name] = {"n": len(idx), "within_0_5_um": within, "histogram": dict(zip([f"{d:+.1f}" for d in depths], hist))}
    mag_rows = []
    for m in [float(x) for x in args.magnifications.split(",") if x.strip()]:
        r, _ = readings(args.weights, [to_twin_scale(img, MHSMA_UM_PER_PX * m) for img in real])
        mag_rows.append([f"{m:.2f}", f"{np.mean(np.abs(r[held_out]) <= 0.5 + 1e-9):.0%}",
                         f"{np.mean(np.abs(r[calibration]) <= 0.5 + 1e-9):.0%}", f"{np.mean(r):+.2f}"])
    for row in rows + mag_rows:
        print(" | ".join(str(c) for c in row))
    if args.no_save:
        return
    held = data["held out (never used for the twin)"]["within_0_5_um"]
    save_result(Result(
        name="depth_on_real", title="Depth classifier on real near-focus heads (MHSMA)", section="digital twin",
        order=30,
        tables=[Table(caption=f"weights `{args.weights}`; MHSMA at {MHSMA_UM_PER_PX} um/px resampled to the twin's "
                              "0.1465 um/px, padded to 96 px",
                      columns=["MHSMA part", "heads", "read within +-0.5 um", "read at +-1.5 um or beyond",
                               "readings per class (um: heads)"], rows=rows),
                Table(caption="The same heads magnified: share read within +-0.5 um (heads differ in size from cell "
                              "to cell, rigs in magnification)",
                      columns=["magnification", "held out", "calibration part", "mean reading um (all)"],
                      rows=mag_rows)],
        headlines=[Headline("depth net on real near-focus heads (MHSMA held-out part), read within +-0.5 um",
                            f"{held:.0%}", ">= 70%")],
        data={"weights": args.weights, "mhsma_um_per_px": MHSMA_UM_PER_PX, **data, "magnified": mag_rows},
    ))


if __name__ == "__main__":
    main()
