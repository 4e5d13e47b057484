"""docs/results.md and the README's Measured table are generated from docs/results/*.json, never edited by
hand, and no document labels a figure by a work period."""

from __future__ import annotations

import json
import re

from benchmarks import result_store
from benchmarks.result_store import Figure, Headline, Result, Table, load_results, rendered, save_result
from tests.conftest import ROOT


def test_results_and_readme_are_what_the_json_files_make():
    results_md, readme = rendered()
    assert result_store.RESULTS_MD.read_text() == results_md, "docs/results.md is out of date: run `make results`"
    assert result_store.README.read_text() == readme, "README.md's Measured table is out of date: run `make results`"


def test_every_result_names_its_run():
    for doc in load_results():
        meta = doc["meta"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT.*", meta["date"]) and meta["commit"] and meta["command"], doc["name"]
        assert meta["machine"].get("cores") or meta["machine"].get("gpu"), doc["name"]


def test_rendering_shows_provenance_transcription_load_and_figures(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{result_store.README_BEGIN}\nold\n{result_store.README_END}\nrest\n")
    table = Table("caption", ["a", "b"], [["1", "x|y"]], "a note")
    save_result(Result("zz", "Later section", [table], section="device links"), tmp_path / "r" / "zz.json")
    save_result(Result("aa", "Copied from a GPU run", [table], [Headline("speed", "1 ms", "<= 3 ms")],
                       section="perception models", description="What it measures.",
                       figures=[Figure("a picture", "img/x.png")]),
                tmp_path / "r" / "aa.json",
                meta={"date": "2026-01-02T00:00:00+00:00", "commit": "abc", "command": "python x.py",
                      "machine": {"cores": 16, "gpu": "NVIDIA H100"}, "transcribed_from": "docs/results.md at abc"})
    doc = json.loads((tmp_path / "r" / "zz.json").read_text())
    doc["meta"]["machine"].update(cores=2, load_avg_1min=9.5)
    (tmp_path / "r" / "zz.json").write_text(json.dumps(doc))
    results_md, new_readme = rendered(tmp_path / "r", readme)
    assert results_md.index("Copied from a GPU run") < results_md.index("Later section")  # section order
    assert "Transcribed from docs/results.md at abc" in results_md and "NVIDIA H100" in results_md
    assert "Load average 9.5 on 2 cores" in results_md
    assert "What it measures." in results_md and "![a picture](img/x.png)" in results_md
    assert "| 1 | x\\|y |" in results_md and "a note" in results_md
    assert new_readme.startswith("intro\n") and new_readme.endswith("rest\n") and "old" not in new_readme
    assert "| speed | 1 ms | <= 3 ms | 2026-01-02, `abc`, NVIDIA H100 (transcribed) |" in new_readme


def test_no_document_labels_a_figure_by_a_work_period():
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    code = [p for d in ("app", "drivers", "perception", "control", "sim", "calibration", "benchmarks")
            for p in (ROOT / d).rglob("*.py")]
    label = re.compile(r"\bsessions? \d|\bsession-\d", re.I)
    found = [f"{p.relative_to(ROOT)}:{i}" for p in docs + code
             for i, line in enumerate(p.read_text().splitlines(), 1) if label.search(line)]
    assert not found, f"work-period labels: {found}"
