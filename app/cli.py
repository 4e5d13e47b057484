"""The ``micromanip`` command line. Every subcommand has ``--help``; errors print one line, exit 2."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from drivers.errors import MicromanipError

log = logging.getLogger("micromanip")

DEFAULT_RIG = Path(__file__).resolve().parent.parent / "configs" / "sim.yaml"

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="micromanip: microscope camera + deep-learning perception + micromanipulation robots.")
rig_app = typer.Typer(no_args_is_help=True, help="Inspect and check rig configuration files.")
sim_app = typer.Typer(no_args_is_help=True, help="The digital twin: render frames, generate datasets.")
dataset_app = typer.Typer(no_args_is_help=True, help="Generate synthetic datasets with exact ground truth.")
app.add_typer(rig_app, name="rig")
app.add_typer(sim_app, name="sim")
sim_app.add_typer(dataset_app, name="dataset")


@app.callback()
def _main(
    log_level: str = typer.Option("WARNING", help="console log level (DEBUG, INFO, WARNING, ERROR)"),
    log_dir: Optional[Path] = typer.Option(None, help="folder for the rotating JSON log file"),
) -> None:
    from app.logging_setup import configure_logging

    configure_logging(log_level, log_dir)


# ----- rig -------------------------------------------------------------------------------------------------
@rig_app.command("check")
def rig_check(path: Path = typer.Argument(..., help="rig YAML file")) -> None:
    """Validate a rig file and print its devices; a bad field is reported in one line (exit 2)."""
    from app.config import DEVICE_KINDS, load_rig_config

    config = load_rig_config(path)
    typer.echo(f"{path}: rig '{config.name}' OK ({config.clock} clock)")
    for kind in DEVICE_KINDS:
        spec = getattr(config, kind)
        twin = "  (rehearsal: protocol server on the digital twin)" if spec.twin_settings is not None else ""
        typer.echo(f"  {kind:12s} driver={spec.driver}{twin}")


# ----- sim -------------------------------------------------------------------------------------------------
@sim_app.command("render")
def sim_render(
    out: Path = typer.Option(..., "--out", help="PNG to write (full sensor frame)"),
    seed: int = typer.Option(0, help="scene seed"),
    rig: Path = typer.Option(DEFAULT_RIG, help="rig YAML (simulated devices)"),
    time_s: float = typer.Option(0.5, help="simulated time to let the scene evolve first"),
    truth: Optional[Path] = typer.Option(None, help="also write the frame's ground truth as JSON"),
) -> None:
    """Render one full frame of the default scene."""
    import cv2

    from app.config import load_rig_config
    from app.rig import build_rig

    with build_rig(load_rig_config(rig), seed=seed) as r:
        r.clock.sleep(time_s)
        frame = r.frames.snap()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), frame.pixels):
        raise MicromanipError(f"cannot write {out}")
    if truth is not None:
        t = frame.truth
        truth.write_text(json.dumps({
            "time_s": t.time_s, "tip_px": t.tip_px, "tip_depth_um": t.tip_depth_um,
            "sperm": [{"id": s.id, "motility": s.motility.value, "head_px": s.head_px, "depth_um": s.depth_um}
                      for s in t.sperm]}, indent=1))
    typer.echo(f"wrote {out} ({frame.pixels.shape[1]}x{frame.pixels.shape[0]}, {len(frame.truth.sperm)} sperm)")


@dataset_app.command("depth")
def dataset_depth(
    out: Path = typer.Option(..., "--out", help="output folder"),
    n_sperm: int = typer.Option(232, help="cells; each gives 9 crops (-2.0 ... +2.0 um)"),
    seed: int = typer.Option(0),
) -> None:
    """Depth z-stacks: 96x96 head crops in one folder per depth class, plus manifest.csv."""
    from sim.datasets import DepthDatasetSpec, generate_depth_dataset

    if n_sperm < 1:
        raise MicromanipError("--n-sperm must be >= 1")
    manifest = generate_depth_dataset(DepthDatasetSpec(n_sperm=n_sperm, seed=seed), out)
    typer.echo(f"wrote {n_sperm * 9} crops, manifest {manifest}")


@dataset_app.command("seg")
def dataset_seg(
    out: Path = typer.Option(..., "--out", help="output folder"),
    n_tiles: int = typer.Option(400, help="256x256 tiles"),
    seed: int = typer.Option(0),
) -> None:
    """Segmentation tiles with label masks (0 background, 1 head, 2 flagellum, 3 pipette)."""
    from sim.datasets import generate_seg_dataset

    if n_tiles < 1:
        raise MicromanipError("--n-tiles must be >= 1")
    manifest = generate_seg_dataset(n_tiles, seed, out)
    typer.echo(f"wrote {n_tiles} tiles, manifest {manifest}")


@dataset_app.command("tracks")
def dataset_tracks(
    out: Path = typer.Option(..., "--out", help="output folder"),
    n_seq: int = typer.Option(2, help="sequences"),
    n_frames: int = typer.Option(80, help="frames per sequence (40 fps)"),
    seed: int = typer.Option(0),
    rig: Path = typer.Option(DEFAULT_RIG, help="rig YAML (simulated devices)"),
) -> None:
    """Frame sequences (640x480 ROI) with ground-truth ids and positions in tracks.csv."""
    from app.config import load_rig_config
    from app.tracks import generate_tracks

    path = generate_tracks(load_rig_config(rig), n_seq, n_frames, seed, out)
    typer.echo(f"wrote {n_seq} sequences, truth {path}")


# ----- training --------------------------------------------------------------------------------------------
TASK_HELP = "seg | depth | otmr-pose | otmr-depth"


@app.command("train")
def train_cmd(
    task: str = typer.Argument(..., help=TASK_HELP),
    config: Path = typer.Option(..., "--config", help="training YAML (configs/train/*.yaml)"),
    resume: bool = typer.Option(False, help="continue from OUT/last.pt"),
    epochs: Optional[int] = typer.Option(None, help="override the config's epochs"),
    out: Optional[Path] = typer.Option(None, help="override the output folder"),
) -> None:
    """Train a perception model (CPU, one GPU, or DDP under torchrun) with best-on-validation checkpoints."""
    from perception.training.config import load_train_config
    from perception.training.loop import train

    overrides = {k: v for k, v in {"epochs": epochs, "out": out}.items() if v is not None}
    cfg = load_train_config(config, overrides)
    if cfg.task != task:
        raise MicromanipError(f"{config}: task is {cfg.task!r}, not {task!r}")
    metrics = train(cfg, resume=resume)
    typer.echo(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, list)}, indent=1))


@app.command("eval")
def eval_cmd(
    task: str = typer.Argument(..., help=TASK_HELP),
    data: Path = typer.Option(..., help="dataset folder"),
    weights: Optional[str] = typer.Option(None, help="weights file or shipped name (default: the shipped model)"),
    split: str = typer.Option("auto", help="auto (test split of the training data, else all) | test | val | all"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="metrics JSON (a Markdown table is written beside it)"),
) -> None:
    """Evaluate a perception model; prints a Markdown table."""
    from perception.training.evaluate import evaluate, write_reports

    metrics = evaluate(task, data, weights, split)
    typer.echo(write_reports(task, metrics, json_out))


@app.command("install-weights")
def install_weights_cmd(
    checkpoint: Path = typer.Argument(..., help="best.pt from a training run"),
    name: str = typer.Option(..., help="shipped name, e.g. depth_classifier"),
    data_note: str = typer.Option("", help="what data it was trained on, for the model card"),
    command: str = typer.Option("make weights", help="the command that rebuilt it, for the model card"),
) -> None:
    """Copy a checkpoint into perception/weights/ (no optimizer state) and write its model card."""
    from perception.training.export import install_weights

    path = install_weights(checkpoint, name, command, data_note)
    typer.echo(f"installed {path} ({path.stat().st_size / 1e6:.2f} MB)")


# ----- trials ----------------------------------------------------------------------------------------------
def _rig_path(rig: str) -> Path:
    """``sim`` (or any name in configs/) or a path to a rig YAML."""
    named = DEFAULT_RIG.parent / f"{rig}.yaml"
    return named if named.is_file() else Path(rig)


@app.command("trials")
def trials_cmd(
    rig: str = typer.Option("sim", help="rig name in configs/ or a YAML path"),
    n: int = typer.Option(10, help="number of trials"),
    seed: int = typer.Option(0, help="campaign seed (trial i uses its own derived seed)"),
    motile: bool = typer.Option(True, "--motile/--immotile", help="target motile or immotile cells"),
    depth_source: str = typer.Option("net", help="net | oracle | dff | none"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the summary as JSON"),
    db: Optional[Path] = typer.Option(None, help="SQLite trial log"),
    resume: bool = typer.Option(False, "--resume", help="continue the campaign found in --db (its finished trials"
                                " are kept, the others run)"),
    workers: int = typer.Option(2, help="parallel processes (--engine local); CPUs of the local Ray instance"),
    engine: str = typer.Option("local", help="local (process pool) | ray (a task per trial)"),
    ray_address: Optional[str] = typer.Option(None, help="HOST:PORT of a Ray cluster (default: start a local one)"),
) -> None:
    """Run a campaign of closed-loop aspiration trials on the simulated rig and print the table."""
    from app.trials import format_table, run_campaign

    if depth_source not in ("net", "oracle", "dff", "none"):
        raise MicromanipError(f"--depth-source must be net, oracle, dff or none, not {depth_source!r}")
    _check_run_options(n=n, workers=workers, seed=seed, resume=resume, db=db)
    motility = "motile" if motile else "immotile"
    summary = run_campaign(_rig_path(rig), n, seed, motility, depth_source, db, workers, resume=resume,
                           engine=engine, ray_address=ray_address)
    typer.echo(format_table(summary, f"{motility} cells, depth source '{depth_source}'"))
    _write_json(json_out, summary)


def _check_run_options(*, n: int = 1, workers: int = 1, seed: int = 0, resume: bool = False,
                       db: Optional[Path] = None) -> None:
    if not 1 <= n <= 1_000_000:
        raise MicromanipError(f"--n must be 1-1000000, not {n}")
    if not 1 <= workers <= 1024:
        raise MicromanipError(f"--workers must be 1-1024, not {workers}")
    if not 0 <= seed <= 2**31 - 1:
        raise MicromanipError(f"--seed must be 0-{2**31 - 1}, not {seed}")
    if resume and db is None:
        raise MicromanipError("--resume needs --db (the log to continue)")


def _write_json(path: Optional[Path], data: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1))


@app.command("sweep")
def sweep_cmd(
    sweep_file: Path = typer.Argument(..., help="sweep YAML (configs/sweeps/*.yaml)"),
    db: Path = typer.Option(..., help="SQLite trial log: one campaign per condition, under the sweep"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write every condition's summary as JSON"),
    resume: bool = typer.Option(False, "--resume", help="continue the sweep found in --db"),
    workers: int = typer.Option(2, help="parallel processes (--engine local); CPUs of the local Ray instance"),
    engine: str = typer.Option("local", help="local (process pool) | ray (a task per trial)"),
    ray_address: Optional[str] = typer.Option(None, help="HOST:PORT of a Ray cluster (default: start a local one)"),
    check: bool = typer.Option(False, "--check", help="validate the sweep file and list its conditions; run nothing"),
) -> None:
    """N trials under each condition of a grid or list over rig, scene and controller parameters."""
    from app.campaign_engine import make_engine
    from app.sweep import format_sweep_table, load_sweep, run_sweep

    _check_run_options(workers=workers, resume=resume, db=db)
    if check:
        sweep = load_sweep(sweep_file)
        typer.echo(f"{sweep_file}: sweep '{sweep.name}' OK: {len(sweep.plans)} conditions x {sweep.plans[0].n} "
                   f"trials; varying: {', '.join(sweep.factors) or '-'}")
        for plan in sweep.plans:
            typer.echo(f"  {plan.label}  ({plan.motility}, depth {plan.depth_source})")
        return
    runner = make_engine(engine, workers, ray_address)
    try:
        result = run_sweep(sweep_file, db, runner, resume=resume)
    finally:
        runner.close()
    typer.echo(format_sweep_table(result))
    _write_json(json_out, result)


@app.command("report")
def report_cmd(
    db: Path = typer.Argument(..., help="SQLite trial log"),
    out: Path = typer.Option(..., "--out", help="folder for the figures (PNG) and report.md"),
) -> None:
    """Figures (success with Wilson 95% bands against each swept factor, failure modes, time to aspirate,
    depth error against outcome) and a Markdown summary of every sweep and campaign in a trial log."""
    from app.report import write_report

    path = write_report(db, out)
    typer.echo(f"wrote {path}")


@app.command("export-trials")
def export_trials_cmd(
    db: Path = typer.Option(..., help="SQLite trial log"),
    csv_out: Path = typer.Option(..., "--csv", help="CSV file to write"),
) -> None:
    """Export every finished trial of a trial log to CSV."""
    from app.trial_log import TrialLog

    if not db.is_file():
        raise MicromanipError(f"{db}: no such trial log")
    with TrialLog(db) as log_db:
        path = log_db.export_csv(csv_out)
    typer.echo(f"wrote {path}")


# ----- benchmarks ------------------------------------------------------------------------------------------
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print tables and write JSON.")
app.add_typer(bench_app, name="bench")


@bench_app.command("perception")
def bench_perception_cmd(
    rig: str = typer.Option("sim", help="rig name in configs/ or a YAML path"),
    frames: int = typer.Option(200, help="frames streamed at the camera's frame rate"),
    full_frame: bool = typer.Option(False, help="process the full 1920x1200 frame instead of the controller ROI"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the result as JSON"),
) -> None:
    """Capture-to-estimate latency, fps, dropped frames and per-stage medians with the shipped models."""
    from app.config import load_rig_config
    from app.trials import TrialSettings
    from app.bench_perception import perception_benchmark

    path = _rig_path(rig)
    settings = TrialSettings.model_validate(load_rig_config(path).control.get("trials", {}))
    result = perception_benchmark(path, frames, None if full_frame else settings.roi_px)
    lat = result["latency_ms"]
    typer.echo("| region | frames | processed | dropped | fps | latency median ms | latency p99 ms | stages (median ms) |")
    typer.echo("|---|---|---|---|---|---|---|---|")
    stages = ", ".join(f"{k.removesuffix('_ms')} {v:.1f}" for k, v in result["stages_ms"].items())
    typer.echo(f"| {result['roi_px'][0]}x{result['roi_px'][1]} | {result['frames']} | {result['processed']} | "
               f"{result['dropped_frames']} | {result['fps']:.1f} | {lat['median']:.1f} | {lat['p99']:.1f} | {stages} |")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=1))


# ----- gui -------------------------------------------------------------------------------------------------
@app.command("gui")
def gui_cmd(
    rig: str = typer.Option("sim", help="rig name in configs/ or a YAML path"),
    seed: int = typer.Option(0),
    screenshot: Optional[Path] = typer.Option(None, help="save a PNG of the window before quitting"),
    quit_after: Optional[float] = typer.Option(None, help="close after this many seconds"),
    autostart: bool = typer.Option(False, help="start an aspiration trial as soon as the window is up"),
) -> None:
    """Open the operator window on the simulated or the real rig."""
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from app.gui.main_window import MainWindow
    from app.gui.session import LiveSession

    qt = QApplication.instance() or QApplication(sys.argv[:1])
    session = LiveSession(_rig_path(rig), seed)
    window = MainWindow(session)
    window.show()
    session.start()
    if autostart:
        QTimer.singleShot(1500, session.start_trial)
    if quit_after is not None:
        def finish() -> None:
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                window.grab().save(str(screenshot))
            window.close()
            qt.quit()

        QTimer.singleShot(int(quit_after * 1000), finish)
    qt.exec()


# ----- demo ------------------------------------------------------------------------------------------------
@app.command("demo")
def demo(
    n: int = typer.Option(6, help="trials"),
    seed: int = typer.Option(0),
    rig: str = typer.Option("sim", help="rig name in configs/ or a YAML path"),
    workers: int = typer.Option(2, help="parallel processes"),
) -> None:
    """Main job on the simulated rig with the shipped models: a short campaign and its result table."""
    from app.trials import format_table, run_campaign

    summary = run_campaign(_rig_path(rig), n, seed, "motile", "net", None, workers)
    typer.echo(format_table(summary, "demo: motile cells, shipped UNeXt + FGAF depth classifier"))


def main() -> None:
    """Entry point: report any micromanip error in one line with exit code 2, never a traceback."""
    try:
        app()
    except MicromanipError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
