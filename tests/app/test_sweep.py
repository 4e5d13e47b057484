"""Sweep files: strict validation (one line, exit code 2, before anything runs), conditions expanded as
written, each condition's rig changed where it says; a short sweep on the local engine recorded whole."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from app.sweep import load_sweep
from drivers.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(folder: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


BASE = "name: s\nrig: sim\ntrials_per_condition: 3\n"


def test_a_grid_is_every_combination_in_the_order_given(tmp_path):
    sweep = load_sweep(write(tmp_path, BASE + "seed: 2\nset: {control.trials.max_trial_s: 5}\ngrid:\n"
                             "  scene.swim_speed_scale: [0.5, 1.5]\n  depth_source: [oracle, none]\n"))
    assert [p.label for p in sweep.plans] == ["swim_speed_scale=0.5, depth_source=oracle",
                                              "swim_speed_scale=0.5, depth_source=none",
                                              "swim_speed_scale=1.5, depth_source=oracle",
                                              "swim_speed_scale=1.5, depth_source=none"]
    assert sweep.factors == ["scene.swim_speed_scale", "depth_source"]
    first = sweep.plans[0]
    assert first.rig_data["scene"]["swim_speed_scale"] == 0.5 and first.rig_data["scene"]["n_sperm"] == 14
    assert first.rig_data["control"]["trials"]["max_trial_s"] == 5 and first.depth_source == "oracle"
    assert [s.seed for s in first.specs(set())] == [s.seed for s in sweep.plans[3].specs(set())]  # same scenes
    assert len({p.key for p in sweep.plans}) == 4
    assert load_sweep(tmp_path / "sweep.yaml").key == sweep.key  # found again on resume


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_sweep_files_are_valid(path):
    sweep = load_sweep(path)
    assert sweep.plans and sweep.factors


def test_a_list_of_conditions_with_labels_and_nested_values(tmp_path):
    sweep = load_sweep(write(tmp_path, BASE + "conditions:\n  - {label: nominal}\n  - label: offset tip\n"
                             "    set: {control.trials.miscalibration.manipulator_offset_um: [0, 0, 2]}\n"
                             "  - set: {scene.motility_mix: {rapid_progressive: 1}, motility: immotile}\n"))
    assert [p.label for p in sweep.plans] == ["nominal", "offset tip",
                                              'motility_mix={"rapid_progressive":1}, motility=immotile']
    assert sweep.plans[1].rig_data["control"]["trials"]["miscalibration"]["manipulator_offset_um"] == [0, 0, 2]
    assert sweep.plans[2].motility == "immotile"


@pytest.mark.parametrize("body, message", [
    ("grid: {scene.swim_speed_scale: [1.0]}\ngrid: {scene.swim_speed_scale: [2.0]}\n", "given twice"),
    ("grid: {scene.swim_speed_scale: [.nan]}\n", "finite"),
    ("grid: {scene.swim_speed_scale: [.inf]}\n", "finite"),
    ("grid: {scene.swim_speed_scale: [1.0e+12]}\n", "finite"),
    ("grid: {scene.swim_speed_scale: [9]}\n", "scene.swim_speed_scale"),
    ("grid: {scene.no_such_field: [1]}\n", "scene.no_such_field: unknown field"),
    ("grid: {camera.sensor.read_noise: [3]}\n", "camera.sensor.read_noise: unknown field"),
    ("grid: {scene.n_sperm: [3]}\n", "control.trials.n_sperm"),
    ("grid: {rig.thing: [3]}\n", "not a factor"),
    ("grid: {scene.swim_speed_scale: [1, 1]}\n", "given twice"),
    ("grid: {scene.swim_speed_scale: []}\n", "1-100 values"),
    ("grid: {depth_source: [sonar]}\n", "depth_source must be one of"),
    ("grid: {control.weights.depth: [nowhere/depth.pt]}\n", "control.weights.depth"),
    ("grid: {control.trials.perception_latency_s: [-1]}\n", "perception_latency_s"),
    ("grid: {focus.drift_um_s: [99]}\n", "focus.drift_um_s"),
    ("conditions: [{label: a}, {label: a}]\n", "labelled 'a'"),
    ("conditions: [{label: a}]\ngrid: {scene.swim_speed_scale: [1]}\n", "either grid"),
    ("surprise: 1\ngrid: {scene.swim_speed_scale: [1]}\n", "surprise: unknown field"),
])
def test_bad_sweep_files_are_refused_in_one_line(tmp_path, body, message):
    with pytest.raises(ConfigError) as err:
        load_sweep(write(tmp_path, BASE + body))
    text = str(err.value)
    assert message in text and "\n" not in text and str(tmp_path / "sweep.yaml") in text


@pytest.mark.parametrize("text, message", [
    ("name: s\nrig: sim\n", "trials_per_condition"),
    ("name: 'bad name!'\nrig: sim\ntrials_per_condition: 1\ngrid: {motility: [motile]}\n", "name"),
    ("- just\n- a list\n", "must be a mapping"),
    ("name: s\nrig: nowhere.yaml\ntrials_per_condition: 1\ngrid: {motility: [motile]}\n", "cannot read"),
    ("name: s\nrig: sim\ntrials_per_condition: 0\ngrid: {motility: [motile]}\n", "trials_per_condition"),
    ("name: s\nrig: sim\ntrials_per_condition: 200000\ngrid: {motility: [motile]}\n", "trials_per_condition"),
    ("name: [unclosed\n", "not valid YAML"),
])
def test_bad_sweep_headers_are_refused(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(write(tmp_path, text))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("args, message", [
    (["--engine", "spark"], "--engine must be local or ray"),
    (["--engine", "ray", "--ray-address", "nohost"], "--ray-address must be HOST:PORT"),
    (["--engine", "ray", "--ray-address", "10.0.0.1:99999"], "--ray-address must be HOST:PORT"),
    (["--ray-address", "127.0.0.1:6379"], "--ray-address needs --engine ray"),
    (["--workers", "0"], "Invalid value for '--workers'"),
])
def test_bad_command_lines_exit_2_with_one_line(tmp_path, args, message):
    path = write(tmp_path, BASE + "grid: {motility: [motile]}\n")
    out = run_cli("sweep", str(path), "--db", str(tmp_path / "x.db"), *args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists()  # nothing started


def test_check_lists_the_conditions(tmp_path):
    path = write(tmp_path, BASE + "grid: {camera.sensor.read_noise_e: [7, 30]}\n")
    out = run_cli("sweep", str(path), "--db", str(tmp_path / "x.db"), "--check")
    assert out.returncode == 0, out.stderr
    assert "2 conditions x 3 trials" in out.stdout and "read_noise_e=30" in out.stdout


@pytest.mark.slow
def test_a_short_sweep_on_the_local_engine_is_recorded_whole(tmp_path):
    from app.campaign_engine import LocalEngine
    from app.report import write_report
    from app.sweep import run_sweep

    rig = yaml.safe_load((ROOT / "configs" / "sim.yaml").read_text())
    rig["control"] = {"trials": {"xy_source": "oracle", "max_trial_s": 3}}
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(rig))
    path = write(tmp_path, "name: local\nrig: rig.yaml\ntrials_per_condition: 1\ndepth_source: oracle\n"
                           "conditions:\n  - {label: nominal}\n  - label: miscalibrated\n"
                           "    set: {control.trials.miscalibration.camera_rotation_deg: 2, focus.drift_um_s: 0.2}\n")
    db = tmp_path / "log.db"
    result = run_sweep(path, db, LocalEngine(workers=1), progress=False)
    assert [c["n"] for c in result["conditions"]] == [1, 1]
    con = sqlite3.connect(db)
    cal = [json.loads(r[0]) for r in con.execute("SELECT calibration_json FROM campaigns ORDER BY id")]
    rig_used = [json.loads(r[0]) for r in con.execute("SELECT config_json FROM campaigns ORDER BY id")]
    con.close()
    assert cal[0]["camera"]["rotation_deg"] == 0 and cal[1]["camera"]["rotation_deg"] == 2  # as the trials used
    assert cal[1]["miscalibration"]["camera_rotation_deg"] == 2
    assert rig_used[1]["focus"]["drift_um_s"] == 0.2 and "drift_um_s" not in rig_used[0]["focus"]
    report = write_report(db, tmp_path / "report")
    assert "| miscalibrated | 1 |" in report.read_text()
