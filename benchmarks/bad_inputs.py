"""Bad input through the real entry point: every malformed rig file and bad command line of the test corpus
(tests/foundation/test_bad_inputs.py), each run as `python -m app.cli ...` in a process of its own. Counts
the cases that end as they must: exit code 2, one line on stderr, no traceback, and no crafted weights
file having run its planted command. Prints a table and saves docs/results/bad_inputs.json.

    .venv/bin/python benchmarks/bad_inputs.py [--workers 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.result_store import Headline, Result, Table, save_result  # noqa: E402
from tests.foundation.test_bad_inputs import BAD_CLI, MALFORMED_RIGS  # noqa: E402


def run(args: list[str], folder: Path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env={**__import__("os").environ, "MICROMANIP_DATA_DIR": str(folder / "data")})
    lines = proc.stderr.strip().splitlines()
    ok = proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr and not list(folder.rglob("*.ran"))
    return {"exit": proc.returncode, "lines": len(lines), "ok": ok, "message": lines[-1] if lines else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    opts = parser.parse_args()
    from tests.foundation.test_bad_inputs import write_weights

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        jobs = []
        for name, (make, _) in MALFORMED_RIGS.items():
            folder = base / f"rig-{name}"
            folder.mkdir()
            (folder / "rig.yaml").write_bytes(make(folder))
            jobs.append(("rig file", name, ["rig", "check", str(folder / "rig.yaml")], folder))
        shared = base / "cli"
        shared.mkdir()
        (shared / "notes.txt").write_text("not a database\n")
        import sqlite3

        db = sqlite3.connect(shared / "other.db")
        db.execute("CREATE TABLE trials (name TEXT)")
        db.commit()
        db.close()
        (shared / "afile").write_text("a file\n")
        (shared / "adir").mkdir()
        for kind in ("empty", "truncated", "nan", "crafted", "text"):
            write_weights(shared / f"{kind}.pt", kind)
        (shared / "run").mkdir()
        write_weights(shared / "run" / "last.pt", "crafted")
        import yaml

        (shared / "train.yaml").write_text(yaml.safe_dump({
            "task": "depth", "data": str(shared / "no-data"), "model": {"name": "depth_classifier"},
            "out": str(shared / "run")}))
        for name, (args, _) in BAD_CLI.items():
            jobs.append(("command line", name, [a.replace("{tmp}", str(shared)) for a in args], shared))
        with ThreadPoolExecutor(opts.workers) as pool:
            results = list(pool.map(lambda job: (job[0], job[1], run(job[2], job[3])), jobs))
    rows, counts = [], {}
    for kind, name, res in results:
        good, total = counts.get(kind, (0, 0))
        counts[kind] = (good + res["ok"], total + 1)
        rows.append([kind, name, res["exit"], res["lines"], "yes" if res["ok"] else "NO", res["message"][:110]])
    for kind, (good, total) in counts.items():
        print(f"{kind}: {good} of {total} one line, exit 2, no traceback")
    for row in rows:
        if row[4] != "yes":
            print("FAILED", row)
    summary = [[kind, f"{good} of {total}"] for kind, (good, total) in counts.items()]
    save_result(Result(
        name="bad_inputs", title="Bad input: malformed rig files and command lines", section="safety", order=50,
        tables=[Table("Cases ending in one line on stderr, exit code 2, no traceback (each its own process)",
                      ["input", "as required"], summary),
                Table("Every case", ["input", "case", "exit", "stderr lines", "as required", "message"], rows)],
        headlines=[Headline(f"bad input ({kind})", f"{good} of {total}: one line, exit 2, no traceback",
                            "all") for kind, (good, total) in counts.items()],
        data={"cases": [{"kind": k, "name": n, **r} for k, n, r in results]}))


if __name__ == "__main__":
    main()
