"""Data flow one way (docs/architecture.md): the import contracts in pyproject.toml's [tool.importlinter],
checked by import-linter over the whole source tree."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import ROOT


def test_every_layer_keeps_its_import_contract():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_the_contracts_cover_every_package():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    # configs: the shipped files and the function that finds them, read by every layer
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "configs"}
    assert set(config["root_packages"]) == packages
    sources = {m.split(".")[0] for c in config["contracts"] for m in c["source_modules"]}
    assert sources == packages - {"app"}  # the application is the top: it may import every layer
