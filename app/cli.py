"""The ``micromanip`` command line. Every subcommand has ``--help``.

Every path and number is checked when the command line is parsed (``app.cli_inputs``), before any work:
output files and trial logs are opened then, rig files and weights read and validated. Any bad input, or
any error micromanip raises on purpose, is one line on stderr with exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from app import __version__
from configs import config_path
from app.cli_inputs import (SEED, count, input_file, input_folder, log_level, output_file, output_folder, quantity,
                            trial_db)
from drivers.errors import MicromanipError

log = logging.getLogger("micromanip")

DEFAULT_RIG = config_path("sim.yaml")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="micromanip: microscope camera + deep-learning perception + micromanipulation robots.")
rig_app = typer.Typer(no_args_is_help=True, help="Inspect and check rig configuration files.")
sim_app = typer.Typer(no_args_is_help=True, help="The digital twin: render frames, generate datasets.")
dataset_app = typer.Typer(no_args_is_help=True, help="Generate synthetic datasets with exact ground truth.")
app.add_typer(rig_app, name="rig")
app.add_typer(sim_app, name="sim")
sim_app.add_typer(dataset_app, name="dataset")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"micromanip {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    level: str = typer.Option("WARNING", "--log-level", callback=log_level,
                              help="console log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)"),
    log_dir: Optional[Path] = typer.Option(None, callback=output_folder, help="folder for the rotating JSON log file"),
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="print the version and exit"),
) -> None:
    from app.logging_setup import configure_logging

    configure_logging(level, log_dir)


def _rig_path(rig: str) -> Path:
    """A shipped rig's name (``sim``, ``rehearsal``: the files in ``configs/``) or a path to a rig YAML."""
    named = config_path(f"{rig}.yaml")
    return named if named.is_file() else Path(rig)


def _checked_rig(rig: str) -> str:
    """--rig: the file is read and validated while the command line is parsed."""
    from app.config import load_rig_config

    load_rig_config(_rig_path(rig))
    return rig


RIG_OPTION = typer.Option("sim", callback=_checked_rig, help="rig name in configs/ (sim, rehearsal) or a YAML path")
WEIGHTS_HELP = "shipped model name or weights file (default: the rig file's control.weights)"


def _with_weights(rig: str, seg: str | None, depth: str | None) -> tuple[str | None, str | None]:
    """Weights from the flags, else the rig file's; each read safely and checked now (finite values, the
    task and model its card names), before any trial."""
    from app.config import load_rig_config
    from perception.checkpoints import load_weights

    weights = load_rig_config(_rig_path(rig)).control.weights
    for name, task in ((seg or weights.seg, "seg"), (depth or weights.depth, "depth")):
        load_weights(name, task)
    return seg, depth


# ----- rig -------------------------------------------------------------------------------------------------
@rig_app.command("check")
def rig_check(path: Path = typer.Argument(..., callback=input_file, help="rig YAML file")) -> None:
    """Validate a rig file (devices, control section, weights) and print its devices; a bad field is
    reported in one line (exit 2). Opens no device: see `rig probe`."""
    from app.config import DEVICE_KINDS, load_rig_config
    from perception.checkpoints import load_weights

    config = load_rig_config(path)
    for role in ("seg", "depth"):
        load_weights(getattr(config.control.weights, role), role)
    typer.echo(f"{path}: rig '{config.name}' OK ({config.clock} clock)")
    for kind in DEVICE_KINDS:
        spec = getattr(config, kind)
        twin = "  (rehearsal: protocol server on the digital twin)" if spec.twin_settings is not None else ""
        typer.echo(f"  {kind:12s} driver={spec.driver}{twin}")
    typer.echo(f"  weights      seg={config.control.weights.seg} depth={config.control.weights.depth}")


@rig_app.command("probe")
def rig_probe(path: Path = typer.Argument(..., callback=input_file, help="rig YAML file")) -> None:
    """Open every device of a rig, report what each one says about itself, and close it again; nothing
    moves. Then the calibration the rig would use. Exit 1 if a device could not be opened."""
    from app.config import load_rig_config
    from app.probe import probe_rig

    lines, ok = probe_rig(load_rig_config(path))
    for line in lines:
        typer.echo(line)
    if not ok:
        raise typer.Exit(1)


# ----- calibrate -------------------------------------------------------------------------------------------
calibrate_app = typer.Typer(no_args_is_help=True, help="Calibrate the rig: floor, camera <-> stage, manipulator -> lab.")
app.add_typer(calibrate_app, name="calibrate")


def _calibrate(part: str, rig: str, focus_um: float | None) -> None:
    from app.calibrate import INSTRUCTIONS, run_calibration
    from app.config import load_rig_config
    from app.rig import build_rig
    from calibration.routines import CalibrationError, classical_tip_px
    from drivers.interfaces import Roi
    from drivers.stop import StopToken

    config = load_rig_config(_rig_path(rig))
    typer.echo(INSTRUCTIONS[part])  # type: ignore[index]
    with build_rig(config) as r:
        if focus_um is not None:
            r.focus.move_to_um(focus_um).wait(10)
        if part == "manipulator":  # a view of the controller's size around the tip: fast frames, the tip in it
            tip = classical_tip_px(r.frames.snap().pixels)
            if tip is None:
                raise CalibrationError("no pipette tip in view: bring the tip near the centre of the view")
            h, w = r.camera.sensor_shape
            rw, rh = config.control.trials.roi_px[2:]
            x, y = int(np.clip(tip[0] - rw / 2, 0, w - rw)), int(np.clip(tip[1] - rh / 2, 0, h - rh))
            r.camera.set_roi(Roi(x, y, rw, rh).on_offset_grid())
        outcome = run_calibration(part, r, r.frames, StopToken(r.clock))  # type: ignore[arg-type]
        typer.echo(f"{part} calibration ACCEPTED: {outcome.report}")
        typer.echo(f"saved to {outcome.store} ({r.objective_key}); now in force: {r.calibration.summary()}")


FOCUS_OPTION = typer.Option(None, "--focus-um", parser=quantity("um", -1e5, 1e5),
                            help="move the focus here first (um, or e.g. '0.5 um'); default: where it is")


@calibrate_app.command("floor")
def calibrate_floor(rig: str = RIG_OPTION, focus_um: Optional[float] = FOCUS_OPTION) -> None:
    """The dish floor's height (focus sweep on settled debris); the floor limit of every tip move."""
    _calibrate("floor", rig, focus_um)


@calibrate_app.command("camera")
def calibrate_camera(rig: str = RIG_OPTION, focus_um: Optional[float] = FOCUS_OPTION) -> None:
    """Camera <-> stage: pixel size, rotation and flip from small stage moves."""
    _calibrate("camera", rig, focus_um)


@calibrate_app.command("manipulator")
def calibrate_manipulator(rig: str = RIG_OPTION, focus_um: Optional[float] = FOCUS_OPTION) -> None:
    """Manipulator -> lab: a 3-D affine map from a pattern of tip moves (RANSAC); needs the camera's."""
    _calibrate("manipulator", rig, focus_um)


# ----- sim -------------------------------------------------------------------------------------------------
@sim_app.command("render")
def sim_render(
    out: Path = typer.Option(..., "--out", callback=output_file(".png", ".tif", ".tiff"),
                             help="image to write (full sensor frame)"),
    seed: int = typer.Option(0, **SEED, help="scene seed"),
    rig: str = RIG_OPTION,
    time_s: float = typer.Option("0.5", parser=quantity("s", 0, 3600),
                                 help="simulated time to let the scene evolve first (s, or e.g. '500 ms')"),
    truth: Optional[Path] = typer.Option(None, callback=output_file(".json"),
                                         help="also write the frame's ground truth as JSON"),
) -> None:
    """Render one full frame of the default scene."""
    import cv2

    from app.config import load_rig_config
    from app.rig import build_rig

    with build_rig(load_rig_config(_rig_path(rig)), seed=seed) as r:
        r.clock.sleep(time_s)
        frame = r.frames.snap()
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
    out: Path = typer.Option(..., "--out", callback=output_folder, help="output folder"),
    n_sperm: int = typer.Option(232, **count(1, 100_000), help="cells; each gives 9 crops (-2.0 ... +2.0 um)"),
    seed: int = typer.Option(0, **SEED),
) -> None:
    """Depth z-stacks: 96x96 head crops in one folder per depth class, plus manifest.csv."""
    from sim.datasets import DepthDatasetSpec, generate_depth_dataset

    manifest = generate_depth_dataset(DepthDatasetSpec(n_sperm=n_sperm, seed=seed), out)
    typer.echo(f"wrote {n_sperm * 9} crops, manifest {manifest}")


@dataset_app.command("seg")
def dataset_seg(
    out: Path = typer.Option(..., "--out", callback=output_folder, help="output folder"),
    n_tiles: int = typer.Option(400, **count(1, 1_000_000), help="256x256 tiles"),
    seed: int = typer.Option(0, **SEED),
    min_um_per_px: float = typer.Option(0.28, help="finest network pixel size drawn"),
    max_um_per_px: float = typer.Option(0.7, help="coarsest network pixel size drawn"),
) -> None:
    """Segmentation tiles of randomised rigs with label masks (0 background, 1 head, 2 flagellum, 3 pipette,
    255 ignored), each at a network pixel size drawn from the range."""
    from sim.seg_dataset import generate_seg_dataset

    if not 0.05 < min_um_per_px <= max_um_per_px:
        raise MicromanipError("--min-um-per-px must be > 0.05 and <= --max-um-per-px")
    manifest = generate_seg_dataset(n_tiles, seed, out, um_per_px=(min_um_per_px, max_um_per_px))
    typer.echo(f"wrote {n_tiles} tiles, manifest {manifest}")


@dataset_app.command("tracks")
def dataset_tracks(
    out: Path = typer.Option(..., "--out", callback=output_folder, help="output folder"),
    n_seq: int = typer.Option(2, **count(1, 10_000), help="sequences"),
    n_frames: int = typer.Option(80, **count(1, 100_000), help="frames per sequence (40 fps)"),
    seed: int = typer.Option(0, **SEED),
    rig: str = RIG_OPTION,
) -> None:
    """Frame sequences (640x480 ROI) with ground-truth ids and positions in tracks.csv."""
    from app.config import load_rig_config
    from app.tracks import generate_tracks

    path = generate_tracks(load_rig_config(_rig_path(rig)), n_seq, n_frames, seed, out)
    typer.echo(f"wrote {n_seq} sequences, truth {path}")


# ----- training --------------------------------------------------------------------------------------------
TASK_HELP = "seg | depth | otmr-pose | otmr-depth"
TASKS = ("seg", "depth", "otmr-pose", "otmr-depth")


def _task(task: str) -> str:
    if task not in TASKS:
        raise typer.BadParameter(f"{task!r} is not a task ({', '.join(TASKS)})")
    return task


def _train_config(config: Path) -> Path:
    """--config: a training YAML, or the name of a shipped one (works from a wheel install)."""
    shipped = config_path(f"train/{config}.yaml")
    return shipped if not config.is_file() and shipped.is_file() else input_file(config)


def _split(split: str) -> str:
    if split not in ("auto", "test", "val", "all"):
        raise typer.BadParameter(f"{split!r} is not a split (auto, test, val, all)")
    return split


@app.command("train")
def train_cmd(
    task: str = typer.Argument(..., callback=_task, help=TASK_HELP),
    config: Path = typer.Option(..., "--config", callback=_train_config,
                                help="training YAML, or a shipped config's name (configs/train/: depth, seg, "
                                     "otmr-pose, otmr-depth)"),
    resume: bool = typer.Option(False, help="continue from OUT/last.pt (read with weights_only: tensors and numbers)"),
    epochs: Optional[int] = typer.Option(None, **count(1, 100_000), help="override the config's epochs"),
    out: Optional[Path] = typer.Option(None, callback=output_folder, help="override the output folder"),
    real_video: Optional[Path] = typer.Option(None, callback=input_folder,
                                              help="seg: override the labelled real video's folder"),
) -> None:
    """Train a perception model (CPU, one GPU, or DDP under torchrun) with best-on-validation checkpoints."""
    from perception.training.config import load_train_config
    from perception.training.loop import train

    overrides = {k: v for k, v in {"epochs": epochs, "out": out, "real_video": real_video}.items() if v is not None}
    cfg = load_train_config(config, overrides)
    if cfg.task != task:
        raise MicromanipError(f"{config}: task is {cfg.task!r}, not {task!r}")
    if resume and (cfg.out / "last.pt").is_file():  # refused now, not after the dataset has been read
        from perception.checkpoints import read_checkpoint

        read_checkpoint(cfg.out / "last.pt")
    metrics = train(cfg, resume=resume)
    typer.echo(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, list)}, indent=1))


eval_app = typer.Typer(no_args_is_help=True, help="Evaluate perception: a trained model on its dataset, or head "
                                                   "detection and tracking on labelled video.")
app.add_typer(eval_app, name="eval")


def _eval_model_command(task: str) -> None:
    def cmd(
        data: Path = typer.Option(..., callback=input_folder, help="dataset folder"),
        weights: Optional[str] = typer.Option(None, help="weights file or shipped name (default: the shipped model)"),
        split: str = typer.Option("auto", callback=_split,
                                  help="auto (test split of the training data, else all) | test | val | all"),
        json_out: Optional[Path] = typer.Option(None, "--json", callback=output_file(".json"),
                                                help="metrics JSON (a Markdown table is written beside it)"),
    ) -> None:
        from perception.training.evaluate import evaluate, write_reports

        metrics = evaluate(task, data, weights, split)
        typer.echo(write_reports(task, metrics, json_out))

    cmd.__doc__ = f"Evaluate the {task} model on a dataset; prints a Markdown table."
    eval_app.command(task)(cmd)


for _model_task in ("seg", "depth", "otmr-pose", "otmr-depth"):
    _eval_model_command(_model_task)


@eval_app.command("heads")
def eval_heads_cmd(
    labels: Path = typer.Option(..., help="head labels: COCO-video .json, MOTChallenge gt .txt, or a Pascal VOC folder"),
    input_path: Optional[Path] = typer.Option(None, "--input", help="video, image folder or multi-page TIFF to run on"),
    pred: Optional[Path] = typer.Option(None, help="score a finished MOTChallenge .txt instead of running (--input)"),
    um_per_px: Optional[float] = typer.Option(None, help="the input's pixel size at the sample (um), with --input"),
    fps: Optional[float] = typer.Option(None, help="frame rate (default: the video's own)"),
    frames: Optional[str] = typer.Option(None, help="A:B, 0-based frames of the input to score (B excluded)"),
    weights: Optional[str] = typer.Option(None, help="segmentation weights file or shipped name, with --input "
                                                     "(default: the shipped model)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the figures as JSON"),
) -> None:
    """Score head detection (precision, recall, F1: a head counts when its centre lies in a labelled box,
    one-to-one) and, where the labels carry track ids, tracking (MOTA, IDF1, HOTA)."""
    from app.recordings import eval_heads, format_report, write_json

    report = eval_heads(labels, input_path, pred, um_per_px, fps, frames, seg_weights=weights)
    if json_out is not None:
        write_json(report, json_out)
    typer.echo(format_report(report))


@app.command("track")
def track_cmd(
    input_path: Path = typer.Argument(..., metavar="INPUT", help="video file, folder of images (name order) or multi-page TIFF"),
    um_per_px: Optional[float] = typer.Option(None, help="pixel size at the sample (um); required"),
    fps: Optional[float] = typer.Option(None, help="frame rate (default: the video's own; required for images)"),
    out: Path = typer.Option(..., "--out", help="MOTChallenge text to write: frame,id,x,y,w,h,conf,-1,-1,-1"),
    frames: Optional[str] = typer.Option(None, help="A:B, 0-based frames to process (B excluded)"),
) -> None:
    """Detect and track sperm heads over a recording at any size and pixel size (resampled to the network's
    own scale); writes one row per tracked head and frame (frame 1-based, box in the input's pixels)."""
    from app.recordings import track_to_mot

    s = track_to_mot(input_path, um_per_px, fps, out, frames)
    typer.echo(f"wrote {s['out']}: {s['rows']} rows, {s['tracks']} tracks over {s['frames']} frames "
               f"({s['fps']:.1f} frames/s)")


@app.command("install-weights")
def install_weights_cmd(
    checkpoint: Path = typer.Argument(..., callback=input_file,
                                      help="best.pt from a training run (read with weights_only: tensors and numbers)"),
    name: str = typer.Option(..., help="shipped name, e.g. depth_classifier"),
    data_note: str = typer.Option("", help="what data it was trained on, for the model card"),
    command: str = typer.Option("make weights", help="the command that rebuilt it, for the model card"),
) -> None:
    """Copy a checkpoint into perception/weights/ (no optimizer state) and write its model card."""
    from perception.training.export import install_weights

    path = install_weights(checkpoint, name, command, data_note)
    typer.echo(f"installed {path} ({path.stat().st_size / 1e6:.2f} MB)")


# ----- trials ----------------------------------------------------------------------------------------------
def _engine(value: str) -> str:
    if value not in ("local", "ray"):
        raise typer.BadParameter(f"--engine must be local or ray, not {value!r}")
    return value


def _depth_source(value: str) -> str:
    if value not in ("net", "oracle", "dff", "focal", "none"):
        raise typer.BadParameter(f"{value!r} is not a depth source (net, oracle, dff, focal, none)")
    return value


@app.command("trials")
def trials_cmd(
    rig: str = RIG_OPTION,
    n: int = typer.Option(10, **count(1, 100_000), help="number of trials"),
    seed: int = typer.Option(0, **SEED, help="campaign seed (trial i uses its own derived seed)"),
    motile: bool = typer.Option(True, "--motile/--immotile", help="target motile or immotile cells"),
    depth_source: str = typer.Option("net", callback=_depth_source, help="net | oracle | dff | focal | none"),
    json_out: Optional[Path] = typer.Option(None, "--json", callback=output_file(".json"),
                                            help="write the summary as JSON"),
    db: Optional[Path] = typer.Option(None, callback=trial_db(create=True), help="SQLite trial log"),
    resume: bool = typer.Option(False, "--resume", help="continue the campaign found in --db (its finished trials"
                                " are kept, the others run)"),
    workers: int = typer.Option(2, **count(1, 1024),
                                help="parallel processes (--engine local); CPUs of the local Ray instance"),
    engine: str = typer.Option("local", callback=_engine, help="local (process pool) | ray (a task per trial)"),
    ray_address: Optional[str] = typer.Option(None, help="HOST:PORT of a Ray cluster (default: start a local one)"),
    record: Optional[Path] = typer.Option(None, callback=output_folder,
                                          help="record every trial (OME-TIFF frames, estimates, transitions) here"),
    seg_weights: Optional[str] = typer.Option(None, help=WEIGHTS_HELP),
    depth_weights: Optional[str] = typer.Option(None, help=WEIGHTS_HELP),
    inject: Optional[list[str]] = typer.Option(
        None, "--inject", help="rehearsal rigs: inject a device fault in every trial, DEVICE:FAULT@STATE (devices "
        "camera, stage, focus, manipulator, pump; faults drop_reply, garbage, error_code, delay, disconnect, stall; "
        "armed when the controller first enters STATE, e.g. pump:disconnect@Aspirating); repeatable"),
) -> None:
    """Run a campaign of closed-loop aspiration trials and print the table."""
    from app.trials import format_table, run_campaign

    _check_run_options(resume=resume, db=db)
    weights = _with_weights(rig, seg_weights, depth_weights)
    motility = "motile" if motile else "immotile"
    summary = run_campaign(_rig_path(rig), n, seed, motility, depth_source, db, workers, resume=resume,
                           engine=engine, ray_address=ray_address, record=record, weights=weights,
                           inject=tuple(inject or ()))
    typer.echo(format_table(summary, f"{motility} cells, depth source '{depth_source}'"))
    _write_json(json_out, summary)


def _check_run_options(*, resume: bool = False, db: Optional[Path] = None) -> None:
    if resume and db is None:
        raise MicromanipError("--resume needs --db (the log to continue)")


def _write_json(path: Optional[Path], data: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(data, indent=1))


@app.command("sweep")
def sweep_cmd(
    sweep_file: Path = typer.Argument(..., callback=input_file, help="sweep YAML (configs/sweeps/*.yaml)"),
    db: Path = typer.Option(..., callback=trial_db(create=True),
                            help="SQLite trial log: one campaign per condition, under the sweep"),
    json_out: Optional[Path] = typer.Option(None, "--json", callback=output_file(".json"),
                                            help="write every condition's summary as JSON"),
    resume: bool = typer.Option(False, "--resume", help="continue the sweep found in --db"),
    workers: int = typer.Option(2, **count(1, 1024),
                                help="parallel processes (--engine local); CPUs of the local Ray instance"),
    engine: str = typer.Option("local", callback=_engine, help="local (process pool) | ray (a task per trial)"),
    ray_address: Optional[str] = typer.Option(None, help="HOST:PORT of a Ray cluster (default: start a local one)"),
    check: bool = typer.Option(False, "--check", help="validate the sweep file and list its conditions; run nothing"),
) -> None:
    """N trials under each condition of a grid or list over rig, scene and controller parameters."""
    from app.campaign_engine import make_engine
    from app.sweep import format_sweep_table, load_sweep, run_sweep

    _check_run_options(resume=resume, db=db)
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
    db: Path = typer.Argument(..., callback=trial_db(create=False), help="SQLite trial log"),
    out: Path = typer.Option(..., "--out", callback=output_folder, help="folder for the figures (PNG) and report.md"),
) -> None:
    """Figures (success with Wilson 95% bands against each swept factor, failure modes, time to aspirate,
    depth error against outcome) and a Markdown summary of every sweep and campaign in a trial log."""
    from app.report import write_report

    path = write_report(db, out)
    typer.echo(f"wrote {path}")


@app.command("export-trials")
def export_trials_cmd(
    db: Path = typer.Option(..., callback=trial_db(create=False), help="SQLite trial log"),
    csv_out: Path = typer.Option(..., "--csv", callback=output_file(".csv"), help="CSV file to write"),
) -> None:
    """Export every finished trial of a trial log to CSV."""
    from app.trial_log import TrialLog

    with TrialLog(db, create=False) as log_db:
        path = log_db.export_csv(csv_out)
    typer.echo(f"wrote {path}")


# ----- benchmarks ------------------------------------------------------------------------------------------
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print tables and write JSON.")
app.add_typer(bench_app, name="bench")


@bench_app.command("perception")
def bench_perception_cmd(
    rig: str = RIG_OPTION,
    frames: int = typer.Option(200, **count(1, 100_000), help="frames streamed at the camera's frame rate"),
    full_frame: bool = typer.Option(False, help="process the full 1920x1200 frame instead of the controller ROI"),
    json_out: Optional[Path] = typer.Option(None, "--json", callback=output_file(".json"),
                                            help="write the result as JSON"),
) -> None:
    """Capture-to-estimate latency, fps, dropped frames and per-stage medians with the shipped models."""
    from app.config import load_rig_config
    from app.bench_perception import perception_benchmark

    path = _rig_path(rig)
    settings = load_rig_config(path).control.trials
    result = perception_benchmark(path, frames, None if full_frame else settings.roi_px)
    lat = result["latency_ms"]
    typer.echo("| region | frames | processed | dropped | fps | latency median ms | latency p99 ms | stages (median ms) |")
    typer.echo("|---|---|---|---|---|---|---|---|")
    stages = ", ".join(f"{k.removesuffix('_ms')} {v:.1f}" for k, v in result["stages_ms"].items())
    typer.echo(f"| {result['roi_px'][0]}x{result['roi_px'][1]} | {result['frames']} | {result['processed']} | "
               f"{result['dropped_frames']} | {result['fps']:.1f} | {lat['median']:.1f} | {lat['p99']:.1f} | {stages} |")
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=1))


# ----- gui -------------------------------------------------------------------------------------------------
@app.command("gui")
def gui_cmd(
    rig: str = RIG_OPTION,
    seed: int = typer.Option(0, **SEED),
    screenshot: Optional[Path] = typer.Option(None, callback=output_file(".png"),
                                              help="save a PNG of the window before quitting"),
    quit_after: Optional[float] = typer.Option(None, parser=quantity("s", 0, 86400),
                                               help="close after this long (s, or e.g. '2 min')"),
    autostart: bool = typer.Option(False, help="start an aspiration trial as soon as the window is up"),
    db: Optional[Path] = typer.Option(None, callback=trial_db(create=True),
                                      help="SQLite trial log for the window's trials (default: trials.db in the "
                                           "user data folder)"),
    record: Optional[Path] = typer.Option(None, callback=output_folder,
                                          help="record from the start into this folder (the Record button's folder)"),
) -> None:
    """Open the operator window on the simulated or the real rig."""
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from app.gui.main_window import MainWindow
    from app.gui.session import LiveSession
    from calibration.store import data_dir

    qt = QApplication.instance() or QApplication(sys.argv[:1])
    session = LiveSession(_rig_path(rig), seed)
    window = MainWindow(session, db=db or data_dir() / "trials.db", record_dir=record)
    window.stop_on_signals()
    window.show()
    session.start()
    if record is not None:
        window.record_button.setChecked(True)
    if autostart:
        QTimer.singleShot(1500, window.start_trial)
    if quit_after is not None:
        def finish() -> None:
            if screenshot is not None:
                window.grab().save(str(screenshot))
            window.close()
            qt.quit()

        QTimer.singleShot(int(quit_after * 1000), finish)
    qt.exec()


# ----- demo ------------------------------------------------------------------------------------------------
@app.command("demo")
def demo(
    n: int = typer.Option(6, **count(1, 10_000), help="trials"),
    seed: int = typer.Option(0, **SEED),
    rig: str = RIG_OPTION,
    workers: int = typer.Option(2, **count(1, 64), help="parallel processes"),
) -> None:
    """Main job on the simulated rig with the shipped models: a short campaign and its result table."""
    from app.trials import format_table, run_campaign

    summary = run_campaign(_rig_path(rig), n, seed, "motile", "net", None, workers)
    typer.echo(format_table(summary, "demo: motile cells, shipped UNeXt + FGAF depth classifier"))


def _click_error(name: str) -> type[Exception]:
    """Click's exception class ``name`` as typer raises it (typer may vendor its own copy of click)."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


def main(argv: list[str] | None = None) -> None:
    """Entry point: report any bad input or micromanip error in one line with exit code 2, never a traceback."""
    usage_error, click_exception = _click_error("UsageError"), _click_error("ClickException")
    try:
        code = app(args=argv, prog_name="micromanip", standalone_mode=False)
    except MicromanipError as exc:
        typer.echo(f"error: {_one_line(str(exc))}", err=True)
        sys.exit(2)
    except usage_error as exc:  # type: ignore[misc]
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]
            sys.exit(2)
        where = f"{exc.ctx.command_path}: " if getattr(exc, "ctx", None) is not None else ""  # type: ignore[attr-defined]
        typer.echo(f"error: {where}{_one_line(exc.format_message())}", err=True)  # type: ignore[attr-defined]
        sys.exit(2)
    except click_exception as exc:  # type: ignore[misc]
        typer.echo(f"error: {_one_line(exc.format_message())}", err=True)  # type: ignore[attr-defined]
        sys.exit(getattr(exc, "exit_code", 1))
    except (KeyboardInterrupt, typer.Abort):
        typer.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    main()
