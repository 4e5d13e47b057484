"""Structured logging: JSON lines in a file that rotates, handlers replaced on reconfiguration, and a log
folder that follows XDG_STATE_HOME (tests never write into the user's own)."""

import json
import logging
from pathlib import Path

from app.logging_setup import configure_logging, default_log_dir


def ours() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if getattr(h, "_micromanip", False)]


def test_json_lines_in_a_file_that_rotates(tmp_path):
    path = configure_logging("ERROR", tmp_path, max_bytes=2000, backups=2)
    log = logging.getLogger("micromanip.test")
    log.warning("moved %s", "stage", extra={"x_um": 12.5})
    first = json.loads(path.read_text().splitlines()[0])
    assert first["msg"] == "moved stage" and first["x_um"] == 12.5 and first["level"] == "WARNING"
    for i in range(100):
        log.info("step %d", i, extra={"i": i})
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["micromanip.log", "micromanip.log.1", "micromanip.log.2"]
    assert all(f.stat().st_size <= 2000 for f in files)
    newest = [json.loads(line) for line in path.read_text().splitlines()]
    assert newest[-1]["i"] == 99 and newest[-1]["level"] == "INFO"  # the file gets DEBUG and up


def test_reconfiguring_replaces_the_handlers(tmp_path):
    configure_logging("ERROR", tmp_path / "first")
    old = ours()
    path = configure_logging("WARNING", tmp_path / "again")
    new = ours()
    assert len(new) == 2 and not set(old) & set(new)
    files = [h for h in new if isinstance(h, logging.FileHandler)]
    assert [Path(h.baseFilename) for h in files] == [path]
    assert all(h.stream is None for h in old if isinstance(h, logging.FileHandler))  # closed


def test_the_log_folder_follows_xdg_state_home(tmp_path, monkeypatch):
    assert not default_log_dir().is_relative_to(Path.home() / ".local" / "state")  # conftest's folder
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert configure_logging("ERROR") == tmp_path / "micromanip" / "logs" / "micromanip.log"
