"""Structured logging: readable lines on the console, JSON lines in a rotating file."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
from pathlib import Path

_STANDARD = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with any ``extra={...}`` fields kept as keys."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "t": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "msg": record.getMessage(),
        }
        payload.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def default_log_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "micromanip" / "logs"


def configure_logging(level: str = "INFO", log_dir: Path | None = None, max_bytes: int = 5_000_000,
                      backups: int = 5) -> Path | None:
    """Install the console and rotating-file handlers on the root logger; returns the log file path.

    A log directory that cannot be created only loses the file log, never the run.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_micromanip", False):
            root.removeHandler(handler)
            handler.close()
    root.setLevel(logging.DEBUG)
    console = logging.StreamHandler()
    console.setLevel(level.upper())
    console.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    console._micromanip = True  # type: ignore[attr-defined]
    root.addHandler(console)
    log_dir = log_dir or default_log_dir()
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        path = log_dir / "micromanip.log"
        file_handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups)
    except OSError as exc:
        logging.getLogger(__name__).warning("file logging disabled: %s", exc)
        return None
    file_handler.setLevel(logging.DEBUG)
    file_handler.setFormatter(JsonFormatter())
    file_handler._micromanip = True  # type: ignore[attr-defined]
    root.addHandler(file_handler)
    return path
