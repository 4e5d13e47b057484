"""The realism report: the twin's heads against real live, unstained human sperm heads (MHSMA).

    .venv/bin/python benchmarks/sim_realism.py --mhsma ../shared/data/mhsma [--n-sperm 240] [--seed 11]

The twin records z-stacks as an operator does (sim/datasets.py) through MHSMA's recording chain as the
twin reproduces it (``MHSMA_CHAIN``: condenser, camera noise and blur calibrated on MHSMA's calibration
part); MHSMA's crops are resampled to the twin's sampling (0.1465 um/px). Reported:
- per-statistic comparison (sim/realism.py: darkness, texture, halo, axis ratio, size, midpiece, tail)
  of the twin's heads at each depth label against MHSMA's calibration and held-out parts;
- a domain classifier (logistic regression on HOG + LBP of 64x64 head crops, folds grouped by cell) that
  tries to tell real from twin heads: ROC AUC per depth label, with every crop randomly turned by a
  multiple of 90 degrees and mirrored (MHSMA frames most heads with the tail to the left; framing is not
  appearance), and, for comparison, as framed;
- where each focus measure peaks (focal plane above the head's mid-plane) on immotile twin heads: the
  operator's criterion, which fixes every stack's zero plane, is the one whose label-0 heads match MHSMA's;
- a montage (``docs/img/sim_vs_mhsma.png``).
MHSMA's held-out part (a third, fixed by ``sim.realism.mhsma_split``) entered no calibration; the
project's own held-out real heads come from elsewhere.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from result_store import Headline, Result, Table, save_result  # benchmarks/ is on the path of a script run from it

from drivers.errors import ConfigError
from perception.classes import DEPTHS_UM
from perception.runtime.focus import FOCUS_MEASURES
from sim.datasets import MHSMA_CHAIN, DepthDatasetSpec, depth_folder, focus_peaks, generate_depth_dataset
from sim.realism import (
    MHSMA_UM_PER_PX,
    STATISTICS,
    centre_crop,
    domain_auc,
    head_statistics,
    load_mhsma,
    mhsma_split,
    to_twin_scale,
)

STAT_CROP_PX = 80  # MHSMA's 128 px at 0.105 um/px cover 92 px of the twin's sampling
AUC_CROP_PX = 64


def twin_stacks(n_sperm: int, seed: int) -> tuple[dict[float, list[np.ndarray]], list[int]]:
    """Crops per depth label of ``n_sperm`` z-stacks through MHSMA's chain, and each crop's cell."""
    with tempfile.TemporaryDirectory() as tmp:
        generate_depth_dataset(DepthDatasetSpec(n_sperm=n_sperm, seed=seed, center_jitter_px=0.0, chain=MHSMA_CHAIN),
                               Path(tmp))
        crops = {d: [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
                     for p in sorted((Path(tmp) / depth_folder(d)).glob("*.png"))] for d in DEPTHS_UM}
    return crops, list(range(n_sperm))


def summary(crops: list[np.ndarray]) -> dict[str, tuple[float, float, float]]:
    stats = [s for s in (head_statistics(centre_crop(c, STAT_CROP_PX)) for c in crops) if s is not None]
    return {k: tuple(float(v) for v in np.percentile([getattr(s, k) for s in stats], [25, 50, 75]))
            for k in STATISTICS} | {"n": (len(stats),) * 3}


def montage(twin: dict[float, list[np.ndarray]], real: list[np.ndarray], out: Path) -> None:
    """4 rows of twin stacks (one column per depth) above 2 rows of real heads, each crop 96 px."""
    rows = [np.hstack([centre_crop(twin[d][i], 96) for d in DEPTHS_UM]) for i in range(4)]
    rows += [np.hstack([centre_crop(r, 96) for r in real[i * 9 : (i + 1) * 9]]) for i in range(2)]
    fig = cv2.resize(np.vstack(rows), None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
    labels = np.full((24, fig.shape[1]), 255, np.uint8)
    for j, d in enumerate(DEPTHS_UM):
        cv2.putText(labels, f"{d:+.1f} um", (j * 144 + 40, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1)
    fig = np.vstack([labels, fig])
    cv2.putText(fig, "twin z-stacks, label = plane's offset from the operator's zero (rows 1-4) | real MHSMA heads "
                "(rows 5-6)", (8, fig.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mhsma", type=Path, default=Path("../shared/data/mhsma"))
    ap.add_argument("--out", type=Path, default=Path("docs/img/sim_vs_mhsma.png"))
    ap.add_argument("--n-sperm", type=int, default=240)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--no-save", action="store_true", help="print only, write no JSON")
    args = ap.parse_args()
    try:
        raw = load_mhsma(args.mhsma)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    real = [to_twin_scale(img, MHSMA_UM_PER_PX) for img in raw]
    calibration, held_out = mhsma_split(len(real))
    t0 = time.perf_counter()
    twin, groups = twin_stacks(args.n_sperm, args.seed)
    gen_s = time.perf_counter() - t0

    sets = {"MHSMA calibration": summary([real[i] for i in calibration]),
            "MHSMA held out": summary([real[i] for i in held_out])}
    sets.update({f"twin {depth_folder(d)} um": summary(twin[d]) for d in DEPTHS_UM})
    stat_rows = [[name, s["n"][0], *[f"{s[k][1]:+.3f}" if k not in ("axis_ratio", "length_um", "width_um")
                                      else f"{s[k][1]:.2f}" for k in STATISTICS]] for name, s in sets.items()]
    iqr_rows = [[name, *[f"{s[k][0]:.3f} .. {s[k][2]:.3f}" for k in STATISTICS]]
                for name, s in sets.items() if name.startswith("MHSMA") or name == "twin +0.0 um"]

    real64 = [centre_crop(r, AUC_CROP_PX) for r in real]
    auc_rows, aucs = [], {}
    for d in DEPTHS_UM:
        t64 = [centre_crop(c, AUC_CROP_PX) for c in twin[d]]
        a_all = domain_auc(real64, t64, groups)
        a_held = domain_auc([real64[i] for i in held_out], t64, groups)
        a_framed = domain_auc(real64, t64, groups, reframe=False)
        aucs[depth_folder(d)] = {"all": a_all, "held_out": a_held, "as_framed": a_framed}
        auc_rows.append([f"{d:+.1f}", f"{a_all:.3f}", f"{a_held:.3f}", f"{a_framed:.3f}"])
        print(f"AUC {d:+.1f} um: all {a_all:.3f}, held-out {a_held:.3f}, as framed {a_framed:.3f}", flush=True)
    montage(twin, [real[i] for i in held_out[:18]], args.out)
    # entropy works on raw grey-level counts, not on an intensity relative to the background
    peaks = focus_peaks(40, args.seed, tuple(m for m in FOCUS_MEASURES if m != "entropy"))
    chosen = DepthDatasetSpec().focus_measure
    focus_rows = [[m + (" (the operator's)" if m == chosen else ""), f"{np.median(v):+.2f}",
                   f"{np.percentile(v, 25):+.2f} .. {np.percentile(v, 75):+.2f}"] for m, v in peaks.items()]
    for row in focus_rows:
        print("focus peak:", " | ".join(row))
    columns = ["set", "heads", *STATISTICS]
    for row in stat_rows:
        print(" | ".join(str(c) for c in row))
    if args.no_save:
        return
    infocus = aucs["+0.0"]
    save_result(Result(
        name="sim_realism", title="Realism of the twin's heads against real heads (MHSMA)", section="digital twin",
        order=20,
        tables=[
            Table(caption="Head statistics, medians (sim/realism.py; twin through MHSMA's recording chain)",
                  columns=columns, rows=stat_rows,
                  notes=f"{args.n_sperm} twin z-stacks (seed {args.seed}, {gen_s:.0f} s to record); MHSMA resampled "
                        f"from {MHSMA_UM_PER_PX} to 0.1465 um/px; crops {STAT_CROP_PX} px."),
            Table(caption="Interquartile ranges", columns=["set", *STATISTICS], rows=iqr_rows),
            Table(caption="Where focus measures peak: focal plane above the head's mid-plane, 40 immotile twin "
                          "heads (condenser NA 0.4, no operator scatter)",
                  columns=["focus measure", "median um", "interquartile range um"], rows=focus_rows,
                  notes="The operator's measure sets every z-stack's zero plane (sim/datasets.py, "
                        "DepthDatasetSpec.focus_measure); it is the one whose label-0 heads match MHSMA's "
                        "calibration part in the statistics above."),
            Table(caption="Domain classifier: ROC AUC telling real heads from the twin's, per depth label "
                          "(HOG + LBP of 64x64 crops, logistic regression, 5 folds grouped by cell; 0.5 = "
                          "indistinguishable)",
                  columns=["twin label (um)", "vs all MHSMA (randomly turned)", "vs held-out MHSMA (turned)",
                           "vs all MHSMA (as framed)"], rows=auc_rows),
        ],
        headlines=[Headline("real-vs-twin domain classifier, in-focus heads (ROC AUC; all / held-out MHSMA)",
                            f"{infocus['all']:.2f} / {infocus['held_out']:.2f}", "<= 0.75 (was 1.00)")],
        data={"n_sperm": args.n_sperm, "seed": args.seed, "mhsma_um_per_px": MHSMA_UM_PER_PX, "auc": aucs,
              "statistics": {k: {s: v for s, v in sets[k].items()} for k in sets}, "generation_s": gen_s,
              "focus_peaks_um": {m: float(np.median(v)) for m, v in peaks.items()}},
    ))


if __name__ == "__main__":
    main()
