"""Sweeps: N trials under each of a grid (or a list) of conditions over the rig's, the scene's and the
controller's parameters, run as one stream of trials on an engine and logged as one campaign per
condition under one sweep.

A sweep file names the rig and changes to it by dotted path into the rig file (``scene.swim_speed_scale``,
``camera.sensor.read_noise_e``, ``control.trials.miscalibration.camera_rotation_deg``), plus the trial's
own choices ``motility`` and ``depth_source``::

    name: speed-and-noise            # letters, digits, - _ . (at most 64)
    rig: sim                         # a rig in configs/ or a file (relative to this file)
    trials_per_condition: 50
    seed: 1                          # trial i has the same seed (the same scene) in every condition
    motility: motile                 # default of every condition
    depth_source: net
    set: {control.trials.xy_source: net}          # applied to every condition
    grid:                                          # every combination, in the order given ...
      scene.swim_speed_scale: [0.7, 1.0, 1.4]
      camera.sensor.read_noise_e: [7, 25]
    # ... or a list:  conditions: [{label: nominal}, {label: noisy, set: {camera.sensor.read_noise_e: 25}}]

Everything is checked before any trial runs, as strictly as the rig file: an unknown key anywhere in the
sweep file, a key given twice, a value that is not finite or out of bounds, a path the rig does not have
(each condition's rig is validated whole), a weights file that is not there: one line naming the file,
the condition and the field, exit code 2.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from app.campaign_engine import CampaignPlan, Engine, plan_key, run_plans, software_version, weights_file
from app.trial_log import TrialLog
from drivers.errors import ConfigError, MicromanipError, format_validation_error

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
MAX_FILE_BYTES = 1_000_000
MAX_ABS_NUMBER = 1e9
TRIAL_KEYS = {"motility": ("motile", "immotile"), "depth_source": ("net", "oracle", "dff", "focal", "none")}
RIG_SECTIONS = ("objective", "camera", "stage", "focus", "manipulator", "pump", "scene", "control")
# scene fields each trial sets from control.trials: a change to them would be silently undone
SET_BY_TRIALS = {"scene.n_sperm": "control.trials.n_sperm",
                 "scene.field_half_size_um": "control.trials.field_half_size_um"}

#: what a reader of the report calls the factors the issue's robustness questions are about
FACTOR_LABELS = {
    "control.trials.n_sperm": "cells in the field of view",
    "scene.motility_mix": "motility mix of the sample",
    "scene.swim_speed_scale": "swimming speed (x nominal)",
    "camera.sensor.illumination_fraction": "illumination level (background / full well)",
    "camera.sensor.vignetting": "illumination fall-off at the sensor corners",
    "camera.sensor.illumination_tilt": "illumination tilt across the sensor",
    "camera.sensor.read_noise_e": "camera read noise (e-)",
    "camera.gain_db": "camera gain (dB)",
    "focus.drift_um_s": "focus drift (um/s)",
    "control.trials.miscalibration.camera_rotation_deg": "camera rotation error (deg)",
    "control.trials.miscalibration.camera_scale": "pixel size error (relative)",
    "control.trials.miscalibration.manipulator_offset_um": "manipulator offset error (um)",
    "control.trials.miscalibration.manipulator_rotation_deg": "manipulator rotation error (deg)",
    "control.trials.miscalibration.manipulator_scale": "manipulator scale error (relative)",
    "control.trials.perception_latency_s": "perception latency per frame (s)",
    "scene.pipette.inner_diameter_um": "pipette inner diameter (um)",
    "control.weights.seg": "segmentation weights",
    "control.weights.depth": "depth weights",
    "motility": "target cells",
    "depth_source": "depth source",
}


def factor_label(key: str) -> str:
    return FACTOR_LABELS.get(key, key)


# ----- strict YAML -----------------------------------------------------------------------------------------
class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):  # noqa: ANN001 - PyYAML's signature
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, f"unhashable key {key!r}",
                                                        key_node.start_mark) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (first at line {seen[key] + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """A YAML file that must hold a mapping; any problem is a one-line :class:`ConfigError`."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES // 1000} kB: not a {what}")
        text = path.read_bytes().decode("utf-8-sig")
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a {what}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{line}: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a {what} must be a mapping of fields, got {type(data).__name__}")
    return data


def check_value(value: Any, where: str, depth: int = 0) -> None:
    """Sweep values are finite, bounded numbers, booleans, short strings, or short lists/mappings of them."""
    if depth > 4:
        raise ValueError(f"{where}: nested too deeply")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or abs(value) > MAX_ABS_NUMBER:
            raise ValueError(f"{where}: must be a finite number within +-{MAX_ABS_NUMBER:g} (got {value})")
        return
    if isinstance(value, str):
        if len(value) > 500:
            raise ValueError(f"{where}: a string of at most 500 characters")
        return
    if isinstance(value, list):
        if len(value) > 64:
            raise ValueError(f"{where}: a list of at most 64 items")
        for i, v in enumerate(value):
            check_value(v, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        if len(value) > 64:
            raise ValueError(f"{where}: a mapping of at most 64 keys")
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: keys must be text, got {k!r}")
            check_value(v, f"{where}.{k}", depth + 1)
        return
    raise ValueError(f"{where}: unsupported value {value!r}")


def check_key(key: str) -> None:
    """A trial choice (motility, depth_source) or a dotted path into a rig section."""
    if key in TRIAL_KEYS:
        return
    parts = key.split(".")
    if parts[0] not in RIG_SECTIONS or len(parts) < 2 or not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p)
                                                                   for p in parts):
        raise ValueError(f"{key!r}: not a factor (motility, depth_source, or a dotted path into a rig section: "
                         f"{', '.join(RIG_SECTIONS)})")
    if key in SET_BY_TRIALS:
        raise ValueError(f"{key!r}: each trial sets it from {SET_BY_TRIALS[key]}; sweep that instead")


# ----- the sweep file --------------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _check_changes(changes: dict[str, Any], where: str) -> dict[str, Any]:
    for key, value in changes.items():
        check_key(key)
        check_value(value, f"{where}.{key}")
    return changes


class ConditionEntry(_Strict):
    label: str | None = Field(None, min_length=1, max_length=80)
    set: dict[str, Any] = Field(default_factory=dict)

    @field_validator("set")
    @classmethod
    def _set(cls, changes: dict[str, Any]) -> dict[str, Any]:
        return _check_changes(changes, "set")


class SweepFile(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    rig: str = Field("sim", min_length=1, max_length=1000)
    trials_per_condition: int = Field(ge=1, le=100_000)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    motility: Literal["motile", "immotile"] = "motile"
    depth_source: Literal["net", "oracle", "dff", "focal", "none"] = "net"
    set: dict[str, Any] = Field(default_factory=dict, description="changes applied to every condition")
    grid: dict[str, list[Any]] | None = Field(None, description="every combination of these factors' values")
    conditions: list[ConditionEntry] | None = Field(None, min_length=1, max_length=10_000)

    @field_validator("set")
    @classmethod
    def _set(cls, changes: dict[str, Any]) -> dict[str, Any]:
        return _check_changes(changes, "set")

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        if grid is None:
            return None
        if not grid:
            raise ValueError("grid: name at least one factor")
        for key, values in grid.items():
            check_key(key)
            if not 1 <= len(values) <= 100:
                raise ValueError(f"grid.{key}: give 1-100 values")
            for i, v in enumerate(values):
                check_value(v, f"grid.{key}[{i}]")
            as_json = [json.dumps(v, sort_keys=True) for v in values]
            if len(set(as_json)) != len(as_json):
                raise ValueError(f"grid.{key}: a value is given twice")
        return grid

    @model_validator(mode="after")
    def _one_design(self) -> SweepFile:
        if (self.grid is None) == (self.conditions is None):
            raise ValueError("give either grid (every combination) or conditions (a list), not both or neither")
        n = math.prod(len(v) for v in self.grid.values()) if self.grid else len(self.conditions or [])
        if n > 10_000:
            raise ValueError(f"{n} conditions: at most 10000")
        if n * self.trials_per_condition > 1_000_000:
            raise ValueError(f"{n * self.trials_per_condition} trials: at most 1000000 in one sweep")
        return self


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: its campaigns (one per condition) and the factors that vary between them."""

    name: str
    key: str
    source: Path
    spec: dict[str, Any]
    plans: list[CampaignPlan]
    factors: list[str]


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _fmt(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict)) else str(value)


def _conditions(sf: SweepFile) -> list[tuple[str, dict[str, Any]]]:
    """(label, changes) of every condition, the sweep-wide ``set`` first."""
    out = []
    if sf.grid is not None:
        keys = list(sf.grid)
        for values in itertools.product(*(sf.grid[k] for k in keys)):
            changes = dict(zip(keys, values))
            out.append((", ".join(f"{_short(k)}={_fmt(v)}" for k, v in changes.items()), {**sf.set, **changes}))
    else:
        for i, cond in enumerate(sf.conditions or []):
            label = cond.label or (", ".join(f"{_short(k)}={_fmt(v)}" for k, v in cond.set.items()) or f"condition {i}")
            out.append((label, {**sf.set, **cond.set}))
    labels = [label for label, _ in out]
    dup = next((label for label in labels if labels.count(label) > 1), None)
    if dup is not None:
        raise ValueError(f"two conditions are labelled {dup!r}")
    return out


def resolve_rig(rig: str, base: Path) -> Path:
    """A rig name in configs/ (``sim``) or a file, relative to ``base``."""
    named = CONFIGS / f"{rig}.yaml"
    if "/" not in rig and not rig.endswith((".yaml", ".yml")) and named.is_file():
        return named
    path = Path(rig).expanduser()
    return path if path.is_absolute() else base / path


def apply_changes(data: dict[str, Any], changes: dict[str, Any], weights_base: Path) -> dict[str, Any]:
    """The rig mapping with each dotted path set (intermediate mappings created); weights files given
    relative to ``weights_base``."""
    out = copy.deepcopy(data)
    for key, value in changes.items():
        if key in TRIAL_KEYS:
            continue
        *parents, leaf = key.split(".")
        node = out
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"{key}: {'.'.join(parents[:i + 1])} is not a mapping in the rig")
            node = child
        if key.startswith("control.weights.") and isinstance(value, str) and _looks_like_path(value):
            value = str((weights_base / Path(value).expanduser()).resolve())
        node[leaf] = copy.deepcopy(value)
    return out


def _looks_like_path(value: str) -> bool:
    return Path(value).suffix != "" or "/" in value


def _absolute_weights(data: dict[str, Any], base: Path) -> dict[str, Any]:
    weights = (data.get("control") or {}).get("weights")
    if isinstance(weights, dict):
        for role, value in weights.items():
            if isinstance(value, str) and _looks_like_path(value):
                weights[role] = str((base / Path(value).expanduser()).resolve())
    return data


def validate_condition(data: dict[str, Any], rig_path: Path, motility: str, depth_source: str) -> None:
    """Everything a trial will validate, now: the rig, its devices, the trial settings, the scene, weights."""
    from app.config import parse_rig_config
    from app.trials import trial_config

    config = parse_rig_config(data, source=rig_path)
    try:
        trial_cfg, _ = trial_config(config, motility, "real" if config.rehearsal else "lockstep")
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, None, prefix="control.trials")) from None
    if config.uses_simulator:
        from sim.config import SceneConfig

        try:
            SceneConfig.model_validate(trial_cfg.scene)
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, None, prefix="scene")) from None
    weights = (data.get("control") or {}).get("weights") or {}
    if not isinstance(weights, dict) or set(weights) - {"seg", "depth"}:
        raise ConfigError("control.weights: a mapping with seg and/or depth")
    for role, value in weights.items():
        if not isinstance(value, str):
            raise ConfigError(f"control.weights.{role}: a shipped model's name or a file")
        try:
            weights_file(value)
        except MicromanipError as exc:
            raise ConfigError(f"control.weights.{role}: {exc}") from None


def campaign_plan(rig: Path, n: int, seed: int, motility: str, depth_source: str,
                  weights: tuple[str | None, str | None] = (None, None), inject: tuple[str, ...] = (),
                  record: str | None = None) -> CampaignPlan:
    """A plain campaign (``micromanip trials``): the rig file as it is, with the weights a command line
    chose (relative to the working folder) instead of its own. Its key is what it always was, so a log
    written before sweeps existed still resumes."""
    data = _absolute_weights(read_yaml_mapping(rig, "rig file"), rig.parent)
    chosen = {role: value for role, value in zip(("seg", "depth"), weights) if value}
    if chosen:
        control = data.setdefault("control", {}) or {}
        data["control"] = control
        control["weights"] = {**(control.get("weights") or {}),
                              **_absolute_weights({"control": {"weights": chosen}}, Path.cwd())["control"]["weights"]}
    validate_condition(data, rig, motility, depth_source)
    identity: list[Any] = [str(rig), n, seed, motility, depth_source]
    if inject:
        identity.append(list(inject))
    if chosen:
        identity.append([weights[0], weights[1]])
    return CampaignPlan(plan_key(identity), f"{motility}/{depth_source}", str(rig), data, n, seed, motility,
                        depth_source, {}, inject=tuple(inject), record=record)


def load_sweep(path: Path) -> Sweep:
    """Read and validate a sweep file and every condition's rig; :class:`ConfigError` in one line."""
    path = Path(path)
    raw = read_yaml_mapping(path, "sweep file")
    try:
        sf = SweepFile.model_validate(raw)
        conditions = _conditions(sf)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, path)) from None
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    rig_path = resolve_rig(sf.rig, path.parent)
    try:
        rig_data = _absolute_weights(read_yaml_mapping(rig_path, "rig file"), rig_path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: rig: {exc}") from None
    plans = []
    for label, changes in conditions:
        choice = {key: changes.get(key, getattr(sf, key)) for key in TRIAL_KEYS}
        for key, allowed in TRIAL_KEYS.items():
            if choice[key] not in allowed:
                raise ConfigError(f"{path}: condition '{label}': {key} must be one of {', '.join(allowed)}, "
                                  f"not {choice[key]!r}")
        motility, depth_source = choice["motility"], choice["depth_source"]
        try:
            data = apply_changes(rig_data, changes, path.parent)
            validate_condition(data, rig_path, motility, depth_source)
        except (ConfigError, ValueError) as exc:
            text = str(exc).removeprefix(f"{rig_path}: ")
            raise ConfigError(f"{path}: condition '{label}': {text}") from None
        key = plan_key(["sweep", sf.name, str(rig_path), sf.trials_per_condition, sf.seed, motility, depth_source,
                        {k: v for k, v in changes.items() if k not in TRIAL_KEYS}])
        plans.append(CampaignPlan(key, label, str(rig_path), data, sf.trials_per_condition, sf.seed, motility,
                                  depth_source, {"factors": changes}))
    spec = sf.model_dump(mode="json")
    keys = list(dict.fromkeys(k for p in plans for k in p.params["factors"]))
    varying = [k for k in keys if len({json.dumps(p.params["factors"].get(k), sort_keys=True) for p in plans}) > 1]
    return Sweep(sf.name, plan_key(["sweep", spec]), path, spec, plans, varying)


def run_sweep(path: Path, db: Path, engine: Engine, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run (``resume``: continue) a sweep; every condition's campaign is recorded under the sweep."""
    import time

    sweep = load_sweep(path)
    t0 = time.perf_counter()
    with TrialLog(db) as log_db:
        sweep_id = log_db.sweep(sweep.key, sweep.name, str(path), {**sweep.spec, "factors": sweep.factors},
                                software_version(engine))
        summaries = run_plans(sweep.plans, engine, db, resume=resume, progress=progress, sweep_id=sweep_id,
                              desc=f"sweep {sweep.name}", log_db=log_db)
    return {"sweep": sweep.name, "source": str(path), "db": str(db), "factors": sweep.factors,
            "trials_per_condition": sweep.plans[0].n, "wall_s": time.perf_counter() - t0,
            "conditions": [{"label": p.label, "factors": p.params["factors"], "motility": p.motility,
                            "depth_source": p.depth_source, **summaries[p.key]} for p in sweep.plans]}


def format_sweep_table(result: dict[str, Any]) -> str:
    lines = [f"sweep {result['sweep']}: {len(result['conditions'])} conditions x {result['trials_per_condition']} "
             f"trials in {result['wall_s']:.0f} s wall",
             "| condition | n | success | 95% CI (Wilson) | median time to aspirate | median abs depth error | failures |",
             "|---|---|---|---|---|---|---|"]
    for c in result["conditions"]:
        lo, hi = c["ci95"]
        t = f"{c['median_time_s']:.1f} s" if c["median_time_s"] is not None else "-"
        e = f"{c['median_abs_depth_error_um']:.2f} um" if c["median_abs_depth_error_um"] is not None else "-"
        fails = ", ".join(f"{k} {v}" for k, v in sorted(c["failures"].items(), key=lambda kv: -kv[1])) or "-"
        lines.append(f"| {c['label']} | {c['n']} | {c['success_rate']:.0%} | {lo:.0%} - {hi:.0%} | {t} | {e} | {fails} |")
    return "\n".join(lines)


__all__ = ["load_sweep", "run_sweep", "format_sweep_table", "campaign_plan", "read_yaml_mapping", "factor_label",
           "Sweep", "SweepFile"]
