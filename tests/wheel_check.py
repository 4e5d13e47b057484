"""The wheel as a user gets it: build it from this checkout, install it in a fresh venv outside the checkout
(with the pinned versions of constraints.txt), and run the main job and the GUI from there.

    .venv/bin/python tests/wheel_check.py [--keep DIR] [--demo-trials 2]     # or: make wheel-check

Minutes (the install copies torch, ~5 GB), so it is a command, not part of `make test`;
`tests/test_packaging.py` checks in milliseconds that every file the code reads ships as package data.
Exit code 0 when every step passed; each step prints what it ran.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str | Path], cwd: Path, env: dict[str, str] | None = None, timeout_s: float = 1800) -> str:
    print("$", " ".join(str(c) for c in cmd), flush=True)
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout_s)
    out = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        sys.exit(f"FAILED (exit {done.returncode}):\n{out[-4000:]}")
    return out


def export_tree(dest: Path) -> Path:
    """Copy the files git would commit (tracked and new, not ignored) to ``dest``: a wheel built from it
    holds what a fresh clone's would, never a stale ``build/`` folder or a local ONNX export."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():  # a deleted file is still listed until committed
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    ap.add_argument("--demo-trials", type=int, default=2)
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="micromanip-wheel-"))
    work.mkdir(parents=True, exist_ok=True)
    if work.resolve().is_relative_to(ROOT):
        sys.exit("the work folder must lie outside the checkout")
    try:
        dist, src = work / "dist", work / "src"
        shutil.rmtree(dist, ignore_errors=True)
        shutil.rmtree(src, ignore_errors=True)
        run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, export_tree(src)], cwd=work)
        wheel = next(dist.glob("micromanip-*.whl"))
        env_dir = work / "venv"
        shutil.rmtree(env_dir, ignore_errors=True)
        venv.create(env_dir, with_pip=True)
        bin_dir = env_dir / "bin"
        run([bin_dir / "python", "-m", "pip", "install", "--quiet", "-c", ROOT / "constraints.txt", wheel], cwd=work)

        # a user's environment: no checkout on the path, the current folder elsewhere, Qt offscreen
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", QT_QPA_PLATFORM="offscreen",
                   XDG_STATE_HOME=str(work / "state"))  # its logs stay in the work folder
        user = work / "user"
        user.mkdir(exist_ok=True)
        where = run([bin_dir / "python", "-c", "import app, configs, perception; print(app.__file__); "
                     "print(configs.config_path('sim.yaml'))"], cwd=user, env=env)
        if str(ROOT) in where:
            sys.exit(f"FAILED: the installed package resolves into the checkout:\n{where}")
        print(where)
        print(run([bin_dir / "micromanip", "--version"], cwd=user, env=env))
        print(run([bin_dir / "micromanip", "rig", "check", where.splitlines()[-1]], cwd=user, env=env))
        print(run([bin_dir / "micromanip", "demo", "--n", str(args.demo_trials), "--workers", "1"], cwd=user, env=env))
        shot = user / "gui.png"
        run([bin_dir / "micromanip", "gui", "--rig", "sim", "--screenshot", shot, "--quit-after", "8"],
            cwd=user, env=env)
        if not shot.is_file() or shot.stat().st_size < 10_000:
            sys.exit(f"FAILED: no screenshot at {shot}")
        print(f"screenshot {shot} ({shot.stat().st_size} bytes)")
        print(f"OK: {wheel.name} installed in {env_dir} runs demo and gui outside the checkout")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
