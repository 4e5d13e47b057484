"""``micromanip demo``: the main job on the simulated rig, headless.

Until the closed-loop controller lands, the campaign runs scripted aspiration attempts on the digital
twin's physics with ideal (oracle) XY tracking and a fixed depth offset of 0 um, and prints the table.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path

import typer

from app.config import load_rig_config
from sim.config import SceneConfig
from sim.scenarios import Outcome, aspiration_attempt


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def run_demo(rig_path: Path, n: int, seed: int) -> dict:
    config = load_rig_config(rig_path)
    scene_cfg = SceneConfig.model_validate({**config.scene, "n_sperm": 0, "n_debris": 0})
    typer.echo(f"rig '{config.name}': {n} scripted aspiration attempts on the digital twin (seed {seed})")
    t0 = time.time()
    rows = []
    for i in range(n):
        for z_offset in (0.0, 3.0):
            res = aspiration_attempt(seed * 10000 + i, z_offset, cfg=scene_cfg)
            rows.append((z_offset, res))
    typer.echo(f"{'tip-cell depth offset':>22} | {'success':>8} | {'95% CI':>13} | failures")
    summary = {}
    for z_offset in (0.0, 3.0):
        results = [r for z, r in rows if z == z_offset]
        ok = sum(r.outcome == Outcome.SUCCESS for r in results)
        lo, hi = wilson_interval(ok, len(results))
        fails = Counter(r.outcome.value for r in results if r.outcome != Outcome.SUCCESS)
        typer.echo(f"{z_offset:>19.1f} um | {ok / len(results):>8.0%} | {lo:>5.0%} - {hi:>4.0%} | "
                   f"{dict(fails) or '-'}")
        summary[z_offset] = {"success_rate": ok / len(results), "ci95": [lo, hi], "failures": dict(fails)}
    typer.echo(f"done in {time.time() - t0:.1f} s wall")
    return summary
