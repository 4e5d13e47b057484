"""What a user installs from the wheel: every file the code reads ships in it, the command and version
work, the extras are declared. `tests/wheel_check.py` (`make wheel-check`) goes further and runs the main
job from a fresh venv outside the checkout (minutes, so not part of every test run)."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
from packaging.requirements import Requirement

from tests.conftest import ROOT
from tests.wheel_check import export_tree

PACKAGES = ("app", "drivers", "perception", "control", "sim", "calibration", "configs")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    tmp = tmp_path_factory.mktemp("wheel")
    src = export_tree(tmp / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "-w", str(tmp / "dist"), str(src)], check=True, capture_output=True)
    return zipfile.ZipFile(next((tmp / "dist").glob("micromanip-*.whl")))


def test_the_wheel_holds_every_file_of_the_packages_configs_and_weights_included(wheel):
    shipped = set(wheel.namelist())
    src = [p.relative_to(ROOT).as_posix() for pkg in PACKAGES for p in (ROOT / pkg).rglob("*")
           if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".onnx", ".tmp")]
    missing = sorted(set(src) - shipped)
    assert not missing, f"not in the wheel: {missing}"
    for needed in ("configs/sim.yaml", "configs/rehearsal.yaml", "configs/train/depth.yaml",
                   "configs/micromanager/demo.cfg", "perception/weights/depth_classifier.pt"):
        assert needed in shipped
    assert not any(n.startswith(("tests/", "benchmarks/", "docs/")) for n in shipped)


def test_the_wheel_declares_licence_command_and_extras(wheel):
    dist_info = next(n.split("/")[0] for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    meta = wheel.read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: MIT" in meta
    assert f"{dist_info}/licenses/LICENSE" in wheel.namelist()
    for extra in ("hardware", "cluster", "dev"):
        assert f"Provides-Extra: {extra}" in meta
    core = [line for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    names = {Requirement(line.split(":", 1)[1].strip()).name.lower() for line in core}
    assert {"pyside6-essentials", "qtpy", "pillow"} <= names
    assert not names & {"pyqt6", "pypylon", "mm-test-adapters", "segmentation-models-pytorch"}
    assert "micromanip = app.cli:main" in wheel.read(f"{dist_info}/entry_points.txt").decode()


def test_version_and_shipped_rig_names():
    from app import __version__
    from app.cli import _rig_path
    from configs import config_path, rig_names

    out = subprocess.run([sys.executable, "-m", "app.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"micromanip {__version__}"
    assert {"sim", "rehearsal"} <= set(rig_names())
    assert _rig_path("sim") == config_path("sim.yaml") and _rig_path("sim").is_file()


def test_constraints_pin_every_declared_dependency_within_its_range():
    """`make` and CI install with constraints.txt: a dependency added to pyproject.toml without `make lock`
    would install unpinned (and a pin outside the declared range would not install at all)."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    declared = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    for req in map(Requirement, declared):
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned in constraints.txt: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), f"{req.name}=={pins[name]} outside {req.specifier}"
