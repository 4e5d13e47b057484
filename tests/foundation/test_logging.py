import json
import logging

from app.logging_setup import configure_logging


def test_json_lines_in_rotating_file(tmp_path):
    path = configure_logging("ERROR", tmp_path)
    logging.getLogger("micromanip.test").warning("moved %s", "stage", extra={"x_um": 12.5})
    for h in logging.getLogger().handlers:
        h.flush()
    record = json.loads(path.read_text().strip().splitlines()[-1])
    assert record["msg"] == "moved stage" and record["x_um"] == 12.5 and record["level"] == "WARNING"
    configure_logging("WARNING", tmp_path / "again")  # re-configuring replaces, never duplicates handlers
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_micromanip", False)]
    assert len(ours) == 2
