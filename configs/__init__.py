"""The shipped configuration files: rig files (``sim.yaml``, ``rehearsal.yaml``, ``example-hardware.yaml``),
training configs (``train/*.yaml``) and Micro-Manager's demo configuration (``micromanager/demo.cfg``).

They form a package so that they install with the wheel: :func:`config_path` finds them through
``importlib.resources`` in an installed wheel and in a checkout alike, where ``configs/sim.yaml`` stays an
ordinary path for the user.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def config_path(name: str) -> Path:
    """The shipped file ``name`` (e.g. ``"sim.yaml"``, ``"train/depth.yaml"``); it may not exist."""
    return Path(str(files(__name__).joinpath(name)))


def rig_names() -> list[str]:
    """Names of the shipped rig files, as ``--rig`` takes them (``sim``, ``rehearsal``, ...)."""
    return sorted(p.stem for p in config_path(".").glob("*.yaml"))
