"""Sweeps on a real two-node Ray cluster (head + worker node, separate processes, 127.0.0.1): trials
recorded as they arrive by the driver alone, a worker killed mid-trial twice (retried once, then an error
row), weights shipped once per node, and a driver killed with SIGKILL then resumed with nothing lost and
nothing run twice. Skipped, with the reason, where Ray cannot start."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.ray_cluster import LocalCluster, ray_processes, start_cluster

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
TASK_TITLE = "ray::micromanip-trial-"


@pytest.fixture(scope="module")
def cluster():
    c, why = start_cluster(cpus_per_node=1)
    if c is None:
        pytest.skip(f"no local Ray cluster: {why}")
    yield c
    c.stop()


def short_sweep(folder: Path, name: str) -> Path:
    """Two conditions x two short trials on the simulated rig with oracle perception (no trained weights
    needed to run it, though the engine ships them all the same)."""
    rig = yaml.safe_load((ROOT / "configs" / "sim.yaml").read_text())
    rig["control"] = {"trials": {"xy_source": "oracle", "max_trial_s": 3}}
    (folder / "rig.yaml").write_text(yaml.safe_dump(rig))
    sweep = {"name": name, "rig": "rig.yaml", "trials_per_condition": 2, "seed": 4, "depth_source": "oracle",
             "grid": {"scene.swim_speed_scale": [0.8, 1.2]}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def sweep_cmd(sweep: Path, db: Path, cluster: LocalCluster, *extra: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", "sweep", str(sweep), "--db", str(db), "--engine", "ray",
            "--ray-address", cluster.address, *extra]


def driver_env(cluster: LocalCluster) -> dict[str, str]:
    return {**os.environ, **cluster.env}


def rows(db: Path, what: str = "campaign_id, trial_index, start, end, outcome, failure_mode, worker") -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(f"SELECT {what} FROM trials ORDER BY campaign_id, trial_index").fetchall()
    finally:
        con.close()


def kill_one_trial_twice(timeout_s: float) -> str | None:
    """SIGKILL the first worker seen running a trial, then the worker that runs the same task again (Ray's
    one retry); returns the task's title, None if that did not happen in time."""
    first: tuple[int, str] | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        procs = ray_processes(TASK_TITLE)
        if first is None and procs:
            first = min(procs.items())
            os.kill(first[0], signal.SIGKILL)
        elif first is not None:
            again = [pid for pid, title in procs.items() if title == first[1] and pid != first[0]]
            if again:
                os.kill(again[0], signal.SIGKILL)
                return first[1]
        time.sleep(0.02)
    return None


def test_sweep_on_two_nodes_with_a_worker_killed_mid_trial(cluster, tmp_path):
    sweep = short_sweep(tmp_path, "killed-worker")
    db, out = tmp_path / "log.db", tmp_path / "sweep.json"
    proc = subprocess.Popen(sweep_cmd(sweep, db, cluster, "--json", str(out)), cwd=ROOT, env=driver_env(cluster),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        killed = kill_one_trial_twice(timeout_s=300)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert killed is not None, "no trial task was seen running"
    assert proc.returncode == 0, stderr[-3000:]
    got = rows(db)
    assert [(r[0], r[1]) for r in got] == [(1, 0), (1, 1), (2, 0), (2, 1)]  # every trial once, none dropped
    errors = [r for r in got if r[4] == "error"]
    assert len(errors) == 1 and errors[0][5] == "worker_lost"  # killed twice: retried once, then an error row
    error_text = rows(db, "error")
    assert any(e[0] and "Error" in e[0] for e in error_text)
    ran = [r for r in got if r[4] != "error"]
    assert all(r[4] in ("success", "failed") for r in ran)
    nodes = {r[6].rsplit(" node ", 1)[1] for r in ran}
    assert len(nodes) == 2, got  # the worker node ran trials too
    # the weights reached each node once: one content-addressed file per model in each node's own folder
    for node_tmp in cluster.node_tmp:
        files = sorted(p.name for p in node_tmp.glob("micromanip-weights-*/*.pt"))
        assert len(files) == 2 and any("unext_seg" in f for f in files) and any("depth_classifier" in f for f in files)
    summary = json.loads(out.read_text())
    assert [c["n"] for c in summary["conditions"]] == [2, 2]
    assert sum(c["errors"] for c in summary["conditions"]) == 1
    assert "sweep killed-worker: 2 conditions x 2 trials" in stdout
    con = sqlite3.connect(db)
    sweep_row = con.execute("SELECT name, software_json FROM sweeps").fetchone()
    camp = con.execute("SELECT engine, software_json, calibration_json, params_json FROM campaigns").fetchall()
    con.close()
    assert sweep_row[0] == "killed-worker" and json.loads(sweep_row[1])["engine"]["engine"] == "ray"
    assert all(c[0] == "ray" for c in camp)
    assert all(json.loads(c[2])["camera"]["pixel_size_um"] > 0 for c in camp)  # the calibration the trials used
    assert [json.loads(c[3])["condition"]["factors"]["scene.swim_speed_scale"] for c in camp] == [0.8, 1.2]


def test_driver_killed_mid_sweep_then_resumed_loses_and_repeats_nothing(cluster, tmp_path):
    sweep = short_sweep(tmp_path, "killed-driver")
    db = tmp_path / "log.db"
    proc = subprocess.Popen(sweep_cmd(sweep, db, cluster), cwd=ROOT, env=driver_env(cluster),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 400
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            try:
                if db.exists() and rows(db, "COUNT(*)")[0][0] >= 1:
                    break
            except sqlite3.OperationalError:
                pass
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    before = rows(db)
    assert 1 <= len(before) < 4, before  # killed mid-sweep with finished trials in the log
    events_before = rows(db, "campaign_id, trial_index, (SELECT COUNT(*) FROM events e WHERE e.trial_id = trials.id)")

    again = subprocess.run(sweep_cmd(sweep, db, cluster), cwd=ROOT, env=driver_env(cluster), capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    resumed = subprocess.run(sweep_cmd(sweep, db, cluster, "--resume"), cwd=ROOT, env=driver_env(cluster),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = rows(db)
    assert [(r[0], r[1]) for r in after] == [(1, 0), (1, 1), (2, 0), (2, 1)]  # 0 lost, 0 duplicated
    assert set(before) <= set(after)  # the finished trials are kept as they were
    events_after = rows(db, "campaign_id, trial_index, (SELECT COUNT(*) FROM events e WHERE e.trial_id = trials.id)")
    assert set(events_before) <= set(events_after)
    con = sqlite3.connect(db)
    assert con.execute("SELECT COUNT(*) FROM campaigns").fetchone()[0] == 2
    assert con.execute("SELECT COUNT(*) FROM sweeps").fetchone()[0] == 1
    con.close()
