"""The paper's Table I (each backbone with and without FGAF) and Table II (ablation on ResNet-34) on
held-out simulated sperm (the test split). Every row trains from scratch with the same data, seed and budget.

    .venv/bin/python benchmarks/depth_table.py --data runs/data/depth --epochs 15 [--table 1|2|both]
        [--backbones resnet18,mobilenet_v2] [--max-train 0] [--jobs 1] [--seeds 0,1,2] [--json OUT]
        [--ablation "- FG,- WLoss"] [--name depth_tables]

On the 2-core CPU a full run takes many hours; use a GPU (`--device cuda`) or a reduced budget and say so:
the budget (epochs, training crops) is written into the saved result (docs/results/<name>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from result_store import Headline, Result, Table, save_result  # benchmarks/ is on the path of a script run from it

from perception.training.config import TrainConfig
from perception.training.evaluate import evaluate, true_height_top1
from perception.training.loop import train
from perception.training.tasks import zero_offset_um

TABLE1 = ["resnet18", "resnet34", "resnet50", "mobilenet_v2", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
          "shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "googlenet"]
ABLATION = {  # Table II on ResNet-34: remove one part at a time
    "full (FG+AF+CN+SN+WLoss)": {},
    "- FG": {"use_fg": False}, "- AF": {"use_af": False}, "- CrossNorm": {"crossnorm": False},
    "- SelfNorm": {"selfnorm": False}, "- WLoss": {"loss": "ce"}, "backbone only": {"fgaf": False, "crossnorm": False,
                                                                                    "selfnorm": False, "loss": "ce"},
}
HEADER = "| model | top-1 | top-3 | mean abs error (um) |\n|---|---|---|---|"


def rows(table: str, backbones: list[str], ablation: list[str] | None = None) -> list[tuple[str, str, dict, str]]:
    """(table, row label, model config, loss) for every row asked for; Table II first, as its rows train longest."""
    out = []
    if table in ("2", "both"):
        for name, change in ABLATION.items():
            if ablation and name not in ablation:
                continue
            change = dict(change)
            loss = change.pop("loss", "wloss")
            model = {"name": "depth_classifier", "backbone": "resnet34", "fgaf": True, "crossnorm": True,
                     "selfnorm": True, **change}
            out.append(("2", f"resnet34 {name}", model, loss))
    if table in ("1", "both"):
        for b in backbones:
            for fgaf in (False, True):
                model = {"name": "depth_classifier", "backbone": b, "fgaf": fgaf, "crossnorm": fgaf, "selfnorm": fgaf}
                out.append(("1", f"{b}{' + FGAF' if fgaf else ''}", model, "wloss" if fgaf else "ce"))
    return out


def run(data: Path, model: dict, loss: str, epochs: int, max_train: int | None, device: str, threads: int,
        seed: int) -> dict:
    """Train one row (best epoch on the validation split) and score it on the test split's sperm, which
    neither training nor the choice of epoch saw."""
    torch.set_num_threads(threads)
    device = "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(task="depth", data=data, out=Path(tmp), model=model, epochs=epochs, loss=loss,
                          batch_size=64, patience=epochs, max_train_samples=max_train, device=device, seed=seed)
        train(cfg, progress=False)
        metrics = evaluate("depth", data, weights=Path(tmp) / "best.pt", device=device)
    metrics["train_eval_s"] = time.perf_counter() - t0
    return metrics


def line(name: str, m: dict) -> str:
    return f"| {name} | {m['top1']:.2%} | {m['top3']:.2%} | {m['mean_abs_error_um']:.3f} +- {m['std_abs_error_um']:.3f} |"


def seeds_line(name: str, runs: list[dict]) -> str:
    """Mean +- standard deviation over training seeds: a difference between rows smaller than this spread
    is not a difference."""
    def ms(key: str, fmt: str) -> str:
        v = np.array([r[key] for r in runs])
        return f"{v.mean():{fmt}} +- {v.std():{fmt}}"
    return f"| {name} | {ms('top1', '.2%')} | {ms('top3', '.2%')} | {ms('mean_abs_error_um', '.3f')} |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path("runs/data/depth"))
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--table", default="both")
    ap.add_argument("--backbones", default=",".join(TABLE1))
    ap.add_argument("--max-train", type=int, default=0)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seeds", default="0", help="training seeds, e.g. 0,1,2: rows then show mean +- std over them")
    ap.add_argument("--jobs", type=int, default=1, help="rows trained at once, each in its own process (a GPU "
                    "is shared; CPU threads are split between them)")
    ap.add_argument("--json", type=Path, help="written again after every row, so a cut-off run keeps its rows")
    ap.add_argument("--ablation", default="", help="Table II rows to train (comma-separated labels; default all)")
    ap.add_argument("--name", default="depth_tables", help="result name (docs/results/<name>.json)")
    ap.add_argument("--no-save", action="store_true", help="print only, write no result")
    args = ap.parse_args()
    todo = rows(args.table, args.backbones.split(","), [a.strip() for a in args.ablation.split(",") if a.strip()])
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    same = {}  # a row of both tables (e.g. resnet34 + FGAF = the full ablation row) is trained once
    for _, name, model, loss in todo:
        same.setdefault(json.dumps([model, loss], sort_keys=True), []).append(name)
    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, dict[int, dict]] = {}
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run, args.data, *json.loads(key), args.epochs, args.max_train or None, args.device,
                               threads, seed): (names, seed) for seed in seeds for key, names in same.items()}
        for fut in as_completed(futures):
            names, seed = futures[fut]
            m = {k: v for k, v in fut.result().items() if not isinstance(v, list)}
            for name in names:
                results.setdefault(name, {})[seed] = m
                print(f"done seed {seed} {line(name, m)} {m['train_eval_s']:.0f} s", flush=True)
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
    titles = {"1": "Table I: backbones with and without FGAF", "2": "Table II: ablation on ResNet-34"}
    budget = f"{args.epochs} epochs" + (f", {args.max_train} training crops" if args.max_train else ", all training crops")
    ceiling = true_height_top1(args.data, "test", zero_offset_um(args.data))
    by_motility = ", ".join(f"{k.replace('_', ' ')} {v:.1%}" for k, v in sorted(ceiling.items()) if k != "all")
    ceiling_note = (f"The labels' own noise: a reader of each head's true height (plus the training split's zero "
                    f"offset) scores {ceiling['all']:.1%} top-1 on this test split ({by_motility}); "
                    f"perception/training/evaluate.py::true_height_top1.")
    print(ceiling_note)
    tables = []
    for table in ("1", "2"):
        names = [name for t, name, _, _ in todo if t == table]
        if names:
            print(f"\n{titles[table]} (test split; {budget}; seeds {args.seeds})\n{HEADER}")
            cells = []
            for name in names:
                label = name.removeprefix("resnet34 ") if table == "2" else name
                done = [results[name][seed] for seed in seeds]
                text = line(label, done[0]) if len(done) == 1 else seeds_line(label, done)
                print(text)
                cells.append([c.strip() for c in text.strip("|").split("|")])
            tables.append(Table(caption=f"{titles[table]} (test split of {args.data}; {budget}; seeds {args.seeds})",
                                columns=["model", "top-1", "top-3", "mean abs error (um)"], rows=cells,
                                notes=ceiling_note))
    headlines = []
    if "resnet34" in results and "resnet34 + FGAF" in results:
        plain, fgaf = (float(np.mean([m["top1"] for m in results[n].values()])) for n in ("resnet34", "resnet34 + FGAF"))
        headlines.append(Headline(f"paper's Table I on the twin's z-stacks ({budget}): ResNet-34 / + FGAF top-1",
                                  f"{plain:.1%} / {fgaf:.1%} (true-height reader {ceiling['all']:.1%})",
                                  "plain ResNet-34 60-85% (paper's real z-stacks: 64-79% plain backbones)"))
    if not args.no_save:
        save_result(Result(name=args.name, title="Depth classification on the twin's z-stacks (Tables I and II)",
                           section="perception models", order=40, tables=tables, headlines=headlines,
                           data={"budget": budget, "device": args.device, "results": results,
                                 "true_height_top1": ceiling}))


if __name__ == "__main__":
    main()
