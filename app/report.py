"""A trial log as figures and a Markdown summary: for each sweep (and for the campaigns run on their own),
success against each swept factor with Wilson 95% bands, the outcomes stacked by failure mode, the
distributions of time to aspirate, and the depth error at the pump's start against the outcome.

Figures are drawn with matplotlib's object API (no pyplot state, no display needed). A factor's success
curve pools every trial with that value of the factor, across the other factors' values (its main effect
in a full grid).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.sweep import factor_label
from app.trials import wilson_interval
from drivers.errors import MicromanipError

OUTCOME_COLOURS = {"success": "#2e7d32", "error": "#616161"}
FAILURE_PALETTE = ["#c62828", "#ef6c00", "#f9a825", "#6a1b9a", "#1565c0", "#00838f", "#8d6e63", "#ad1457",
                   "#9e9d24", "#4527a0"]


@dataclass
class Condition:
    label: str
    factors: dict[str, Any]
    campaign: dict[str, Any]
    trials: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.trials)

    @property
    def successes(self) -> int:
        return sum(t["outcome"] == "success" for t in self.trials)


@dataclass
class Group:
    """A sweep's conditions, or the campaigns that ran outside any sweep."""

    title: str
    slug: str
    meta: dict[str, Any]
    factors: list[str]
    conditions: list[Condition]


def outcome_of(trial: dict[str, Any]) -> str:
    """success | error | the failure mode."""
    if trial["outcome"] in ("success", "error"):
        return trial["outcome"]
    return trial["failure_mode"] or "unknown"


def load_groups(db: Path) -> list[Group]:
    if not Path(db).is_file():
        raise MicromanipError(f"{db}: no such trial log")
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"campaigns", "trials"} <= tables:
            raise MicromanipError(f"{db}: not a micromanip trial log (no campaigns and trials tables)")
        campaigns = [dict(r) for r in con.execute("SELECT * FROM campaigns ORDER BY id")]
        trials = defaultdict(list)
        for r in con.execute("SELECT * FROM trials ORDER BY campaign_id, trial_index"):
            trials[r["campaign_id"]].append(dict(r))
        sweeps = [dict(r) for r in con.execute("SELECT * FROM sweeps ORDER BY id")] if "sweeps" in tables else []
    except sqlite3.DatabaseError as exc:
        raise MicromanipError(f"{db}: cannot read the trial log ({exc})") from None
    finally:
        con.close()
    groups = []
    for sw in sweeps:
        members = [c for c in campaigns if c.get("sweep_id") == sw["id"]]
        spec = json.loads(sw["spec_json"] or "{}")
        conds = [_condition(c, trials[c["id"]]) for c in members]
        groups.append(Group(f"Sweep {sw['name']}", sw["name"], {**sw, "spec": spec, "campaigns": members},
                            list(spec.get("factors", [])), conds))
    lone = [c for c in campaigns if c.get("sweep_id") is None]
    if lone:
        groups.append(Group("Campaigns", "campaigns", {"campaigns": lone}, [],
                            [_condition(c, trials[c["id"]]) for c in lone]))
    if not any(cond.trials for g in groups for cond in g.conditions):
        raise MicromanipError(f"{db}: no finished trials to report")
    return groups


def _condition(campaign: dict[str, Any], trials: list[dict[str, Any]]) -> Condition:
    params = json.loads(campaign.get("params_json") or "{}")
    factors = dict((params.get("condition") or {}).get("factors") or {})
    if campaign.get("sweep_id") is None:  # a campaign of its own: what it chose is all that tells it apart
        factors = {"motility": campaign["motility"], "depth_source": campaign["depth_source"]}
    label = campaign.get("label") or f"{campaign['motility']}/{campaign['depth_source']} (campaign {campaign['id']})"
    return Condition(label, factors, campaign, trials)


def _value_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _is_numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


# ----- figures ---------------------------------------------------------------------------------------------
def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    return fig


def curve_factors(group: Group) -> list[str]:
    """The swept factors that take two or more values among the conditions that set them."""
    out = []
    for f in group.factors:
        values = {_value_key(c.factors[f]) for c in group.conditions if f in c.factors and c.n}
        if len(values) >= 2:
            out.append(f)
    return out


def plot_success(group: Group, path: Path) -> Path:
    """Success rate with Wilson 95% bands against each swept factor: every trial with a factor's value is
    pooled (in a full grid, the factor's main effect); conditions that leave the factor alone are left out."""
    panels = curve_factors(group)
    cols = min(3, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig = _figure(4.2 * cols, 3.3 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, factor in zip(axes, panels):
        pooled: dict[str, list[int]] = {}
        values: dict[str, Any] = {}
        for cond in group.conditions:
            if factor not in cond.factors or not cond.n:
                continue
            k = _value_key(cond.factors[factor])
            values[k] = cond.factors[factor]
            acc = pooled.setdefault(k, [0, 0])
            acc[0] += cond.successes
            acc[1] += cond.n
        keys = list(values)
        rate = np.array([pooled[k][0] / pooled[k][1] for k in keys])
        ci = np.array([wilson_interval(*pooled[k]) for k in keys])
        ns = np.array([pooled[k][1] for k in keys])
        if _is_numeric([values[k] for k in keys]):
            order = np.argsort([values[k] for k in keys])
            x = np.array([values[k] for k in keys], float)[order]
            ax.fill_between(x, ci[order, 0], ci[order, 1], color="#1565c0", alpha=0.2, label="Wilson 95%")
            ax.plot(x, rate[order], "o-", color="#1565c0", label="success rate")
            for xi, ri, ni in zip(x, rate[order], ns[order]):
                ax.annotate(f"n={ni}", (xi, ri), textcoords="offset points", xytext=(0, -14), ha="center", fontsize=7)
        else:
            x = np.arange(len(keys))
            ax.errorbar(x, rate, yerr=[rate - ci[:, 0], ci[:, 1] - rate], fmt="o", color="#1565c0", capsize=4,
                        label="success rate, Wilson 95%")
            ax.set_xticks(x, [_tick(values[k]) for k in keys], rotation=30 if len(keys) > 3 else 0,
                          ha="right" if len(keys) > 3 else "center", fontsize=8)
            for xi, ri, ni in zip(x, rate, ns):
                ax.annotate(f"n={ni}", (xi, ri), textcoords="offset points", xytext=(8, -3), fontsize=7)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("success rate")
        ax.set_xlabel(factor_label(factor))
        ax.grid(alpha=0.3)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{group.title}: success rate against each factor (Wilson 95% interval)", fontsize=10)
    fig.savefig(path)
    return path


def plot_conditions(group: Group, path: Path) -> Path:
    """Every condition's success rate with its Wilson 95% interval, one row each; the first condition's
    interval shaded across (a sweep's first condition is usually its reference)."""
    conds = [c for c in group.conditions if c.n]
    fig = _figure(8.0, 1.0 + 0.32 * len(conds))
    ax = fig.subplots()
    y = np.arange(len(conds))[::-1]
    rate = np.array([c.successes / c.n for c in conds])
    ci = np.array([wilson_interval(c.successes, c.n) for c in conds])
    ax.axvspan(ci[0, 0], ci[0, 1], color="#9e9e9e", alpha=0.15, label=f"{conds[0].label} (Wilson 95%)")
    ax.errorbar(rate, y, xerr=[rate - ci[:, 0], ci[:, 1] - rate], fmt="o", color="#1565c0", capsize=3,
                label="success rate, Wilson 95%")
    for yi, ri, c in zip(y, rate, conds):
        ax.annotate(f"{c.successes}/{c.n}", (ri, yi), textcoords="offset points", xytext=(0, 5), ha="center",
                    fontsize=6)
    ax.set_yticks(y, [c.label for c in conds], fontsize=7)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("success rate")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_title(f"{group.title}: success by condition", fontsize=10)
    fig.savefig(path)
    return path


def _tick(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 28 else text[:26] + ".."


def _outcome_colours(outcomes: list[str]) -> dict[str, str]:
    colours = dict(OUTCOME_COLOURS)
    failures = [o for o in outcomes if o not in colours]
    for i, o in enumerate(failures):
        colours[o] = FAILURE_PALETTE[i % len(FAILURE_PALETTE)]
    return colours


def plot_failures(group: Group, path: Path) -> Path:
    """Each condition's trials stacked by outcome: success, every failure mode, error."""
    conds = [c for c in group.conditions if c.n]
    counts = [Counter(outcome_of(t) for t in c.trials) for c in conds]
    total = Counter()
    for c in counts:
        total.update(c)
    outcomes = ["success"] + [o for o, _ in total.most_common() if o not in ("success", "error")] + \
        (["error"] if total["error"] else [])
    colours = _outcome_colours(outcomes)
    fig = _figure(8.0, 1.0 + 0.32 * len(conds))
    ax = fig.subplots()
    y = np.arange(len(conds))[::-1]
    left = np.zeros(len(conds))
    for o in outcomes:
        frac = np.array([c[o] / cond.n for c, cond in zip(counts, conds)])
        ax.barh(y, frac, left=left, color=colours[o], label=o, height=0.75)
        left += frac
    ax.set_yticks(y, [c.label for c in conds], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of trials")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_title(f"{group.title}: outcomes by failure mode", fontsize=10)
    fig.savefig(path)
    return path


def plot_times(group: Group, path: Path) -> Path:
    """Time to aspirate (trial start to the verified cell) of each condition's successful trials."""
    conds = [c for c in group.conditions if c.n]
    data = [[t["duration_s"] for t in c.trials if t["outcome"] == "success" and t["duration_s"] is not None]
            for c in conds]
    fig = _figure(8.0, 1.0 + 0.32 * len(conds))
    ax = fig.subplots()
    y = np.arange(len(conds))[::-1]
    shown = [(yi, d) for yi, d in zip(y, data) if d]
    if shown:
        ax.boxplot([d for _, d in shown], positions=[yi for yi, _ in shown], orientation="horizontal", widths=0.6,
                   showfliers=False, medianprops={"color": "#1565c0"})
        rng = np.random.default_rng(0)
        for yi, d in shown:
            ax.scatter(d, yi + rng.uniform(-0.18, 0.18, len(d)), s=6, color="#2e7d32", alpha=0.6, zorder=3)
    ax.set_yticks(y, [c.label for c in conds], fontsize=7)
    ax.set_xlabel("time to aspirate (s, simulated)")
    ax.set_title(f"{group.title}: time to aspirate, successful trials", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.savefig(path)
    return path


def plot_depth(group: Group, path: Path) -> Path:
    """Tip height minus the target's when the pump started, by outcome: how wrong the depth was when a
    cell got away."""
    by_outcome: dict[str, list[float]] = defaultdict(list)
    for c in group.conditions:
        for t in c.trials:
            if t["depth_error_um"] is not None:
                by_outcome[outcome_of(t)].append(t["depth_error_um"])
    outcomes = sorted(by_outcome, key=lambda o: (o != "success", -len(by_outcome[o])))
    colours = _outcome_colours(outcomes)
    fig = _figure(6.5, 3.6)
    ax = fig.subplots()
    rng = np.random.default_rng(0)
    for i, o in enumerate(outcomes):
        d = np.array(by_outcome[o])
        ax.scatter(i + rng.uniform(-0.25, 0.25, len(d)), d, s=8, color=colours[o], alpha=0.6)
        ax.hlines(np.median(d), i - 0.3, i + 0.3, color="black", lw=1.5)
    ax.axhline(0, color="#9e9e9e", lw=0.8)
    ax.set_xticks(range(len(outcomes)), [f"{o}\n(n={len(by_outcome[o])})" for o in outcomes], fontsize=7)
    ax.set_ylabel("tip - cell height at pump start (um)")
    ax.set_title(f"{group.title}: depth error against outcome (bar: median)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path)
    return path


# ----- Markdown --------------------------------------------------------------------------------------------
def _software_line(campaigns: list[dict[str, Any]]) -> str:
    seen = []
    for c in campaigns:
        sw = json.loads(c.get("software_json") or "null")
        if sw is None:
            continue
        eng = sw.get("engine") or {}
        text = (f"micromanip {sw.get('micromanip')}" + (f" (commit `{sw['commit']}`" + ("" if sw.get("tree_clean", True)
                else ", uncommitted changes") + ")" if sw.get("commit") else "") +
                f", Python {sw.get('python')}, torch {sw.get('torch')}; engine {eng.get('engine', c.get('engine'))}"
                + (f" (Ray {eng['ray']}, {eng.get('address')})" if eng.get("ray") else ""))
        if text not in seen:
            seen.append(text)
    return "; ".join(seen) if seen else "not recorded (a log written before campaigns recorded it)"


def _calibration_line(campaigns: list[dict[str, Any]]) -> str:
    kinds = []
    for c in campaigns:
        cal = json.loads(c.get("calibration_json") or "null")
        if not cal:
            continue
        source = cal.get("source", cal.get("kind", "?"))
        text = ", ".join(f"{part}: {how}" for part, how in source.items()) if isinstance(source, dict) else str(source)
        mis = {k: v for k, v in (cal.get("miscalibration") or {}).items() if v not in (0, 0.0, [0.0, 0.0, 0.0])}
        if mis:
            text += " + errors " + ", ".join(f"{k}={_tick(v)}" for k, v in mis.items())
        cam = cal.get("camera") or {}
        if cam:
            text += f" (pixel {cam.get('pixel_size_um', 0):.4f} um, rotation {cam.get('rotation_deg', 0):.2f} deg)"
        if text not in kinds:
            kinds.append(text)
    return "; ".join(kinds) if kinds else "not recorded"


def condition_table(group: Group) -> list[str]:
    lines = ["| condition | n | success | Wilson 95% | median time to aspirate | median abs depth error | failures |",
             "|---|---|---|---|---|---|---|"]
    for c in group.conditions:
        if not c.n:
            lines.append(f"| {c.label} | 0 | - | - | - | - | - |")
            continue
        lo, hi = wilson_interval(c.successes, c.n)
        times = [t["duration_s"] for t in c.trials if t["outcome"] == "success" and t["duration_s"] is not None]
        errs = [abs(t["depth_error_um"]) for t in c.trials if t["depth_error_um"] is not None]
        fails = Counter(f"error: {t['failure_mode']}" if t["outcome"] == "error" else outcome_of(t)
                        for t in c.trials if t["outcome"] != "success")
        lines.append(f"| {c.label} | {c.n} | {c.successes / c.n:.0%} | {lo:.0%} - {hi:.0%} | "
                     f"{f'{np.median(times):.1f} s' if times else '-'} | {f'{np.median(errs):.2f} um' if errs else '-'} | "
                     f"{', '.join(f'{k} {v}' for k, v in fails.most_common()) or '-'} |")
    return lines


def write_report(db: Path, out: Path) -> Path:
    """Draw every group's figures into ``out`` and write ``out/report.md``; returns its path."""
    groups = load_groups(db)
    out.mkdir(parents=True, exist_ok=True)
    md = [f"# Trial report: `{Path(db).name}`", "",
          f"Generated by `micromanip report {db} --out {out}`. Success is a cell retained in the pipette within "
          "the field of view, judged from the digital twin's ground truth; intervals are Wilson 95% "
          "(`scipy.stats.binomtest(k, n).proportion_ci(method='wilson')`).", ""]
    for g in groups:
        if not any(c.n for c in g.conditions):
            continue
        campaigns = g.meta["campaigns"]
        n = sum(c.n for c in g.conditions)
        md += [f"## {g.title}", ""]
        spec = g.meta.get("spec") or {}
        if spec:
            md.append(f"- sweep file: `{g.meta.get('source')}`; rig `{spec.get('rig')}`; "
                      f"{spec.get('trials_per_condition')} trials per condition, seed {spec.get('seed')} (trial i has "
                      "the same scene in every condition)")
            md.append(f"- swept: {', '.join(f'{factor_label(f)} (`{f}`)' for f in g.factors) or 'nothing'}")
        md += [f"- {len(g.conditions)} conditions, {n} finished trials; started {min(c['started'] for c in campaigns)[:19]} UTC",
               f"- software: {_software_line(campaigns)}",
               f"- calibration used: {_calibration_line(campaigns)}", ""]
        md += condition_table(g) + [""]
        drawn = {"conditions": True, "success": bool(curve_factors(g)),
                 "failures": True, "time": any(c.successes for c in g.conditions),
                 "depth": any(t["depth_error_um"] is not None for c in g.conditions for t in c.trials)}
        for kind, fn in (("conditions", plot_conditions), ("success", plot_success), ("failures", plot_failures),
                         ("time", plot_times), ("depth", plot_depth)):
            if drawn[kind]:
                name = f"{g.slug}-{kind}.png"
                fn(g, out / name)
                md += [f"![{g.title}: {kind}]({name})", ""]
    path = out / "report.md"
    path.write_text("\n".join(md).rstrip() + "\n")
    return path


__all__ = ["write_report", "load_groups", "plot_conditions", "plot_success", "plot_failures", "plot_times",
           "plot_depth", "curve_factors"]
