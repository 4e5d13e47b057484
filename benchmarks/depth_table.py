"""The paper's Table I (each backbone with and without FGAF) and Table II (ablation on ResNet-34) on
held-out simulated sperm (the test split). Every row trains from scratch with the same data, seed and budget.

    .venv/bin/python benchmarks/depth_table.py --data runs/data/depth --epochs 15 [--table 1|2|both]
        [--backbones resnet18,mobilenet_v2] [--max-train 0]

On the 2-core CPU a full run takes many hours; use a GPU (`--device cuda`) or a reduced budget and say so.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from perception.training.config import TrainConfig
from perception.training.evaluate import evaluate
from perception.training.loop import train

TABLE1 = ["resnet18", "resnet34", "resnet50", "mobilenet_v2", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
          "shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "googlenet"]
ABLATION = {  # Table II on ResNet-34: remove one part at a time
    "full (FG+AF+CN+SN+WLoss)": {},
    "- FG": {"use_fg": False}, "- AF": {"use_af": False}, "- CrossNorm": {"crossnorm": False},
    "- SelfNorm": {"selfnorm": False}, "- WLoss": {"loss": "ce"}, "backbone only": {"fgaf": False, "crossnorm": False,
                                                                                    "selfnorm": False, "loss": "ce"},
}


def run(data: Path, model: dict, loss: str, epochs: int, max_train: int | None, device: str) -> dict:
    """Train one row (best epoch on the validation split) and score it on the test split's sperm, which
    neither training nor the choice of epoch saw."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(task="depth", data=data, out=Path(tmp), model=model, epochs=epochs, loss=loss,
                          batch_size=64, patience=epochs, max_train_samples=max_train, device=device)
        train(cfg, progress=False)
        return evaluate("depth", data, weights=Path(tmp) / "best.pt")


def row(name: str, m: dict) -> str:
    return f"| {name} | {m['top1']:.2%} | {m['top3']:.2%} | {m['mean_abs_error_um']:.3f} +- {m['std_abs_error_um']:.3f} |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("runs/data/depth"))
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--table", default="both")
    ap.add_argument("--backbones", default=",".join(TABLE1))
    ap.add_argument("--max-train", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    limit = args.max_train or None
    results = {}
    header = "| model | top-1 | top-3 | mean abs error (um) |\n|---|---|---|---|"
    if args.table in ("1", "both"):
        print(f"Table I: backbones with and without FGAF (test split; {args.epochs} epochs)\n" + header)
        for b in args.backbones.split(","):
            for fgaf in (False, True):
                name = f"{b}{' + FGAF' if fgaf else ''}"
                model = {"name": "depth_classifier", "backbone": b, "fgaf": fgaf, "crossnorm": fgaf, "selfnorm": fgaf}
                results[name] = run(args.data, model, "wloss" if fgaf else "ce", args.epochs, limit, args.device)
                print(row(name, results[name]), flush=True)
    if args.table in ("2", "both"):
        print(f"\nTable II: ablation on ResNet-34 (test split; {args.epochs} epochs)\n" + header)
        for name, change in ABLATION.items():
            change = dict(change)
            loss = change.pop("loss", "wloss")
            model = {"name": "depth_classifier", "backbone": "resnet34", **change}
            results[f"resnet34 {name}"] = run(args.data, model, loss, args.epochs, limit, args.device)
            print(row(name, results[f"resnet34 {name}"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({k: {kk: vv for kk, vv in v.items() if not isinstance(vv, list)}
                                         for k, v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
