"""Checks for command-line values, run before any work starts: every path and number is validated when the
command line is parsed, and output destinations are opened (created if need be) then, so a campaign never
runs for an hour only to fail writing its result. Each check raises ``typer.BadParameter``: the CLI reports
it in one line naming the option, with exit code 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import typer

from drivers.units import parse_quantity

#: seeds are folded into numpy generators and per-trial seeds; 32 bits keep them portable
SEED = {"min": 0, "max": 2**32 - 1}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def count(lo: int, hi: int) -> dict:
    """typer ``min``/``max`` for a count (a huge --n is refused, not allocated)."""
    return {"min": lo, "max": hi}


def log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise typer.BadParameter(f"{value!r} is not a log level ({', '.join(LOG_LEVELS)})")
    return value.upper()


def quantity(unit: str, lo: float, hi: float) -> Callable[[str], float]:
    """A parser for a value in ``unit``, given bare or with any unit pint knows (``"500 ms"``)."""

    def parse(text: str) -> float:
        try:
            value = parse_quantity(text, unit)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        if not lo <= value <= hi:
            raise typer.BadParameter(f"{value:g} {unit} is outside [{lo:g}, {hi:g}] {unit}")
        return value

    return parse


def _writable_folder(folder: Path) -> None:
    """Create ``folder`` (and parents) or say why not."""
    for above in (folder, *folder.parents):
        if above.exists():
            if not above.is_dir():
                raise typer.BadParameter(f"{above} is not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise typer.BadParameter(f"cannot create folder {folder} ({exc.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise typer.BadParameter(f"folder {folder} is not writable")


def output_file(*suffixes: str) -> Callable[[Path | None], Path | None]:
    """An output file: its folder is created and the file opened for writing now (an existing file is left
    as it is until the command writes it; a new one is removed again)."""

    def check(path: Path | None) -> Path | None:
        if path is None:
            return None
        if path.is_dir():
            raise typer.BadParameter(f"{path} is a folder; give a file name")
        if suffixes and path.suffix.lower() not in suffixes:
            raise typer.BadParameter(f"{path}: expected a {' or '.join(suffixes)} file")
        _writable_folder(path.parent)
        existed = path.exists()
        try:
            with path.open("a"):
                pass
        except OSError as exc:
            raise typer.BadParameter(f"cannot write {path} ({exc.strerror})") from None
        if not existed:
            path.unlink()
        return path

    return check


def output_folder(path: Path | None) -> Path | None:
    if path is not None:
        _writable_folder(path)
    return path


def input_file(path: Path | None) -> Path | None:
    if path is None:
        return None
    if not path.exists():
        raise typer.BadParameter(f"{path}: no such file")
    if not path.is_file():
        raise typer.BadParameter(f"{path}: not a file")
    if not os.access(path, os.R_OK):
        raise typer.BadParameter(f"{path}: not readable")
    return path


def input_folder(path: Path | None) -> Path | None:
    if path is None:
        return None
    if not path.is_dir():
        raise typer.BadParameter(f"{path}: no such folder")
    return path


def trial_db(create: bool) -> Callable[[Path | None], Path | None]:
    """An SQLite trial log: opened now (created if ``create``), so a file that is not a database, belongs
    to another program, or cannot be written is refused before the first trial."""

    def check(path: Path | None) -> Path | None:
        if path is None:
            return None
        if path.is_dir():
            raise typer.BadParameter(f"{path} is a folder; give a database file")
        if not create and not path.is_file():
            raise typer.BadParameter(f"{path}: no such trial log")
        if create:
            _writable_folder(path.parent)
        from app.trial_log import TrialLog, TrialLogError

        existed = path.exists()
        try:
            TrialLog(path, create=create).close()
        except TrialLogError as exc:
            raise typer.BadParameter(str(exc)) from None
        if create and not existed:  # no empty log left behind if the command stops before its first trial
            for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
                leftover.unlink(missing_ok=True)
        return path

    return check
