"""One error family for the whole application, so the CLI and GUI can report any of them in one line."""

from __future__ import annotations


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
