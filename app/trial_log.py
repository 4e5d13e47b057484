"""The trial log: SQLite in WAL mode. One row per finished trial, committed when the trial ends, so a
crash or Ctrl-C loses no finished trial and a campaign can resume where it stopped.

Only the driver process writes it (campaign workers, local or on a Ray cluster, return their results to
it). A campaign records what it ran with: the rig file after the condition's changes, the controller and
trial parameters and the calibration its trials used, the software version and the engine; a sweep
groups the campaigns of its conditions."""

from __future__ import annotations

import csv
import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from drivers.errors import MicromanipError

SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns (
    id INTEGER PRIMARY KEY, key TEXT UNIQUE, started TEXT, rig TEXT, n INTEGER, seed INTEGER,
    motility TEXT, depth_source TEXT, config_json TEXT, calibration_json TEXT, params_json TEXT);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY, campaign_id INTEGER REFERENCES campaigns(id), trial_index INTEGER,
    start TEXT, end TEXT, rig TEXT, seed INTEGER, outcome TEXT, failure_mode TEXT, target_id INTEGER,
    depth_error_um REAL, duration_s REAL, UNIQUE(campaign_id, trial_index));
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, trial_id INTEGER REFERENCES trials(id), t_s REAL, src TEXT, dst TEXT,
    reason TEXT, target_id INTEGER);
CREATE TABLE IF NOT EXISTS sweeps (
    id INTEGER PRIMARY KEY, key TEXT UNIQUE, name TEXT, started TEXT, source TEXT, spec_json TEXT,
    software_json TEXT);
"""

#: columns added after the first release: an older log gains them when opened (NULL in its old rows)
ADDED_COLUMNS = {
    "campaigns": {"sweep_id": "INTEGER REFERENCES sweeps(id)", "label": "TEXT", "software_json": "TEXT",
                  "engine": "TEXT"},
    "trials": {"wall_s": "REAL", "worker": "TEXT", "error": "TEXT"},
}


#: columns every table must have (a log may have more: later versions add columns, never remove them)
REQUIRED_COLUMNS = {
    "campaigns": {"id", "key", "started", "rig", "n", "seed", "motility", "depth_source", "config_json",
                  "calibration_json", "params_json"},
    "trials": {"id", "campaign_id", "trial_index", "start", "end", "rig", "seed", "outcome", "failure_mode",
               "target_id", "depth_error_um", "duration_s"},
    "events": {"id", "trial_id", "t_s", "src", "dst", "reason", "target_id"},
}


class TrialLogError(MicromanipError):
    """The trial log cannot be opened, is not an SQLite database, or is another program's."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class TrialLog:
    def __init__(self, path: Path, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise TrialLogError(f"{self.path}: no such trial log")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=10.0)
        except (OSError, sqlite3.Error) as exc:
            raise TrialLogError(f"{self.path}: cannot open the trial log ({exc})") from None
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
            self._check_schema()
            self._add_columns()
            self.db.commit()
        except sqlite3.DatabaseError as exc:
            self.db.close()
            reason = "not an SQLite database" if "not a database" in str(exc) else str(exc)
            raise TrialLogError(f"{self.path}: cannot use it as a trial log ({reason})") from None
        except TrialLogError:
            self.db.close()
            raise

    def _check_schema(self) -> None:
        for table, needed in REQUIRED_COLUMNS.items():
            have = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            missing = needed - have
            if missing:
                raise TrialLogError(f"{self.path}: its '{table}' table is not a micromanip trial log's (no "
                                    f"{', '.join(sorted(missing))})")

    def _add_columns(self) -> None:
        for table, columns in ADDED_COLUMNS.items():
            have = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns.items():
                if name not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> TrialLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def campaign(self, key: str, rig: str, n: int, seed: int, motility: str, depth_source: str,
                 config: dict, calibration: dict | None, params: dict, *, sweep_id: int | None = None,
                 label: str | None = None, software: dict | None = None, engine: str | None = None) -> int:
        """The campaign's id; created on first use, found again on resume. ``calibration`` None: filled in
        by :meth:`set_setup` from the first trial, which reports the transforms it used."""
        row = self.db.execute("SELECT id FROM campaigns WHERE key = ?", (key,)).fetchone()
        if row:
            return int(row[0])
        cur = self.db.execute(
            "INSERT INTO campaigns (key, started, rig, n, seed, motility, depth_source, config_json, "
            "calibration_json, params_json, sweep_id, label, software_json, engine) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (key, now_iso(), rig, n, seed, motility, depth_source, json.dumps(config, default=str),
             None if calibration is None else json.dumps(calibration, default=str), json.dumps(params, default=str),
             sweep_id, label, None if software is None else json.dumps(software, default=str), engine))
        self.db.commit()
        return int(cur.lastrowid)

    def set_setup(self, campaign_id: int, calibration: dict, controller: dict) -> None:
        """Record the calibration and controller parameters a campaign's trials used (once: every trial of a
        campaign uses the same)."""
        row = self.db.execute("SELECT calibration_json, params_json FROM campaigns WHERE id = ?",
                              (campaign_id,)).fetchone()
        if row is None or row[0] is not None:
            return
        params = json.loads(row[1] or "{}")
        params["controller"] = controller
        with self.db:
            self.db.execute("UPDATE campaigns SET calibration_json = ?, params_json = ? WHERE id = ?",
                            (json.dumps(calibration, default=str), json.dumps(params, default=str), campaign_id))

    def sweep(self, key: str, name: str, source: str, spec: dict, software: dict) -> int:
        """The sweep's id; created on first use, found again on resume."""
        row = self.db.execute("SELECT id FROM sweeps WHERE key = ?", (key,)).fetchone()
        if row:
            return int(row[0])
        with self.db:
            cur = self.db.execute(
                "INSERT INTO sweeps (key, name, started, source, spec_json, software_json) VALUES (?,?,?,?,?,?)",
                (key, name, now_iso(), source, json.dumps(spec, default=str), json.dumps(software, default=str)))
        return int(cur.lastrowid)

    def finished_indices(self, campaign_id: int) -> set[int]:
        rows = self.db.execute("SELECT trial_index FROM trials WHERE campaign_id = ?", (campaign_id,))
        return {int(r[0]) for r in rows}

    def record(self, campaign_id: int, result: dict[str, Any]) -> bool:
        """Store one finished trial with its events in one transaction. A trial already stored (a result
        that arrives twice) is kept as it was: False."""
        with self.db:  # one transaction per trial
            cur = self.db.execute(
                "INSERT OR IGNORE INTO trials (campaign_id, trial_index, start, end, rig, seed, outcome, failure_mode,"
                " target_id, depth_error_um, duration_s, wall_s, worker, error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (campaign_id, result["index"], result["start"], result["end"], result["rig"], result["seed"],
                 result["outcome"], result["failure_mode"], result["target_id"], result["depth_error_um"],
                 result["duration_s"], result.get("wall_s"), result.get("worker"), result.get("error")))
            if cur.rowcount == 0:
                return False
            self.db.executemany(
                "INSERT INTO events (trial_id, t_s, src, dst, reason, target_id) VALUES (?,?,?,?,?,?)",
                [(cur.lastrowid, e["t_s"], e["src"], e["dst"], e["reason"], e["target_id"]) for e in result["events"]])
        return True

    def results(self, campaign_id: int) -> list[dict[str, Any]]:
        self.db.row_factory = sqlite3.Row
        rows = self.db.execute("SELECT * FROM trials WHERE campaign_id = ? ORDER BY trial_index", (campaign_id,))
        out = [dict(r) for r in rows]
        self.db.row_factory = None
        return out

    def export_csv(self, out: Path, campaign_id: int | None = None) -> Path:
        query = "SELECT t.*, c.label, c.motility, c.depth_source FROM trials t JOIN campaigns c ON c.id = t.campaign_id"
        args: tuple = ()
        if campaign_id is not None:
            query += " WHERE t.campaign_id = ?"
            args = (campaign_id,)
        cur = self.db.execute(query + " ORDER BY t.campaign_id, t.trial_index", args)
        names = [d[0] for d in cur.description]
        with Path(out).open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(names)
            writer.writerows(cur.fetchall())
        return Path(out)
