"""One error family for the whole application, so the CLI and GUI can report any of them in one line."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError


class MicromanipError(Exception):
    """Base of every error micromanip raises on purpose. Its message is meant for the operator."""


class ConfigError(MicromanipError):
    """A configuration file or value is invalid. The message names the file and the field."""


class DeviceError(MicromanipError):
    """A device could not do what was asked. Motion has been stopped before this is raised.

    The message always names the device and the action, e.g. ``stage: move_to_um: timed out after 5.0 s``.
    """

    def __init__(self, device: str, action: str, detail: str) -> None:
        self.device = device
        self.action = action
        self.detail = detail
        super().__init__(f"{device}: {action}: {detail}")


class LimitError(DeviceError):
    """A requested motion or setting is outside the device's limits; nothing was moved."""


class FrameError(MicromanipError):
    """A frame is malformed (wrong shape or dtype, non-finite pixels, bad metadata)."""


def format_validation_error(exc: ValidationError, source: Path | None, prefix: str = "") -> str:
    """One line naming the file and the field: ``rig.yaml: stage.max_speed_um_s: <problem> (got ...)``."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in ((prefix,) if prefix else ()) + tuple(err["loc"]))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    got = err.get("input")
    if err["type"] not in ("missing", "extra_forbidden") and not isinstance(got, (dict, list)):
        msg += f" (got {got!r})"
    where = f"{source}: " if source else ""
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{where}{loc or '<top>'}: {msg}{more}"
