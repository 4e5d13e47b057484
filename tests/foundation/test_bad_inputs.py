"""Bad input, every kind: malformed rig files and bad command-line values each end in one line on stderr
naming the problem, exit code 2, no traceback, and nothing run. The corpora below are what
``benchmarks/bad_inputs.py`` counts."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml

from app.cli import main

ROOT = Path(__file__).resolve().parents[2]


def sim() -> dict:
    return yaml.safe_load((ROOT / "configs" / "sim.yaml").read_text())


def edit(change: Callable[[dict], None]) -> Callable[[Path], bytes]:
    def make(tmp: Path) -> bytes:
        data = sim()
        change(data)
        return yaml.safe_dump(data).encode()
    return make


def text(raw: str) -> Callable[[Path], bytes]:
    return lambda tmp: raw.encode()


def raw(data: bytes) -> Callable[[Path], bytes]:
    return lambda tmp: data


def sim_text() -> str:
    return (ROOT / "configs" / "sim.yaml").read_text()


def set_path(path: str, value) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return change


def weights_file(kind: str) -> Callable[[Path], bytes]:
    """A rig whose depth weights are a damaged file written beside it."""
    def make(tmp: Path) -> bytes:
        write_weights(tmp / f"{kind}.pt", kind)
        data = sim()
        data["control"] = {"weights": {"depth": f"{kind}.pt"}}
        return yaml.safe_dump(data).encode()
    return make


class Planted:
    """Unpickling this runs a shell command (a crafted weights file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_weights(path: Path, kind: str) -> Path:
    from perception.checkpoints import read_checkpoint

    good = read_checkpoint(ROOT / "perception" / "weights" / "depth_classifier.pt")
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        blob = (ROOT / "perception" / "weights" / "depth_classifier.pt").read_bytes()
        path.write_bytes(blob[: len(blob) // 2])
    elif kind == "nan":
        good["state_dict"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                              for k, v in good["state_dict"].items()}
        torch.save(good, path)
    elif kind == "crafted":
        torch.save({**good, "meta": Planted(path.with_suffix(".ran"))}, path)
    elif kind == "wrong-task":
        torch.save({**good, "task": "seg"}, path)
    elif kind == "text":
        path.write_text("these are not weights\n")
    return path


MALFORMED_RIGS: dict[str, tuple[Callable[[Path], bytes], str]] = {
    # encodings and file kinds
    "binary": (raw(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))), "binary file"),
    "utf16-bom": (lambda tmp: sim_text().encode("utf-16"), "UTF-16"),
    "utf16-no-bom": (lambda tmp: sim_text().encode("utf-16-le"), "UTF-16"),
    "latin1": (lambda tmp: ("name: caf\xe9-rig\n" + sim_text().split("\n", 3)[3]).encode("latin-1"), "not UTF-8"),
    "empty": (raw(b""), "empty rig file"),
    "only-comment": (text("# nothing here\n"), "empty rig file"),
    "huge": (lambda tmp: b"# " + b"x" * 1_100_000, "is not a rig file"),
    # YAML structure
    "top-list": (text("- camera\n- stage\n"), "must be a mapping"),
    "top-scalar": (text("just a string\n"), "must be a mapping"),
    "unclosed": (text("name: [unclosed\n"), "not valid YAML at line"),
    "tab-indent": (text("name: x\ncamera:\n\tdriver: sim\n"), "not valid YAML"),
    "duplicate-top": (lambda tmp: (sim_text() + "\ncamera:\n  driver: sim\n").encode(), "key 'camera' given twice"),
    "duplicate-nested": (lambda tmp: sim_text().replace("max_speed_um_s: 3000",
                                                       "max_speed_um_s: 3000\n  max_speed_um_s: 30").encode(),
                         "key 'max_speed_um_s' given twice"),
    # rig fields
    "missing-pump": (edit(lambda d: d.pop("pump")), "pump: Field required"),
    "unknown-top": (edit(set_path("cameras", {"driver": "sim"})), "cameras: unknown field"),
    "unknown-driver": (edit(set_path("camera.driver", "nikon")), "unknown driver 'nikon'"),
    "empty-name": (edit(set_path("name", "")), "name: String should have at least 1 character"),
    "negative-seed": (edit(set_path("seed", -1)), "seed: Input should be greater than or equal to 0"),
    "bad-clock": (edit(set_path("clock", "wallclock")), "clock: Input should be"),
    "objective-na": (edit(set_path("objective.na", 5)), "objective.na"),
    "objective-inf": (text(sim_text().replace("magnification: 40", "magnification: .inf")),
                      "objective.magnification: must be a finite number"),
    # devices
    "camera-unknown-field": (edit(set_path("camera.exposur_ms", 4)), "camera.exposur_ms: unknown field"),
    "speed-word": (edit(set_path("stage.max_speed_um_s", "fast")), "expected a number in um/s"),
    "speed-wrong-unit": (edit(set_path("stage.max_speed_um_s", "3 ms")), "wrong unit 'ms'"),
    "speed-1e12": (edit(set_path("stage.max_speed_um_s", 1e12)), "not a physical speed"),
    "speed-inf": (text(sim_text().replace("max_speed_um_s: 3000", "max_speed_um_s: .inf")), "must be a finite number"),
    "speed-nan": (text(sim_text().replace("max_speed_um_s: 3000", "max_speed_um_s: .nan")), "must be a finite number"),
    "speed-text-inf": (edit(set_path("stage.max_speed_um_s", "inf um/s")), "expected a finite number"),
    "speed-negative": (edit(set_path("stage.max_speed_um_s", "-3 mm/s")), "greater than 0"),
    "limits-reversed": (edit(set_path("stage.x_limits_um", [100, -100])), "min < max"),
    "limits-equal": (edit(set_path("focus.limits_um", [5, 5])), "min < max"),
    "focus-start-outside": (edit(set_path("focus.start_um", 500)), "outside limits_um"),
    "manipulator-home-outside": (edit(set_path("manipulator.home_um", [30000, 0, 0])), "outside limits_um x"),
    "typographic-unit": (edit(set_path("camera.exposure_ms", "500 px")), "typographic unit"),
    "twin-on-sim": (edit(set_path("camera.twin", True)), "a sim device is the twin already"),
    "scene-typo": (edit(set_path("scene.n_sperms", 3)), "scene.n_sperms: unknown field"),
    # control section
    "control-unknown-section": (edit(set_path("control.safty", {})), "control.safty: unknown field"),
    "safety-unknown-key": (edit(set_path("control.safety.floor_um", 3)), "control.safety.floor_um: unknown field"),
    "safety-floor-typed": (edit(set_path("control.safety.floor_z_um", 0)), "control.safety.floor_z_um: unknown field"),
    "safety-negative-margin": (edit(set_path("control.safety.floor_margin_um", "-1 um")), "floor_margin_um"),
    "safety-workspace-reversed": (edit(set_path("control.safety.workspace_um", [[150, -150], [-100, 100], [0, 200]])),
                                  "min < max"),
    "safety-slow-above-max": (edit(set_path("control.safety.slow_speed_um_s", "1 mm/s")), "exceeds max_tip_speed"),
    "states-rate-word": (edit(set_path("control.states.aspirating.rate_nl_s", "fast")), "expected a number in nL/s"),
    "states-unknown-state": (edit(set_path("control.states.aspirate", {})), "control.states.aspirate: unknown field"),
    "pid-negative": (edit(set_path("control.pid.kp", -1)), "control.pid.kp"),
    "pipette-zero-radius": (edit(set_path("control.pipette.inner_radius_um", 0)), "control.pipette.inner_radius_um"),
    "motility-word": (edit(set_path("control.motility", "fast")), "control.motility"),
    "trials-roi": (edit(set_path("control.trials.roi_px", [0, 0, 4, 4])), "roi_px"),
    "trials-zero-sperm": (edit(set_path("control.trials.n_sperm", 0)), "control.trials.n_sperm"),
    "calibration-zero-residual": (edit(set_path("control.calibration.max_residual_um", 0)), "max_residual_um"),
    "weights-missing-file": (edit(set_path("control.weights.depth", "missing.pt")), "no such weights file"),
    "weights-unknown-name": (edit(set_path("control.weights.seg", "nosuchmodel")), "neither a file nor a shipped model"),
    "weights-empty": (weights_file("empty"), "empty file"),
    "weights-truncated": (weights_file("truncated"), "truncated or damaged"),
    "weights-nan": (weights_file("nan"), "non-finite values"),
    "weights-crafted": (weights_file("crafted"), "refused, the file holds more than tensors"),
    "weights-wrong-task": (weights_file("wrong-task"), "trained for 'seg', not 'depth'"),
}


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.mark.parametrize("case", list(MALFORMED_RIGS))
def test_malformed_rig_file_is_one_line_exit_2(case, tmp_path, capsys):
    make, expected = MALFORMED_RIGS[case]
    path = tmp_path / "rig.yaml"
    path.write_bytes(make(tmp_path))
    code, out, err = run_cli(["rig", "check", path], capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expected in lines[0], lines[0]
    assert not list(tmp_path.glob("*.ran"))  # a crafted weights file ran nothing


def test_the_corpus_has_45_malformed_rigs():
    assert len(MALFORMED_RIGS) >= 45


@pytest.fixture
def bad(tmp_path):
    """Files the bad inputs point at."""
    (tmp_path / "notes.txt").write_text("not a database\n")
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE trials (name TEXT)")
    other.commit()
    other.close()
    (tmp_path / "afile").write_text("a file, not a folder\n")
    (tmp_path / "adir").mkdir()
    for kind in ("empty", "truncated", "nan", "crafted", "text"):
        write_weights(tmp_path / f"{kind}.pt", kind)
    (tmp_path / "run").mkdir()
    write_weights(tmp_path / "run" / "last.pt", "crafted")
    (tmp_path / "train.yaml").write_text(yaml.safe_dump({
        "task": "depth", "data": str(tmp_path / "no-data"), "model": {"name": "depth_classifier"},
        "out": str(tmp_path / "run")}))
    return tmp_path


BAD_CLI: dict[str, tuple[list[str], str]] = {
    "seed-negative": (["trials", "--seed", "-1"], "--seed"),
    "log-level": (["--log-level", "BOGUS", "trials"], "'BOGUS' is not a log level"),
    "n-huge": (["trials", "--n", "99999999999999999999999"], "--n"),
    "n-zero": (["trials", "--n", "0"], "--n"),
    "n-word": (["trials", "--n", "ten"], "--n"),
    "workers-zero": (["trials", "--workers", "0"], "--workers"),
    "depth-source": (["trials", "--depth-source", "magic"], "'magic' is not a depth source"),
    "rig-missing": (["trials", "--rig", "{tmp}/missing.yaml"], "cannot read rig file"),
    "db-not-a-database": (["trials", "--db", "{tmp}/notes.txt"], "not an SQLite database"),
    "db-another-programs": (["trials", "--db", "{tmp}/other.db"], "not a micromanip trial log"),
    "db-unwritable": (["trials", "--db", "{tmp}/afile/trials.db"], "not a folder"),
    "db-folder": (["trials", "--db", "{tmp}/adir"], "is a folder"),
    "json-unwritable": (["trials", "--json", "{tmp}/afile/out.json"], "not a folder"),
    "json-folder": (["trials", "--json", "{tmp}/adir"], "is a folder"),
    "json-suffix": (["trials", "--json", "{tmp}/out.txt"], "expected a .json file"),
    "record-unwritable": (["trials", "--record", "{tmp}/afile/rec"], "not a folder"),
    "weights-empty": (["trials", "--depth-weights", "{tmp}/empty.pt"], "empty file"),
    "weights-truncated": (["trials", "--depth-weights", "{tmp}/truncated.pt"], "truncated or damaged"),
    "weights-text": (["trials", "--depth-weights", "{tmp}/text.pt"], "truncated or damaged"),
    "weights-nan": (["trials", "--depth-weights", "{tmp}/nan.pt"], "non-finite values"),
    "weights-crafted": (["trials", "--depth-weights", "{tmp}/crafted.pt"], "refused"),
    "weights-missing": (["trials", "--seg-weights", "{tmp}/missing.pt"], "not found"),
    "eval-crafted": (["eval", "depth", "--data", "{tmp}/adir", "--weights", "{tmp}/crafted.pt"], "refused"),
    "eval-nan": (["eval", "depth", "--data", "{tmp}/adir", "--weights", "{tmp}/nan.pt"], "non-finite"),
    "eval-data-missing": (["eval", "depth", "--data", "{tmp}/nothing"], "no such folder"),
    "eval-task": (["eval", "colour", "--data", "{tmp}/adir"], "No such command 'colour'"),
    "install-crafted": (["install-weights", "{tmp}/crafted.pt", "--name", "x"], "refused"),
    "install-truncated": (["install-weights", "{tmp}/truncated.pt", "--name", "x"], "truncated"),
    "install-bad-name": (["install-weights", "{tmp}/nan.pt", "--name", "../evil"], "--name"),
    "train-config-missing": (["train", "depth", "--config", "{tmp}/none.yaml"], "no such file"),
    "train-resume-crafted": (["train", "depth", "--config", "{tmp}/train.yaml", "--resume"], "refused"),
    "train-epochs": (["train", "depth", "--config", "{tmp}/train.yaml", "--epochs", "-3"], "--epochs"),
    "render-suffix": (["sim", "render", "--out", "{tmp}/frame.gif"], "expected a .png"),
    "render-time-unit": (["sim", "render", "--out", "{tmp}/f.png", "--time-s", "5 parsec"], "--time-s"),
    "render-time-negative": (["sim", "render", "--out", "{tmp}/f.png", "--time-s", "-1"], "outside"),
    "dataset-huge": (["sim", "dataset", "depth", "--out", "{tmp}/ds", "--n-sperm", "99999999999"], "--n-sperm"),
    "export-missing-db": (["export-trials", "--db", "{tmp}/none.db", "--csv", "{tmp}/t.csv"], "no such trial log"),
    "bench-frames": (["bench", "perception", "--frames", "0"], "--frames"),
    "gui-quit-after": (["gui", "--quit-after", "soon"], "--quit-after"),
    "gui-screenshot": (["gui", "--screenshot", "{tmp}/afile/s.png"], "not a folder"),
    "calibrate-rig": (["calibrate", "floor", "--rig", "{tmp}/missing.yaml"], "cannot read rig file"),
    "calibrate-focus-unit": (["calibrate", "camera", "--focus-um", "3 s"], "wrong unit 's'"),
    "rig-check-folder": (["rig", "check", "{tmp}/adir"], "not a file"),
    "unknown-command": (["fly"], "No such command"),
    "unknown-option": (["trials", "--fast"], "No such option"),
}


@pytest.mark.parametrize("case", list(BAD_CLI))
def test_bad_command_line_is_one_line_exit_2(case, bad, capsys):
    args, expected = BAD_CLI[case]
    code, out, err = run_cli([a.replace("{tmp}", str(bad)) for a in args], capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expected in lines[0], lines[0]
    assert not list(bad.rglob("*.ran"))  # no crafted file ran its command
    assert not (bad / "trials.db").exists() and not (bad / "out.json").exists()


def test_destinations_are_checked_before_a_campaign_runs(bad, capsys):
    """--json to an unwritable place used to fail after the whole campaign had run: now nothing runs."""
    code, _, err = run_cli(["trials", "--n", "2", "--db", bad / "log.db", "--json", bad / "afile" / "x.json"], capsys)
    assert code == 2 and "--json" in err
    assert not (bad / "log.db").exists()  # opened to check it, removed again: no campaign started


def test_the_entry_point_itself_reports_one_line(tmp_path):
    bad = tmp_path / "rig.yaml"
    bad.write_bytes("name: x\n".encode("utf-16"))
    proc = subprocess.run([sys.executable, "-m", "app.cli", "rig", "check", str(bad)], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {bad}: UTF-16 text; save the rig file as UTF-8"
