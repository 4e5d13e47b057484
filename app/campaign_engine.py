"""Where a campaign's trials run: a process pool on this machine (``local``) or tasks on a Ray cluster
(``ray``). Either way the driver process alone writes the trial log, one transaction per trial as its
result arrives, so a driver killed at any moment loses no finished trial and ``--resume`` runs only the
trials not in the log.

A trial that raises is recorded as an ``error`` row with its exception; a Ray worker (or node) that dies
mid-trial has its trial run once more, and a second death is recorded as an ``error`` row
(``worker_lost``): no trial is dropped silently. An error of the set-up itself (a rig that no longer
opens, a bad config: :class:`MicromanipError`) stops the campaign with one line instead, since every
further trial would meet it too.

Ray: each trial is one task of one CPU. The model weights a campaign names are read once by the driver,
put in Ray's object store once, and reach each node once (the object store keeps one copy per node, which
every worker process there maps); a worker writes them to a node-local file cache keyed by their hash, so
a node also exports their ONNX form once.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import logging
import multiprocessing as mp
import os
import platform
import secrets
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from app.trial_log import TrialLog, now_iso
from app.trials import RigUnavailable, TrialSpec, run_trial, summarise
from drivers.errors import MicromanipError

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = ROOT / "perception" / "weights"
WEIGHT_ROLES = {"seg": "unext_seg", "depth": "depth_classifier"}  # control.weights: role -> shipped default


# ----- one trial, guarded ----------------------------------------------------------------------------------
def error_result(spec: TrialSpec, mode: str, text: str, started: str | None = None, wall_s: float | None = None
                 ) -> dict[str, Any]:
    """The row of a trial that ended without an outcome: ``outcome`` is ``error``, ``failure_mode`` says why."""
    return {"index": spec.index, "seed": spec.seed, "rig": spec.rig, "start": started or now_iso(), "end": now_iso(),
            "outcome": "error", "failure_mode": mode, "target_id": None, "depth_error_um": None,
            "duration_s": None, "frames": 0, "wall_s": wall_s, "events": [], "error": text[:2000]}


def guarded_trial(spec: TrialSpec) -> dict[str, Any]:
    """Run one trial; an exception in it becomes an error row (the campaign goes on), except a
    :class:`MicromanipError` of the set-up, which every further trial would meet too."""
    started, t0 = now_iso(), time.perf_counter()
    try:
        result = run_trial(spec)
    except MicromanipError:
        raise
    except Exception as exc:
        log.exception("trial %d (seed %d) raised", spec.index, spec.seed)
        result = error_result(spec, "exception", f"{type(exc).__name__}: {exc}", started, time.perf_counter() - t0)
    result["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return result


def _pool_task(job: tuple[int, TrialSpec]) -> tuple[int, dict[str, Any]]:
    """A pool worker's trial. A set-up error comes back as ``{"abort": text}``: not every error pickles."""
    pos, spec = job
    try:
        return pos, guarded_trial(spec)
    except MicromanipError as exc:
        return pos, {"abort": str(exc)}


def _checked(result: dict[str, Any]) -> dict[str, Any]:
    if "abort" in result:
        raise MicromanipError(result["abort"])
    return result


# ----- engines ---------------------------------------------------------------------------------------------
class Engine(Protocol):
    name: str

    def run(self, specs: Sequence[TrialSpec]) -> Iterator[tuple[TrialSpec, dict[str, Any]]]:
        """Run the trials; yield (spec, result) as each finishes, in any order."""

    def describe(self) -> dict[str, Any]:
        """What ran the trials, for the campaign's record."""

    def start(self) -> Any:
        """Make ready to run (a Ray engine starts or joins its cluster)."""

    def close(self) -> None: ...


class LocalEngine:
    """Today's process pool: ``workers`` spawned processes on this machine (1: in this process); either way
    each trial runs on one core, as a pool or Ray worker runs it."""

    name = "local"

    def __init__(self, workers: int = 2) -> None:
        self.workers = max(1, workers)

    def describe(self) -> dict[str, Any]:
        return {"engine": "local", "workers": self.workers}

    def start(self) -> None:
        """Nothing to start: the pool is made per run."""

    def run(self, specs: Sequence[TrialSpec]) -> Iterator[tuple[TrialSpec, dict[str, Any]]]:
        if self.workers > 1 and len(specs) > 1:
            from app.trials import _worker_init

            with mp.get_context("spawn").Pool(self.workers, initializer=_worker_init) as pool:
                for pos, result in pool.imap_unordered(_pool_task, list(enumerate(specs))):
                    yield specs[pos], _checked(result)
        else:
            from app.trials import one_core_per_trial

            with one_core_per_trial():
                for spec in specs:
                    yield spec, guarded_trial(spec)

    def close(self) -> None:
        pass


def parse_ray_address(address: str) -> tuple[str, int] | None:
    """``HOST:PORT`` (or ``auto``: the cluster ``ray start`` last started on this machine, None)."""
    if address == "auto":
        return None
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise MicromanipError(f"--ray-address must be HOST:PORT (e.g. 10.0.0.5:6379) or auto, not {address!r}")
    return host.strip("[]"), int(port)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class RayEngine:
    """Each trial a Ray task. ``address`` None: a private Ray instance on this machine, bound to
    127.0.0.1 with no dashboard and no usage reporting, started for the campaign and shut down after it."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        self.address = address
        self.workers = workers
        self._ray: Any = None
        if address is not None:
            parse_ray_address(address)

    def describe(self) -> dict[str, Any]:
        from importlib.metadata import PackageNotFoundError, version

        try:
            ray_version = version("ray")
        except PackageNotFoundError:
            ray_version = None
        return {"engine": "ray", "ray": ray_version, "address": self.address or "local instance",
                **({"workers": self.workers} if self.workers else {})}

    def start(self) -> Any:
        """Start (or join) the cluster; the first run does it if not done before."""
        if self._ray is not None:
            return self._ray
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        host = parse_ray_address(self.address)[0] if self.address else "127.0.0.1"
        if self.address is None or _is_loopback(host):
            # On Linux Ray swaps 127.0.0.1 for the machine's outward address unless it believes it cannot
            # form multi-node clusters here; this keeps the instance (or our link to a cluster started on
            # loopback) on 127.0.0.1. It is read when Ray is imported.
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        if self.address is None and "RAY_AUTH_MODE" not in os.environ:
            # a private instance: only processes given this token (our workers) may submit work to it
            os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
        try:
            import ray
        except ImportError:
            raise MicromanipError("--engine ray needs Ray: pip install 'micromanip[cluster]'") from None
        try:
            if self.address is None:
                ray.init(num_cpus=self.workers or os.cpu_count(), include_dashboard=False,
                         _node_ip_address="127.0.0.1", configure_logging=False, log_to_driver=False,
                         namespace="micromanip")
            else:
                ray.init(address=self.address, configure_logging=False, log_to_driver=False, namespace="micromanip")
        except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; the user gets one line
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MicromanipError(f"cannot start or reach {where}: {first}") from None
        self._ray = ray
        return ray

    def run(self, specs: Sequence[TrialSpec]) -> Iterator[tuple[TrialSpec, dict[str, Any]]]:
        if not specs:
            return
        ray = self.start()
        shipped = _ship_weights(ray, specs)
        task = ray.remote(num_cpus=1, max_retries=1, retry_exceptions=False)(_ray_trial)
        pending = {}
        for pos, spec in enumerate(specs):
            # the task's name is its worker's process title while it runs (`ps`: ray::micromanip-trial-12)
            ref = task.options(name=f"micromanip-trial-{pos}").remote(spec, [shipped[id(spec)]])
            pending[ref] = spec
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    spec = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # the worker or its node died twice (retried once)
                        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                        result = error_result(spec, "worker_lost", f"{type(exc).__name__}: {text}")
                    yield spec, _checked(result)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._ray is not None:
            self._ray.shutdown()
            self._ray = None


def make_engine(name: str, workers: int = 2, ray_address: str | None = None) -> LocalEngine | RayEngine:
    """The engine a command line names; bad combinations are one-line errors."""
    if name == "local":
        if ray_address is not None:
            raise MicromanipError("--ray-address needs --engine ray")
        return LocalEngine(workers)
    if name == "ray":
        return RayEngine(ray_address, workers if ray_address is None else None)
    raise MicromanipError(f"--engine must be local or ray, not {name!r}")


# ----- model weights through Ray's object store ------------------------------------------------------------
def weights_file(value: str) -> Path:
    """A ``control.weights`` value: a shipped model's name or a file."""
    path = Path(value) if (Path(value).suffix or "/" in value) else WEIGHTS_DIR / f"{value}.pt"
    if not path.is_file():
        raise MicromanipError(f"weights {value!r}: no such file {path}")
    return path


def spec_weights(spec: TrialSpec) -> dict[str, str]:
    """role -> weights value (name or file) a trial's rig names."""
    given = ((spec.rig_data or {}).get("control") or {}).get("weights") or {}
    return {role: str(given.get(role, default)) for role, default in WEIGHT_ROLES.items()}


def _ship_weights(ray: Any, specs: Sequence[TrialSpec]) -> dict[int, dict[str, tuple[str, str, Any]]]:
    """Put each distinct weights file in the object store once; per spec: role -> (sha256, stem, ref)."""
    refs: dict[str, tuple[str, str, Any]] = {}
    out = {}
    import numpy as np

    for spec in specs:
        roles = {}
        for role, value in spec_weights(spec).items():
            if value not in refs:
                path = weights_file(value)
                data = path.read_bytes()
                refs[value] = (hashlib.sha256(data).hexdigest(), path.stem, ray.put(np.frombuffer(data, np.uint8)))
            roles[role] = refs[value]
        out[id(spec)] = roles
    return out


_NODE_FILES: dict[str, Path] = {}


def node_weights_cache() -> Path:
    return Path(tempfile.gettempdir()) / f"micromanip-weights-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def _materialise(sha: str, stem: str, ref: Any) -> Path:
    """The weights as a file on this node: written once per node (content-addressed), read from the
    object store at most once per worker process."""
    if sha in _NODE_FILES:
        return _NODE_FILES[sha]
    folder = node_weights_cache()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{sha[:16]}-{stem}.pt"
    if not path.is_file():
        import ray

        data = ray.get(ref)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(memoryview(data))
        if hashlib.sha256(tmp.read_bytes()).hexdigest() != sha:
            tmp.unlink(missing_ok=True)
            raise MicromanipError(f"weights {stem}: the copy on {socket.gethostname()} does not match its hash")
        os.replace(tmp, path)
    _NODE_FILES[sha] = path
    return path


_WORKER_READY = False


def _ray_trial(spec: TrialSpec, shipped: list[dict[str, tuple[str, str, Any]]]) -> dict[str, Any]:
    """A Ray task: the trial with its weights read from this node's copy. A set-up error comes back as
    ``{"abort": text}`` (a raised one would come back wrapped in Ray's own exception)."""
    global _WORKER_READY
    from app.trials import _worker_init

    if not _WORKER_READY:
        _worker_init()
        _WORKER_READY = True
    try:
        files = {role: str(_materialise(*item)) for role, item in shipped[0].items()}
        data = copy.deepcopy(spec.rig_data) if spec.rig_data is not None else _rig_mapping(Path(spec.rig))
        data.setdefault("control", {})["weights"] = files
        result = guarded_trial(replace(spec, rig_data=data))
        import ray

        result["worker"] += f" node {ray.get_runtime_context().get_node_id()[:12]}"
        return result
    except MicromanipError as exc:
        return {"abort": str(exc)}


def _rig_mapping(path: Path) -> dict[str, Any]:
    from app.sweep import read_yaml_mapping

    return read_yaml_mapping(path, "rig file")


# ----- campaigns -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CampaignPlan:
    """One campaign to run: a rig (its file's mapping with a condition's changes), n trials, seeds."""

    key: str
    label: str
    rig: str
    rig_data: dict[str, Any]
    n: int
    seed: int
    motility: str
    depth_source: str
    params: dict[str, Any] = field(default_factory=dict)
    inject: tuple[str, ...] = ()  # DEVICE:FAULT@STATE armed in every trial (rehearsal rigs)
    record: str | None = None  # folder: each trial recorded in record/trial-NNNN

    def specs(self, skip: set[int]) -> list[TrialSpec]:
        # trial i has the same seed in every condition of a sweep: the same scenes, compared in pairs
        return [TrialSpec(i, self.seed * 100003 + i, self.rig, self.motility, self.depth_source,  # type: ignore[arg-type]
                          inject=self.inject, record=self.record, rig_data=self.rig_data)
                for i in range(self.n) if i not in skip]


def software_version(engine: Engine | None = None) -> dict[str, Any]:
    """The software a campaign ran: package version, git commit (when run from a checkout), libraries."""
    import numpy
    import torch

    try:
        from importlib.metadata import version

        ver = version("micromanip")
    except Exception:  # noqa: BLE001 - not installed: run from the source tree
        ver = "unknown"
    out: dict[str, Any] = {"micromanip": ver, "python": platform.python_version(), "torch": torch.__version__,
                           "numpy": numpy.__version__}
    if (ROOT / ".git").exists():
        def git(*args: str) -> str:
            try:
                return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10,
                                      check=True).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                return ""

        out["commit"] = git("rev-parse", "--short=10", "HEAD") or "unknown"
        out["tree_clean"] = git("status", "--porcelain", "--untracked-files=no") == ""
    if engine is not None:
        out["engine"] = engine.describe()
    return out


def run_plans(plans: Sequence[CampaignPlan], engine: Engine, db: Path | None, *, resume: bool = False,
              progress: bool = True, desc: str = "trials", sweep_id: int | None = None,
              log_db: TrialLog | None = None) -> dict[str, dict[str, Any]]:
    """Run the campaigns' trials through ``engine`` (all of them in one stream, one progress bar),
    recording each result as it arrives; returns each campaign's summary by key."""
    from tqdm import tqdm

    own_log = log_db is None and db is not None
    log_db = TrialLog(db) if own_log else log_db
    try:
        ids: dict[str, int] = {}
        results: dict[str, list[dict[str, Any]]] = {p.key: [] for p in plans}
        owner: dict[int, CampaignPlan] = {}
        specs: list[TrialSpec] = []
        software = software_version(engine) if log_db is not None else {}
        for plan in plans:
            done: set[int] = set()
            if log_db is not None:
                ids[plan.key] = log_db.campaign(
                    plan.key, plan.rig, plan.n, plan.seed, plan.motility, plan.depth_source, plan.rig_data, None,
                    {"condition": plan.params}, sweep_id=sweep_id, label=plan.label, software=software,
                    engine=engine.name)
                done = log_db.finished_indices(ids[plan.key])
                if done and not resume:
                    raise MicromanipError(f"{log_db.path}: campaign '{plan.label}' already has {len(done)} of "
                                          f"{plan.n} trials; --resume continues it (or give another --db)")
                results[plan.key] = log_db.results(ids[plan.key])
            for spec in plan.specs(done):
                owner[id(spec)] = plan
                specs.append(spec)
        total = sum(p.n for p in plans)
        t0 = time.perf_counter()
        bar = tqdm(total=total, initial=total - len(specs), desc=desc, disable=not progress, smoothing=0.05)
        try:
            for spec, result in engine.run(specs):
                plan = owner[id(spec)]
                if log_db is not None:
                    log_db.record(ids[plan.key], result)
                    if "setup" in result:
                        log_db.set_setup(ids[plan.key], result["setup"]["calibration"], result["setup"]["controller"])
                results[plan.key].append(result)
                bar.update(1)
        except RigUnavailable as exc:  # the trials command and sweeps say it alike
            raise MicromanipError(f"campaign stopped: {exc} (every trial run before it is recorded)") from None
        finally:
            bar.close()
        wall = time.perf_counter() - t0
        return {p.key: summarise(results[p.key], wall) for p in plans}
    finally:
        if own_log and log_db is not None:
            log_db.close()


def plan_key(parts: list[Any]) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


__all__ = ["CampaignPlan", "Engine", "LocalEngine", "RayEngine", "make_engine", "run_plans", "guarded_trial",
           "error_result", "software_version", "plan_key", "weights_file"]
